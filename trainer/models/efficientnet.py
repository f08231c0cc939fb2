"""EfficientNet garment-category classifier (pure Keras 3: no TFX, no TensorFlow ops, no I/O).

Architecture, as in the pipeline study: train-time augmentation (flip, small rotation, zoom,
translation; identity at inference) → EfficientNet-B0..B7 backbone (its own rescaling and
normalisation inside, so inputs are 0..255 pixels) → global average pooling → dropout →
softmax over the garment categories.
"""

from __future__ import annotations

import keras

BACKBONES = {
    "b0": keras.applications.EfficientNetB0, "b1": keras.applications.EfficientNetB1,
    "b2": keras.applications.EfficientNetB2, "b3": keras.applications.EfficientNetB3,
    "b4": keras.applications.EfficientNetB4, "b5": keras.applications.EfficientNetB5,
    "b6": keras.applications.EfficientNetB6, "b7": keras.applications.EfficientNetB7,
}
IMAGE_INPUT = "image"


def augmentation(flip: bool = True, rotation: float = 0.05, zoom: float = 0.1,
                 translation: float = 0.1, seed: int = 0) -> keras.Sequential:
    """Random augmentation layers; Keras runs them only when ``training=True``."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="constant", seed=seed + 1))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="constant", seed=seed + 2))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation,
                                                     fill_mode="constant", seed=seed + 3))
    return keras.Sequential(layers, name="augmentation")


def backbone(variant: str, input_size: int, weights=None) -> keras.Model:
    """EfficientNet ``variant`` without top, average pooled. ``weights``: None, 'imagenet', path."""
    if variant not in BACKBONES:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; choose from {list(BACKBONES)}")
    return BACKBONES[variant](include_top=False, weights=weights,
                              input_shape=(input_size, input_size, 3), pooling="avg")


def build_classifier(num_classes: int, *, variant: str = "b0", image_size: int = 224,
                     input_size: int | None = None, weights=None, dropout: float = 0.5,
                     augment: keras.Sequential | None = None,
                     trainable_backbone: bool = True,
                     batchnorm_momentum: float | None = None) -> keras.Model:
    """Builds the single-label classifier.

    Args:
      num_classes: number of garment categories (softmax width).
      variant: EfficientNet variant, ``b0`` .. ``b7``.
      image_size: side of the square 0..255 RGB images the model receives.
      input_size: side the backbone runs at; images are resized to it when it differs.
      weights: backbone weights: None (random), 'imagenet' or a local weights file path.
      dropout: dropout rate before the softmax.
      augment: optional augmentation block applied first (training only).
      trainable_backbone: False freezes the backbone (feature extraction).
      batchnorm_momentum: overrides the backbone's BatchNormalization momentum (Keras: 0.99).
        Training from scratch on a small data set needs a faster one (e.g. 0.9): with 0.99 the
        moving statistics trail the quickly changing weights and inference-mode accuracy stays
        at chance while training accuracy climbs.
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs, pooled = pooled_features(variant=variant, image_size=image_size,
                                     input_size=input_size, weights=weights, dropout=dropout,
                                     augment=augment, trainable_backbone=trainable_backbone,
                                     batchnorm_momentum=batchnorm_momentum)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="scores",
                                 dtype="float32")(pooled)
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant}_category")


def pooled_features(*, variant: str, image_size: int, input_size: int | None, weights,
                    dropout: float, augment: keras.Sequential | None,
                    trainable_backbone: bool = True,
                    batchnorm_momentum: float | None = None) -> tuple:
    """``(inputs, dropped-out pooled features)``: the part every EfficientNet family shares
    (augmentation → optional resize → backbone → global average pooling → dropout); see
    :func:`build_classifier` for the arguments."""
    input_size = input_size or image_size
    inputs = keras.Input((image_size, image_size, 3), name=IMAGE_INPUT, dtype="float32")
    x = inputs
    if augment is not None:
        x = augment(x)
    if input_size != image_size:
        x = keras.layers.Resizing(input_size, input_size, name="resize")(x)
    base = backbone(variant, input_size, weights)
    base.trainable = trainable_backbone
    if batchnorm_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = batchnorm_momentum
    return inputs, keras.layers.Dropout(dropout, name="head_dropout")(base(x))
