"""The category family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig, check
from trainer.backbones.configs import (CCP_HYBRID_SCHEDULE, PRETRAINED_LITE0,
                                        EfficientNetConfig)

EXAMPLE_KINDS = ("object_crops", "photos")


@dataclasses.dataclass(frozen=True)
class CategoryConfig(EfficientNetConfig):
    """The EfficientNet garment-category classifier (single label); ``blessing_threshold`` is
    the eval accuracy it must reach.

    ``examples``: ``object_crops`` (the studies' way: one example per garment box of a record,
    the box widened by ``crop_margin``, boxes under ``crop_min_side`` pixels skipped) or
    ``photos`` (the whole photo and its main garment, ``image/class/text``).
    """

    examples: str = "object_crops"
    crop_margin: float = 0.1
    crop_min_side: int = 16

    def __post_init__(self):
        super().__post_init__()
        check(self.examples in EXAMPLE_KINDS, f"category examples must be one of {EXAMPLE_KINDS}")
        check(0.0 <= self.crop_margin <= 1.0, "crop_margin must be in [0, 1]")
        check(self.crop_min_side >= 1, "crop_min_side must be >= 1")


def smoke() -> CategoryConfig:
    return CategoryConfig(**PRETRAINED_LITE0, backbone_size=64, batch_size=8, epochs=1,
                          steps_per_epoch=3, eval_steps=2, transfer_mode="feature_extraction",
                          cached_feature_views=1, blessing_threshold=0.0)


def default() -> CategoryConfig:
    # Sized for the README run on a 2-core CPU: the frozen trunk runs once over the garment
    # crops (upsampled from the stored 96 px to 160: ImageNet features are sharper there, and
    # 224 would cost twice the time for a few points) and its features are cached with a
    # mirrored copy; the softmax head then trains for many cheap epochs.
    return CategoryConfig(
        **PRETRAINED_LITE0, backbone_size=160, batch_size=32, epochs=40, learning_rate=1e-3,
        dropout=0.2, transfer_mode="feature_extraction", cached_feature_views=2,
        early_stopping_patience=6, blessing_threshold=0.5,
        augmentation=AugmentationConfig(flip=True, rotation=0.0, zoom=0.0, translation=0.0))


def full() -> CategoryConfig:
    # On an accelerator: ten epochs of the head on cached features, then the whole trunk
    # fine-tunes with augmentation.
    return CategoryConfig(**PRETRAINED_LITE0, batch_size=32, epochs=40, learning_rate=1e-4,
                          transfer_mode="hybrid", frozen_epochs=10, cached_feature_views=2,
                          early_stopping_patience=5, blessing_threshold=0.8)


def ccp() -> CategoryConfig:
    # Real street photos (the ccp data profile) on this machine's CPU.
    return CategoryConfig(**CCP_HYBRID_SCHEDULE, imbalance="class_weights",
                          blessing_threshold=0.3)


PRESETS = {"smoke": smoke, "default": default, "full": full, "ccp": ccp}
