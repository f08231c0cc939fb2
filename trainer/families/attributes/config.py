"""The attribute family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig, check
from trainer.backbones.configs import EfficientNetConfig

LOSSES = ("binary_crossentropy", "soft_f1")


@dataclasses.dataclass(frozen=True)
class AttributesConfig(EfficientNetConfig):
    """The multi-label EfficientNet attribute tagger (sigmoid head); ``blessing_threshold`` is
    the micro-averaged F1 it must reach."""

    loss: str = "binary_crossentropy"  # or 'soft_f1'
    threshold: float = 0.5  # a tag is on at or above this score
    # Families in which at most one attribute can be on (the study: one pattern, one style).
    exclusive_families: tuple = ("pattern", "color", "sleeve", "length")
    blessing_threshold: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check(self.loss in LOSSES, f"loss must be one of {LOSSES}")
        check(0.0 < self.threshold < 1.0, "threshold must be in (0, 1)")
        check(self.imbalance == "none", "attributes are multi-label: class weights and "
              "oversampling apply to the single-label families only (imbalance must be none)")

    @classmethod
    def from_dict(cls, data: dict):
        data = dict(data)
        data["exclusive_families"] = tuple(data.get("exclusive_families", ()))
        return super().from_dict(data)


def smoke() -> AttributesConfig:
    return AttributesConfig(backbone_size=32, batch_size=8, epochs=1, steps_per_epoch=3,
                            eval_steps=2, blessing_threshold=0.0)


def default() -> AttributesConfig:
    return AttributesConfig(
        backbone_size=96, batch_size=32, epochs=6, learning_rate=2e-3, dropout=0.2,
        early_stopping_patience=2, early_stopping_start_epoch=3, blessing_threshold=0.2,
        augmentation=AugmentationConfig(flip=True, rotation=0.0, zoom=0.0, translation=0.05))


def full() -> AttributesConfig:
    return AttributesConfig(backbone="b1", batch_size=32, epochs=40, learning_rate=1e-4,
                            early_stopping_patience=5, blessing_threshold=0.6)


PRESETS = {"smoke": smoke, "default": default, "full": full}
