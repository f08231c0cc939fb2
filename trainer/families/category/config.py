"""The category family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig
from trainer.backbones.configs import EfficientNetConfig


@dataclasses.dataclass(frozen=True)
class CategoryConfig(EfficientNetConfig):
    """The EfficientNet garment-category classifier (single label); ``blessing_threshold`` is
    the eval accuracy it must reach."""


def smoke() -> CategoryConfig:
    return CategoryConfig(backbone_size=32, batch_size=8, epochs=1, steps_per_epoch=3,
                          eval_steps=2, blessing_threshold=0.0)


def default() -> CategoryConfig:
    # Sized for the README run on a 2-core CPU: from scratch, the backbone at the stored 96 px;
    # in a ten-epoch budget the model under-fits, so augmentation is kept mild.
    return CategoryConfig(
        backbone_size=96, batch_size=32, epochs=10, learning_rate=2e-3, dropout=0.2,
        early_stopping_patience=3, early_stopping_start_epoch=5, blessing_threshold=0.3,
        augmentation=AugmentationConfig(flip=True, rotation=0.0, zoom=0.0, translation=0.05))


def full() -> CategoryConfig:
    return CategoryConfig(backbone="b1", batch_size=32, epochs=40, learning_rate=1e-4,
                          early_stopping_patience=5, blessing_threshold=0.8)


PRESETS = {"smoke": smoke, "default": default, "full": full}
