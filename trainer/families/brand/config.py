"""The brand family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig, TrainingConfig, check


@dataclasses.dataclass(frozen=True)
class BrandConfig(TrainingConfig):
    """The VGG16 spatial-attention brand classifier (brand study: frozen VGG16, 224 px);
    ``blessing_threshold`` is the eval accuracy it must reach."""

    backbone_size: int = 224  # the side VGG16 runs at: a multiple of 32
    dropout: float = 0.2
    transfer_mode: str = "feature_extraction"  # the study keeps VGG16 frozen
    # The study's augmentation: flip, rotation 0.1, translation.
    augmentation: AugmentationConfig = AugmentationConfig(flip=True, rotation=0.1, zoom=0.0,
                                                          translation=0.1)

    def __post_init__(self):
        super().__post_init__()
        check(self.backbone_size % 32 == 0 and 32 <= self.backbone_size <= 1024,
              "brand backbone_size must be a multiple of 32 in 32..1024")


def smoke() -> BrandConfig:
    return BrandConfig(backbone_size=32, batch_size=8, epochs=1, steps_per_epoch=3, eval_steps=2,
                       blessing_threshold=0.0)


def default() -> BrandConfig:
    # The brand study freezes an ImageNet VGG16; offline there are no ImageNet weights and a
    # frozen random VGG16 gives the head too weak a signal to learn from in minutes, so the
    # whole network trains (fine_tune). 64 px and 60 steps an epoch keep it to a few CPU
    # minutes.
    return BrandConfig(backbone_size=64, batch_size=32, epochs=5, steps_per_epoch=60,
                       learning_rate=1e-4, transfer_mode="fine_tune", blessing_threshold=0.2)


def full() -> BrandConfig:
    # With weights="imagenet" (online or cached) use transfer_mode="feature_extraction", the
    # study's setup; from random weights the whole VGG16 has to train.
    return BrandConfig(backbone_size=224, batch_size=32, epochs=30, early_stopping_patience=5,
                       learning_rate=1e-4, transfer_mode="fine_tune", blessing_threshold=0.6)


PRESETS = {"smoke": smoke, "default": default, "full": full}
