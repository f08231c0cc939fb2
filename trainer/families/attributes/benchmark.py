"""The tagger beside a plain sigmoid ``keras.applications.EfficientNetB0`` of the same shape
(``scripts/benchmark_builders.py``), both on plain binary cross-entropy: the masked loss costs
nothing measurable, and the plain model has no masked counterpart."""

from __future__ import annotations

import keras

from trainer import checks
from trainer.families.attributes.model import build_attribute_tagger

ATTRIBUTES = 60


def _batch(source_size: int):
    def batch(rng, rows):
        labels = (rng.random((rows, ATTRIBUTES)) < 0.1).astype("float32")
        return checks.random_images(rng, rows, source_size), labels
    return batch


def cases(source_size: int) -> list:
    """``ours`` and ``plain``."""
    loss, batch = "binary_crossentropy", _batch(source_size)
    return [
        checks.BenchmarkCase("ours", lambda: build_attribute_tagger(
            ATTRIBUTES, source_size=source_size), loss, batch),
        checks.BenchmarkCase("plain", lambda: keras.applications.EfficientNetB0(
            weights=None, classes=ATTRIBUTES, classifier_activation="sigmoid",
            input_shape=(source_size, source_size, 3)), loss, batch),
    ]
