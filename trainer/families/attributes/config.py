"""The attribute family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig, check
from trainer.backbones.configs import (CCP_HYBRID_SCHEDULE, PRETRAINED_LITE0,
                                        EfficientNetConfig)

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
    return AttributesConfig(**PRETRAINED_LITE0, backbone_size=64, batch_size=8, epochs=1,
                            steps_per_epoch=3, eval_steps=2, transfer_mode="feature_extraction",
                            cached_feature_views=1, blessing_threshold=0.0)


def default() -> AttributesConfig:
    # As the category default: the frozen pretrained trunk once at 160 px (with a mirrored
    # copy), then the sigmoid head on cached features.
    return AttributesConfig(
        **PRETRAINED_LITE0, backbone_size=160, batch_size=32, epochs=40, learning_rate=1e-3,
        dropout=0.2, transfer_mode="feature_extraction", cached_feature_views=2,
        early_stopping_patience=6, blessing_threshold=0.3,
        augmentation=AugmentationConfig(flip=True, rotation=0.0, zoom=0.0, translation=0.0))


def full() -> AttributesConfig:
    return AttributesConfig(**PRETRAINED_LITE0, batch_size=32, epochs=40, learning_rate=1e-4,
                            transfer_mode="hybrid", frozen_epochs=10, cached_feature_views=2,
                            early_stopping_patience=5, blessing_threshold=0.6)


def ccp() -> AttributesConfig:
    # Real street photos (the ccp data profile) on this machine's CPU. CCP photos carry ~5 of
    # 50 item tags: at 0.5 the tagger under-calls them (micro F1 0.40 vs 0.49 at 0.25 on the
    # eval split, measured on cached features).
    return AttributesConfig(**CCP_HYBRID_SCHEDULE, threshold=0.25, blessing_threshold=0.3)


PRESETS = {"smoke": smoke, "default": default, "full": full, "ccp": ccp}
