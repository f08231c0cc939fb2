"""The category builder beside a plain ``keras.applications.EfficientNetB0`` of the same shape
(``scripts/benchmark_builders.py``)."""

from __future__ import annotations

import keras

from trainer import augmentation, checks
from trainer.families.category.model import build_classifier

CLASSES = 14


def cases(source_size: int) -> list:
    """``ours``, ``plain`` and ``ours_augmented`` (the default profile's augmentation)."""
    loss, batch = "sparse_categorical_crossentropy", checks.single_label_batches(CLASSES,
                                                                                 source_size)
    return [
        checks.BenchmarkCase("ours", lambda: build_classifier(CLASSES, source_size=source_size),
                             loss, batch),
        checks.BenchmarkCase("plain", lambda: keras.applications.EfficientNetB0(
            weights=None, classes=CLASSES, input_shape=(source_size, source_size, 3)),
            loss, batch),
        checks.BenchmarkCase("ours_augmented", lambda: build_classifier(
            CLASSES, source_size=source_size,
            augment=augmentation.augmentation(rotation=0.05, zoom=0.1, translation=0.1)),
            loss, batch),
    ]
