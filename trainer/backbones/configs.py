"""Config bases for families built on a shared backbone (no Keras import: config only)."""

from __future__ import annotations

import dataclasses

from pipeline_config import AugmentationConfig, TrainingConfig, check

EFFICIENTNET_INPUT_SIZES = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456,
                            "b6": 528, "b7": 600, "lite0": 224, "lite1": 240, "lite2": 260,
                            "lite3": 280, "lite4": 300}

# The shipped ImageNet EfficientNet-Lite0 (`fashion weights list`): the trunk of every profile of
# the EfficientNet families.
PRETRAINED_LITE0 = {"backbone": "lite0", "weights": "efficientnet-lite0-imagenet"}
# The ccp data profile's schedule on a 2-core CPU: 20 epochs of the head on cached features
# (the images as they are and 3 augmented copies), then 5 epochs fine-tuning the trunk's last
# blocks at a tenth of the rate.
CCP_HYBRID_SCHEDULE = {
    **PRETRAINED_LITE0, "backbone_size": 224, "batch_size": 32, "epochs": 25,
    "learning_rate": 1e-3, "fine_tune_learning_rate": 1e-4, "dropout": 0.3,
    "transfer_mode": "hybrid", "frozen_epochs": 20, "fine_tune_layers": 40,
    "cached_feature_views": 4, "early_stopping_patience": 6,
    "augmentation": AugmentationConfig(flip=True, rotation=0.0, zoom=0.1, translation=0.05)}


@dataclasses.dataclass(frozen=True)
class EfficientNetConfig(TrainingConfig):
    """What an EfficientNet family adds: the variant, the side its backbone runs at and its
    BatchNormalization momentum."""

    backbone: str = "b0"
    backbone_size: int = 0  # 0: the variant's own input size
    # Keras' default (0.99) suits fine-tuning; from-scratch training on little data needs a
    # faster one or inference-mode statistics trail the weights (see pooled_features).
    batchnorm_momentum: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        check(self.backbone in EFFICIENTNET_INPUT_SIZES,
              f"backbone must be one of {sorted(EFFICIENTNET_INPUT_SIZES)}")
        check(self.backbone_size == 0 or 32 <= self.backbone_size <= 1024,
              "backbone_size must be 0 (variant default) or 32..1024")
        check(0.0 < self.batchnorm_momentum < 1.0, "batchnorm_momentum must be in (0, 1)")

    @property
    def resolved_backbone_size(self) -> int:
        """The side the backbone runs at."""
        return self.backbone_size or EFFICIENTNET_INPUT_SIZES[self.backbone]

    def trunk_options(self, source_size: int) -> dict:
        """Keyword arguments of ``efficientnet.pooled_features`` for this config, without the
        augmentation block (a Keras object: the caller builds it)."""
        return {"variant": self.backbone, "source_size": source_size,
                "backbone_size": self.resolved_backbone_size, "dropout": self.dropout,
                "batchnorm_momentum": self.batchnorm_momentum}
