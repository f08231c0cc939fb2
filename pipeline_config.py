"""Typed, validated pipeline configuration with named profiles.

Everything is a frozen dataclass; nothing here touches the file system or imports TensorFlow, so
importing this module is cheap and safe. A model family's config reaches its trainer through the
Trainer's ``custom_config`` (``dataclasses.asdict``) and is rebuilt there with
:meth:`TrainingConfig.from_dict` of the family's config class.

Profiles:
  ``smoke``   tiny images and model, a few steps: tests and quick checks (~1 minute of training).
  ``default`` what the README run uses on the embedded synthetic catalog on a 2-core CPU.
  ``full``    real training: EfficientNet input size of the variant, more data and epochs.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

EFFICIENTNET_INPUT_SIZES = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456,
                            "b6": 528, "b7": 600}
OPTIMIZERS = ("adam", "rmsprop", "adamw")


class ConfigError(ValueError):
    """A configuration value is invalid."""


def _resolve(path: str) -> str:
    """Absolute local path, or a remote URI (gs://, s3://, ...) unchanged."""
    return path if "://" in path else os.path.abspath(path)


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if "://" in base else os.path.join(base, *parts)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate_weights(weights: str) -> None:
    _check(bool(weights), "weights must be 'none', 'imagenet' or a path to a weights file")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where records come from and how the embedded synthetic catalog is made."""

    catalog_root: str = ""  # empty: <workspace>/catalog
    synthetic_images: int = 1200
    synthetic_seed: int = 7
    synthetic_image_size: int = 256
    eval_fraction: float = 0.2
    num_shards: int = 4

    def __post_init__(self):
        _check(self.synthetic_images >= 10, "synthetic_images must be >= 10")
        _check(32 <= self.synthetic_image_size <= 1024, "synthetic_image_size must be 32..1024")
        _check(0.0 < self.eval_fraction < 0.9, "eval_fraction must be in (0, 0.9)")
        _check(self.num_shards >= 1, "num_shards must be >= 1")


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Deterministic preprocessing done once by TF Transform."""

    image_size: int = 128  # square side of the stored (PNG re-encoded) pixels

    def __post_init__(self):
        _check(16 <= self.image_size <= 1024, "transform image_size must be 16..1024")


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Train-time random augmentation (Keras preprocessing layers, inactive at inference)."""

    flip: bool = True
    rotation: float = 0.05  # fraction of a full turn
    zoom: float = 0.1
    translation: float = 0.1

    def __post_init__(self):
        for name in ("rotation", "zoom", "translation"):
            _check(0.0 <= getattr(self, name) < 0.5, f"augmentation {name} must be in [0, 0.5)")


FAMILIES = ("category", "attributes", "brand")
TRANSFER_MODES = ("feature_extraction", "fine_tune", "hybrid")
IMBALANCE_STRATEGIES = ("none", "class_weights", "oversample")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """What every family's training shares: optimiser, schedule, transfer mode, devices.

    Transfer modes (pipeline study): ``feature_extraction`` (frozen backbone), ``fine_tune``
    (the last ``fine_tune_layers`` backbone layers train, 0: all of it) and ``hybrid``
    (``frozen_epochs`` frozen, then fine-tuning). ``imbalance``: ``class_weights`` or
    ``oversample`` (rare classes drawn more often; the train-time augmentation makes the repeats
    differ). Training resumes after an interruption from checkpoints in the workspace.
    """

    weights: str = "none"  # 'none', 'imagenet' or a path to a backbone .weights.h5 file
    dropout: float = 0.5
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    steps_per_epoch: int = 0  # 0: one pass over the training split
    eval_steps: int = 0  # 0: one pass over the eval split
    early_stopping_patience: int = 3
    # From-scratch training sits at chance for a few epochs before it takes off; early stopping
    # only watches from this epoch on.
    early_stopping_start_epoch: int = 0
    transfer_mode: str = "fine_tune"
    fine_tune_layers: int = 0
    frozen_epochs: int = 0
    imbalance: str = "none"
    # Caps each class weight (imbalance=class_weights): a class with a few examples would
    # otherwise outweigh the rest and the model would predict it everywhere. 0: no cap.
    max_class_weight: float = 10.0
    mixed_precision: bool = False  # mixed_float16 on GPUs (ignored on CPU)
    # A retrained model is blessed only if its blessing metric is at least this much above the
    # latest blessed model's (0: not worse). Negative values tolerate a small regression.
    min_improvement: float = 0.0
    augmentation: AugmentationConfig = AugmentationConfig()
    seed: int = 42

    def __post_init__(self):
        _validate_weights(self.weights)
        _check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        _check(0.0 < self.learning_rate < 1.0, "learning_rate must be in (0, 1)")
        _check(self.batch_size >= 1 and self.epochs >= 1, "batch_size and epochs must be >= 1")
        _check(self.steps_per_epoch >= 0 and self.eval_steps >= 0, "steps must be >= 0")
        _check(self.early_stopping_patience >= 0 and self.early_stopping_start_epoch >= 0,
               "early stopping settings must be >= 0")
        _check(self.transfer_mode in TRANSFER_MODES,
               f"transfer_mode must be one of {TRANSFER_MODES}")
        _check(self.fine_tune_layers >= 0, "fine_tune_layers must be >= 0")
        _check(self.transfer_mode != "hybrid" or 0 < self.frozen_epochs < self.epochs,
               "hybrid transfer needs 0 < frozen_epochs < epochs")
        _check(self.imbalance in IMBALANCE_STRATEGIES,
               f"imbalance must be one of {IMBALANCE_STRATEGIES}")
        _check(self.max_class_weight == 0 or self.max_class_weight >= 1,
               "max_class_weight must be 0 (no cap) or >= 1")
        _check(-1.0 <= self.min_improvement <= 1.0, "min_improvement must be in [-1, 1]")

    @classmethod
    def from_dict(cls, data: dict):
        """Rebuilds the config from ``dataclasses.asdict`` output (the Trainer's custom_config)."""
        data = dict(data)
        data["augmentation"] = AugmentationConfig(**data.get("augmentation", {}))
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class EfficientNetConfig(TrainingConfig):
    """What the EfficientNet families (category, attributes) add: the backbone variant, the
    side it runs at and its BatchNormalization momentum."""

    backbone: str = "b0"
    image_size: int = 0  # 0: the variant's own input size
    # Keras' default (0.99) suits fine-tuning; from-scratch training on little data needs a
    # faster one or inference-mode statistics trail the weights (see build_classifier).
    batchnorm_momentum: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        _check(self.backbone in EFFICIENTNET_INPUT_SIZES,
               f"backbone must be one of {sorted(EFFICIENTNET_INPUT_SIZES)}")
        _check(self.image_size == 0 or 32 <= self.image_size <= 1024,
               "image_size must be 0 (variant default) or 32..1024")
        _check(0.0 < self.batchnorm_momentum < 1.0, "batchnorm_momentum must be in (0, 1)")

    @property
    def input_size(self) -> int:
        return self.image_size or EFFICIENTNET_INPUT_SIZES[self.backbone]


@dataclasses.dataclass(frozen=True)
class CategoryConfig(EfficientNetConfig):
    """The EfficientNet garment-category classifier (single label)."""

    accuracy_threshold: float = 0.5  # Evaluator blesses only above this eval accuracy

    def __post_init__(self):
        super().__post_init__()
        _check(0.0 <= self.accuracy_threshold <= 1.0, "accuracy_threshold must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class AttributesConfig(EfficientNetConfig):
    """The multi-label EfficientNet attribute tagger (sigmoid head)."""

    loss: str = "binary_crossentropy"  # or 'soft_f1'
    threshold: float = 0.5  # a tag is on at or above this score
    # Families in which at most one attribute can be on (the study: one pattern, one style).
    exclusive_families: tuple = ("pattern", "color", "sleeve", "length")
    micro_f1_threshold: float = 0.0  # Evaluator blesses only above this micro-averaged F1

    def __post_init__(self):
        super().__post_init__()
        _check(self.loss in ("binary_crossentropy", "soft_f1"),
               "loss must be binary_crossentropy or soft_f1")
        _check(0.0 < self.threshold < 1.0, "threshold must be in (0, 1)")
        _check(0.0 <= self.micro_f1_threshold <= 1.0, "micro_f1_threshold must be in [0, 1]")
        _check(self.imbalance == "none", "attributes are multi-label: class weights and "
               "oversampling apply to the single-label families only (imbalance must be none)")

    @classmethod
    def from_dict(cls, data: dict):
        data = dict(data)
        data["exclusive_families"] = tuple(data.get("exclusive_families", ()))
        return super().from_dict(data)


@dataclasses.dataclass(frozen=True)
class BrandConfig(TrainingConfig):
    """The VGG16 spatial-attention brand classifier (brand study: frozen VGG16, 224 px)."""

    image_size: int = 224  # a multiple of 32
    dropout: float = 0.2
    transfer_mode: str = "feature_extraction"  # the study keeps VGG16 frozen
    accuracy_threshold: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        _check(self.image_size % 32 == 0 and 32 <= self.image_size <= 1024,
               "brand image_size must be a multiple of 32 in 32..1024")
        _check(0.0 <= self.accuracy_threshold <= 1.0, "accuracy_threshold must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    """Apache Beam options for the DirectRunner (or any runner named here)."""

    runner: str = "DirectRunner"
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    extra_args: tuple = ()

    def __post_init__(self):
        _check(self.direct_num_workers >= 0, "direct_num_workers must be >= 0")
        _check(self.direct_running_mode in ("in_memory", "multi_threading", "multi_processing"),
               "direct_running_mode must be in_memory, multi_threading or multi_processing")

    def args(self) -> list[str]:
        return [f"--runner={self.runner}", f"--direct_num_workers={self.direct_num_workers}",
                f"--direct_running_mode={self.direct_running_mode}", *self.extra_args]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: paths derive from ``workspace`` unless given."""

    name: str = "fashion"
    workspace: str = "workspace"
    profile: str = "default"
    data: DataConfig = DataConfig()
    transform: TransformConfig = TransformConfig()
    # The model families the pipeline trains, each its own Trainer → Evaluator → Pusher branch.
    families: tuple = ("category", "attributes", "brand")
    category: CategoryConfig = CategoryConfig()
    attributes: AttributesConfig = AttributesConfig()
    brand: BrandConfig = BrandConfig()
    beam: BeamConfig = BeamConfig()
    serving_dir: str = ""  # empty: <workspace>/serving

    def __post_init__(self):
        _check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(),
               "pipeline name must be alphanumeric with - or _")
        _check(bool(self.workspace), "workspace must be set")
        _check(bool(self.families) and set(self.families) <= set(FAMILIES),
               f"families must be a non-empty subset of {FAMILIES}")

    @property
    def workspace_dir(self) -> str:
        return _resolve(self.workspace)

    @property
    def catalog_root(self) -> str:
        return _resolve(self.data.catalog_root or _join(self.workspace_dir, "catalog"))

    @property
    def pipeline_root(self) -> str:
        return _join(self.workspace_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return _join(self.workspace_dir, "metadata.sqlite")

    @property
    def checkpoint_root(self) -> str:
        """Resumable training checkpoints (kept only while a training is unfinished)."""
        return _join(self.workspace_dir, "checkpoints")

    @property
    def serving_root(self) -> str:
        return _resolve(self.serving_dir or _join(self.workspace_dir, "serving"))

    def serving_model_dir(self, family: str) -> str:
        return _join(self.serving_root, family)


def _smoke() -> PipelineConfig:
    return PipelineConfig(
        profile="smoke",
        data=DataConfig(synthetic_images=60, synthetic_image_size=96, num_shards=2),
        transform=TransformConfig(image_size=32),
        category=CategoryConfig(image_size=32, batch_size=8, epochs=1, steps_per_epoch=3,
                                eval_steps=2, accuracy_threshold=0.0),
        attributes=AttributesConfig(image_size=32, batch_size=8, epochs=1, steps_per_epoch=3,
                                    eval_steps=2, micro_f1_threshold=0.0),
        brand=BrandConfig(image_size=32, batch_size=8, epochs=1, steps_per_epoch=3, eval_steps=2,
                          accuracy_threshold=0.0),
    )


def _default() -> PipelineConfig:
    # Sized for the README run on a 2-core CPU. ~4k images are the least from which a
    # from-scratch EfficientNet generalises on the synthetic catalog (1.5k are memorised), and
    # in a ten-epoch budget the model under-fits, so augmentation is kept mild.
    return PipelineConfig(
        profile="default",
        data=DataConfig(synthetic_images=4000, synthetic_image_size=256),
        transform=TransformConfig(image_size=96),
        category=CategoryConfig(
            image_size=96, batch_size=32, epochs=10, learning_rate=2e-3, dropout=0.2,
            early_stopping_patience=3, early_stopping_start_epoch=5, accuracy_threshold=0.3,
            augmentation=AugmentationConfig(flip=True, rotation=0.0, zoom=0.0,
                                            translation=0.05)),
        attributes=AttributesConfig(
            image_size=96, batch_size=32, epochs=6, learning_rate=2e-3, dropout=0.2,
            early_stopping_patience=2, early_stopping_start_epoch=3, micro_f1_threshold=0.2,
            augmentation=AugmentationConfig(flip=True, rotation=0.0, zoom=0.0,
                                            translation=0.05)),
        # The brand study freezes an ImageNet VGG16; offline there are no ImageNet weights and
        # a frozen random VGG16 gives the head too weak a signal to learn from in minutes, so
        # the whole network trains (fine_tune). 64 px and 60 steps an epoch keep it to a few
        # CPU minutes.
        brand=BrandConfig(image_size=64, batch_size=32, epochs=5, steps_per_epoch=60,
                          learning_rate=1e-4, transfer_mode="fine_tune",
                          accuracy_threshold=0.2),
    )


def _full() -> PipelineConfig:
    return PipelineConfig(
        profile="full",
        data=DataConfig(synthetic_images=20000, synthetic_image_size=256),
        transform=TransformConfig(image_size=240),
        category=CategoryConfig(backbone="b1", batch_size=32, epochs=40, learning_rate=1e-4,
                                early_stopping_patience=5, accuracy_threshold=0.8),
        attributes=AttributesConfig(backbone="b1", batch_size=32, epochs=40, learning_rate=1e-4,
                                    early_stopping_patience=5, micro_f1_threshold=0.6),
        # With weights="imagenet" (online or cached) use transfer_mode="feature_extraction",
        # the study's setup; from random weights the whole VGG16 has to train.
        brand=BrandConfig(image_size=224, batch_size=32, epochs=30, early_stopping_patience=5,
                          learning_rate=1e-4, transfer_mode="fine_tune",
                          accuracy_threshold=0.6),
        beam=BeamConfig(direct_num_workers=0, direct_running_mode="multi_processing"),
    )


PROFILES = {"smoke": _smoke, "default": _default, "full": _full}


def get_config(profile: str = "default", workspace: Optional[str] = None,
               **overrides) -> PipelineConfig:
    """Returns profile ``profile`` with ``workspace`` and top-level field ``overrides`` applied."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    config = PROFILES[profile]()
    if workspace is not None:
        overrides["workspace"] = workspace
    return dataclasses.replace(config, **overrides) if overrides else config


def replace_nested(config, path: str, value):
    """Returns ``config`` with dotted field ``path`` (e.g. ``category.epochs``) set to ``value``.

    Values given as strings (from the command line) are converted to the field's type.
    """
    head, _, rest = path.partition(".")
    fields = {f.name: f for f in dataclasses.fields(config)}
    if head not in fields:
        raise ConfigError(f"{type(config).__name__} has no field {head!r}")
    current = getattr(config, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{head} is not a section")
        return dataclasses.replace(config, **{head: replace_nested(current, rest, value)})
    if isinstance(value, str) and not isinstance(current, str):
        try:
            if isinstance(current, bool):
                value = value.lower() in ("1", "true", "yes", "on")
            elif isinstance(current, (int, float)):
                value = type(current)(value)
            elif isinstance(current, tuple):
                value = tuple(item.strip() for item in value.split(",") if item.strip())
            else:
                raise ConfigError(f"cannot set {path} from the command line")
        except ValueError:
            raise ConfigError(f"{path}: {value!r} is not a {type(current).__name__}") from None
    return dataclasses.replace(config, **{head: value})
