"""The detector family's config and its per-profile presets."""

from __future__ import annotations

import dataclasses

from pipeline_config import TrainingConfig, check

ARCHITECTURES = ("retinanet", "faster_rcnn")
# efficientnet_lite0 starts from the shipped ImageNet weights (``weights``); Model Garden's own
# backbones start from scratch here (their checkpoints are downloads).
BACKBONES = ("efficientnet_lite0", "mobilenet_v2", "resnet50")
NMS_VERSIONS = ("batched", "v1", "v2")


@dataclasses.dataclass(frozen=True)
class DetectorConfig(TrainingConfig):
    """A Model Garden detector of the four super-categories (pipeline study: an OD-API detector
    fine-tuned from COCO). Box-aware augmentation (flip with its boxes, scale jitter with crop)
    is Model Garden's parser's, at train time only."""

    architecture: str = "retinanet"
    backbone: str = "efficientnet_lite0"
    input_size: int = 256  # square side the detector runs at: a multiple of 2**max_level
    min_level: int = 3
    max_level: int = 6
    # Anchors: ``num_scales`` per octave, these aspect ratios (width/height), ``anchor_size``
    # times the level's stride.
    num_scales: int = 3
    aspect_ratios: tuple = (0.5, 1.0, 2.0)
    anchor_size: float = 4.0
    # RetinaNet's class and box heads; Faster R-CNN's RPN head and box head (its fully
    # connected layer 4 × head_filters wide).
    head_filters: int = 64
    head_convs: int = 2
    proposals: int = 1000  # Faster R-CNN's region proposals per image
    # Detection generator: scores under this are dropped before NMS; boxes overlapping a
    # kept box by more than nms_iou_threshold are suppressed.
    pre_nms_score_threshold: float = 0.05
    nms_iou_threshold: float = 0.5
    max_detections: int = 20
    # Model Garden's NMS: "batched" (tf.image.combined_non_max_suppression) is 18x faster on a
    # CPU than its padded "v2" (measured: 64 images in 0.45 s vs 7.9 s), which suits TPUs.
    nms_version: str = "batched"
    flip: bool = True
    scale_jitter: tuple = (0.8, 1.25)
    # Post-processing of the served detections (pipeline study), in the exported graph:
    # detections scoring under score_threshold are dropped after NMS;
    score_threshold: float = 0.05
    # footwear whose centre lies above this fraction of the figure's height (the span of all
    # detections; 0 turns the rule off) is a hand or a bag, not a shoe;
    footwear_min_figure_height: float = 0.5
    # footwear overlapping an upper-body box (hands at the sleeves) is dropped;
    drop_footwear_touching_upper_body: bool = True
    # of two lower-body boxes overlapping by more than this IoU, the larger (bare legs below
    # shorts) is dropped; 0 turns the rule off.
    lower_body_overlap_keep_smaller: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check(self.architecture in ARCHITECTURES,
              f"detector architecture must be one of {ARCHITECTURES}")
        check(self.backbone in BACKBONES, f"detector backbone must be one of {BACKBONES}")
        check(self.backbone == "efficientnet_lite0" or self.weights == "none",
              f"detector backbone {self.backbone} has no offline weights; use weights='none' "
              "or backbone efficientnet_lite0 with efficientnet-lite0-imagenet")
        # Level 2 is the trunks' stride-4 map, the finest any backbone here gives.
        check(2 <= self.min_level <= self.max_level <= 7, "detector levels must be 2 <= min <= "
              "max <= 7")
        check(self.input_size % (2 ** self.max_level) == 0,
              f"detector input_size must be a multiple of 2**max_level = {2 ** self.max_level}")
        check(self.num_scales >= 1 and self.aspect_ratios and
              all(r > 0 for r in self.aspect_ratios), "detector anchors need num_scales >= 1 "
              "and positive aspect ratios")
        check(0.0 <= self.pre_nms_score_threshold < 1.0 and 0.0 < self.nms_iou_threshold <= 1.0,
              "detector score threshold must be in [0, 1) and NMS IoU in (0, 1]")
        check(self.max_detections >= 1, "detector max_detections must be >= 1")
        check(self.proposals >= self.max_detections,
              "detector proposals must be at least max_detections")
        check(self.nms_version in NMS_VERSIONS, f"detector nms_version must be one of "
              f"{NMS_VERSIONS}")
        low, high = self.scale_jitter
        check(0.0 < low <= 1.0 <= high, "detector scale_jitter must be (min <= 1 <= max)")
        check(0.0 <= self.score_threshold < 1.0, "detector score_threshold must be in [0, 1)")
        check(0.0 <= self.footwear_min_figure_height < 1.0,
              "detector footwear_min_figure_height must be in [0, 1)")
        check(0.0 <= self.lower_body_overlap_keep_smaller < 1.0,
              "detector lower_body_overlap_keep_smaller must be in [0, 1)")


def smoke() -> DetectorConfig:
    return DetectorConfig(weights="efficientnet-lite0-imagenet",
                          transfer_mode="feature_extraction", input_size=64, min_level=3,
                          max_level=5, head_filters=32, head_convs=2, batch_size=4, epochs=1,
                          steps_per_epoch=2, eval_steps=1, learning_rate=3e-3,
                          blessing_threshold=0.0,
                          # Two steps leave every score near the 0.01 prior: keep them all.
                          pre_nms_score_threshold=0.0, score_threshold=0.0)


def default() -> DetectorConfig:
    """The README run's detector on 2 CPU cores: the ImageNet Lite0 trunk frozen, FPN and heads
    trained at 128 px."""
    return DetectorConfig(weights="efficientnet-lite0-imagenet",
                          transfer_mode="feature_extraction", input_size=128, batch_size=16,
                          epochs=4, steps_per_epoch=100, learning_rate=1e-3,
                          blessing_threshold=0.05)


def full() -> DetectorConfig:
    """A GPU's detector: the whole network fine-tuned at 512 px, levels 3..7."""
    return DetectorConfig(weights="efficientnet-lite0-imagenet", transfer_mode="fine_tune",
                          input_size=512, min_level=3, max_level=7, head_filters=256,
                          head_convs=4, max_detections=100, batch_size=32, epochs=30,
                          steps_per_epoch=500, learning_rate=1e-3, blessing_threshold=0.3)


def ccp() -> DetectorConfig:
    """CCP's street photos (the ccp data profile: the 700 pixel-annotated photos carry boxes)
    on a 2-core CPU: the ImageNet Lite0 trunk frozen, FPN and heads trained at 256 px, where
    the shoes of a 550x830 portrait are still 10-20 pixels tall."""
    return DetectorConfig(weights="efficientnet-lite0-imagenet",
                          transfer_mode="feature_extraction", input_size=256, batch_size=8,
                          epochs=12, steps_per_epoch=100, learning_rate=1e-3,
                          blessing_threshold=0.05)


PRESETS = {"smoke": smoke, "default": default, "full": full, "ccp": ccp}
