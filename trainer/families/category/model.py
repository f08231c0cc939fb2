"""The garment-category classifier, as in the pipeline study (pure Keras 3): the shared
EfficientNet trunk (augmentation → resize → EfficientNet-B0..B7 → global average pooling →
dropout) → softmax over the garment categories."""

from __future__ import annotations

import keras

from trainer.backbones.efficientnet import pooled_features


def build_classifier(num_classes: int, *, variant: str = "b0", source_size: int = 224,
                     backbone_size: int | None = None, weights=None, dropout: float = 0.5,
                     augment: keras.Sequential | None = None, trainable_backbone: bool = True,
                     batchnorm_momentum: float | None = None) -> keras.Model:
    """Builds the single-label classifier: ``num_classes`` softmax scores for images of
    ``source_size``² pixels (0..255); see ``trainer.backbones.efficientnet.pooled_features`` for the
    other arguments."""
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    inputs, pooled = pooled_features(variant=variant, source_size=source_size,
                                     backbone_size=backbone_size, weights=weights,
                                     dropout=dropout, augment=augment,
                                     trainable_backbone=trainable_backbone,
                                     batchnorm_momentum=batchnorm_momentum)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="scores",
                                 dtype="float32")(pooled)
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant}_category")
