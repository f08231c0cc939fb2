"""EfficientNet trunks (pure Keras 3: no TFX, no TensorFlow ops, no I/O).

:func:`pooled_features` is the part every EfficientNet family shares: train-time augmentation →
resize from the stored image size to the size the backbone runs at → EfficientNet-B0..B7 (its
own rescaling and normalisation inside, so inputs are 0..255 pixels) → global average pooling →
dropout. Families put their own head on top.
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


def backbone(variant: str, backbone_size: int, weights=None) -> keras.Model:
    """EfficientNet ``variant`` without top, average pooled. ``weights``: None, 'imagenet', path."""
    if variant not in BACKBONES:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; choose from {list(BACKBONES)}")
    return BACKBONES[variant](include_top=False, weights=weights,
                              input_shape=(backbone_size, backbone_size, 3), pooling="avg")


def pooled_features(*, variant: str, source_size: int, backbone_size: int | None = None,
                    weights=None, dropout: float = 0.5, augment: keras.Sequential | None = None,
                    trainable_backbone: bool = True,
                    batchnorm_momentum: float | None = None) -> tuple:
    """``(inputs, dropped-out pooled features)`` of an EfficientNet trunk.

    Args:
      variant: EfficientNet variant, ``b0`` .. ``b7``.
      source_size: side of the square 0..255 RGB images the model receives (the stored size).
      backbone_size: side the backbone runs at (default: ``source_size``); images are resized
        to it when it differs.
      weights: backbone weights: None (random), 'imagenet' or a local weights file path.
      dropout: dropout rate after pooling.
      augment: optional augmentation block applied first (training only).
      trainable_backbone: False freezes the backbone (feature extraction).
      batchnorm_momentum: overrides the backbone's BatchNormalization momentum (Keras: 0.99).
        Training from scratch on a small data set needs a faster one (e.g. 0.9): with 0.99 the
        moving statistics trail the quickly changing weights and inference-mode accuracy stays
        at chance while training accuracy climbs.
    """
    backbone_size = backbone_size or source_size
    inputs = keras.Input((source_size, source_size, 3), name=IMAGE_INPUT, dtype="float32")
    x = inputs
    if augment is not None:
        x = augment(x)
    if backbone_size != source_size:
        x = keras.layers.Resizing(backbone_size, backbone_size, name="resize")(x)
    base = backbone(variant, backbone_size, weights)
    base.trainable = trainable_backbone
    if batchnorm_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = batchnorm_momentum
    return inputs, keras.layers.Dropout(dropout, name="head_dropout")(base(x))
