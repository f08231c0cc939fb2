"""What a family gives the accelerator check and the builder benchmark
(``scripts/check_accelerator_training.py``, ``scripts/benchmark_builders.py``), which loop over
the registry and know no family."""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras


@dataclasses.dataclass
class AcceleratorCase:
    """A family's model and training glue on random in-memory data: ``model`` built and
    ``compile_model`` made by the family's own trainer code; ``batch(rng, rows)`` draws
    ``(images, labels)``; ``probabilities_sum_to_one`` for a softmax head."""

    model: keras.Model
    compile_model: Callable
    batch: Callable
    probabilities_sum_to_one: bool = True


@dataclasses.dataclass
class BenchmarkCase:
    """One row of the builder benchmark: ``build()`` makes the model (lazily: only one is in
    memory at a time), trained with ``loss`` on ``batch(rng, rows)``. ``variant`` is ``ours``,
    a plain ``keras.applications`` equivalent of the same shape (``plain...``), or ``ours`` with
    train-time augmentation (``..._augmented``)."""

    variant: str
    build: Callable
    loss: str
    batch: Callable


def random_images(rng, rows: int, source_size: int):
    """Random 0..255 float32 images."""
    return rng.uniform(0, 255, (rows, source_size, source_size, 3)).astype("float32")


def single_label_batches(num_classes: int, source_size: int) -> Callable:
    """``batch(rng, rows)`` of random images and class ids."""
    def batch(rng, rows):
        return random_images(rng, rows, source_size), rng.integers(
            0, num_classes, rows).astype("int32")
    return batch
