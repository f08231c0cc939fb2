"""The detector family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import TrainingConfig, check

ARCHITECTURES = ("retinanet",)
BACKBONES = ("mobilenet_v2", "resnet50")


@dataclasses.dataclass(frozen=True)
class DetectorConfig(TrainingConfig):
    """A Model Garden detector of the four super-categories (pipeline study: an OD-API detector
    fine-tuned from COCO). Box-aware augmentation (flip with its boxes, scale jitter with crop)
    is Model Garden's parser's, at train time only."""

    architecture: str = "retinanet"
    backbone: str = "mobilenet_v2"
    input_size: int = 256  # square side the detector runs at: a multiple of 2**max_level
    min_level: int = 3
    max_level: int = 6
    # Anchors: ``num_scales`` per octave, these aspect ratios (width/height), ``anchor_size``
    # times the level's stride.
    num_scales: int = 3
    aspect_ratios: tuple = (0.5, 1.0, 2.0)
    anchor_size: float = 4.0
    head_filters: int = 64
    head_convs: int = 2
    # Detection generator: scores under this are dropped before NMS; boxes overlapping a
    # kept box by more than nms_iou_threshold are suppressed.
    pre_nms_score_threshold: float = 0.05
    nms_iou_threshold: float = 0.5
    max_detections: int = 20
    flip: bool = True
    scale_jitter: tuple = (0.8, 1.25)

    def __post_init__(self):
        super().__post_init__()
        check(self.architecture in ARCHITECTURES,
              f"detector architecture must be one of {ARCHITECTURES}")
        check(self.backbone in BACKBONES, f"detector backbone must be one of {BACKBONES}")
        check(0 < self.min_level <= self.max_level <= 7, "detector levels must be 1 <= min <= "
              "max <= 7")
        check(self.input_size % (2 ** self.max_level) == 0,
              f"detector input_size must be a multiple of 2**max_level = {2 ** self.max_level}")
        check(self.num_scales >= 1 and self.aspect_ratios and
              all(r > 0 for r in self.aspect_ratios), "detector anchors need num_scales >= 1 "
              "and positive aspect ratios")
        check(0.0 <= self.pre_nms_score_threshold < 1.0 and 0.0 < self.nms_iou_threshold <= 1.0,
              "detector score threshold must be in [0, 1) and NMS IoU in (0, 1]")
        check(self.max_detections >= 1, "detector max_detections must be >= 1")
        low, high = self.scale_jitter
        check(0.0 < low <= 1.0 <= high, "detector scale_jitter must be (min <= 1 <= max)")


def smoke() -> DetectorConfig:
    return DetectorConfig(input_size=64, min_level=3, max_level=5, head_filters=16,
                          head_convs=1, batch_size=4, epochs=1, steps_per_epoch=2, eval_steps=1,
                          blessing_threshold=0.0)


def default() -> DetectorConfig:
    return DetectorConfig(input_size=128, batch_size=16, epochs=4, steps_per_epoch=50,
                          learning_rate=1e-3, blessing_threshold=0.05)


def full() -> DetectorConfig:
    return DetectorConfig(backbone="resnet50", input_size=512, min_level=3, max_level=7,
                          head_filters=256, head_convs=4, max_detections=100, batch_size=32,
                          epochs=30, learning_rate=1e-3, blessing_threshold=0.3)


PRESETS = {"smoke": smoke, "default": default, "full": full}
