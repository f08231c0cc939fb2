"""EfficientNet trunks (pure Keras 3: no TFX, no TensorFlow ops).

:func:`pooled_features` is the part every EfficientNet family shares: train-time augmentation →
resize from the stored image size to the size the backbone runs at → EfficientNet-B0..B7 or
EfficientNet-Lite0..4 (their own rescaling and normalisation inside, so inputs are 0..255
pixels) → global average pooling (the ``trunk_features`` layer, where a frozen trunk's output can
be cached) → dropout. Families put their own head on top.
"""

from __future__ import annotations

import keras

from trainer.backbones import efficientnet_lite
from trainer.transfer import FEATURES_LAYER

BACKBONES = {
    "b0": keras.applications.EfficientNetB0, "b1": keras.applications.EfficientNetB1,
    "b2": keras.applications.EfficientNetB2, "b3": keras.applications.EfficientNetB3,
    "b4": keras.applications.EfficientNetB4, "b5": keras.applications.EfficientNetB5,
    "b6": keras.applications.EfficientNetB6, "b7": keras.applications.EfficientNetB7,
}
IMAGE_INPUT = "image"


VARIANTS = tuple(BACKBONES) + tuple(efficientnet_lite.LITE_VARIANTS)


def builder_name(variant: str) -> str:
    """The name weight presets use for this backbone (``efficientnet-lite0``, ...)."""
    return f"efficientnet-{variant}"


def backbone(variant: str, backbone_size: int, weights=None) -> keras.Model:
    """EfficientNet ``variant`` without top, average pooled. ``weights``: None, 'imagenet' (B0..B7
    only), a weights file path, or a ``trainer.weights.WeightPreset`` that fits the variant."""
    if variant in efficientnet_lite.LITE_VARIANTS:
        from trainer import weights as presets
        if weights == "imagenet":
            raise presets.WeightsUnavailableError(
                f"keras.applications has no ImageNet EfficientNet-{variant}; use the preset "
                "'efficientnet-lite0-imagenet' (lite0) or a converted .weights.h5")
        model = efficientnet_lite.efficientnet_lite(
            variant, input_size=backbone_size, include_top=False, pooling="avg",
            weights=weights if isinstance(weights, str) else None)
        if isinstance(weights, presets.WeightPreset):
            presets.load_preset(model, weights)
        return model
    if variant not in BACKBONES:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; choose from {VARIANTS}")
    if weights is not None and not isinstance(weights, str):
        raise ValueError(f"weights {weights.name!r} do not fit EfficientNet-{variant}")
    return BACKBONES[variant](include_top=False, weights=weights,
                              input_shape=(backbone_size, backbone_size, 3), pooling="avg")


def pooled_features(*, variant: str, source_size: int, backbone_size: int | None = None,
                    weights=None, dropout: float = 0.5, augment: keras.Sequential | None = None,
                    trainable_backbone: bool = True,
                    batchnorm_momentum: float | None = None) -> tuple:
    """``(inputs, dropped-out pooled features)`` of an EfficientNet trunk.

    Args:
      variant: EfficientNet variant, ``b0`` .. ``b7`` or ``lite0`` .. ``lite4``.
      source_size: side of the square 0..255 RGB images the model receives (the stored size).
      backbone_size: side the backbone runs at (default: ``source_size``); images are resized
        to it when it differs.
      weights: backbone weights: None (random), 'imagenet', a local weights file path or a
        weight preset (see :func:`backbone`).
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
    features = keras.layers.Identity(name=FEATURES_LAYER)(base(x))
    return inputs, keras.layers.Dropout(dropout, name="head_dropout")(features)


def image_embedder(weights: str, image_size: int, batch_size: int = 64):
    """``embed(encoded images) -> [n, 1280] numpy``: EfficientNet-Lite0's pooled features (the
    pretrained trunk the image families start from) on letterboxed ``image_size``² RGB; what
    the catalog drift check compares spans with."""
    import numpy as np
    import tensorflow as tf

    from trainer.preprocessing import decode_and_resize
    from trainer.weights import resolve_weights
    model = backbone("lite0", image_size, resolve_weights(weights, "efficientnet-lite0"))

    def embed(encoded_images: list) -> np.ndarray:
        batches = []
        for start in range(0, len(encoded_images), batch_size):
            pixels = tf.stack([tf.cast(decode_and_resize(tf.constant(image), image_size),
                                       tf.float32)
                               for image in encoded_images[start:start + batch_size]])
            batches.append(np.asarray(model(pixels, training=False)))
        return np.concatenate(batches) if batches else np.zeros([0, 1280], np.float32)
    return embed
