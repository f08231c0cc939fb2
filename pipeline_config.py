"""Typed, validated pipeline configuration with named profiles.

Everything is a frozen dataclass; nothing here touches the file system or imports TensorFlow, so
importing this module is cheap and safe. This module holds what the whole pipeline shares (data,
Transform, Beam, the base every family config extends); each model family's own config class and
its per-profile presets live in its folder (``trainer/families/<family>/config.py``), and
:func:`get_config` asks every registered family for its preset. A family's config reaches its
trainer through the Trainer's ``custom_config`` (``dataclasses.asdict``) and is rebuilt there
with :meth:`TrainingConfig.from_dict` of the family's config class.

Profiles:
  ``smoke``   tiny images and model, a few steps: tests and quick checks (~1 minute of training).
  ``default`` what the README run uses on the embedded synthetic catalog on a 2-core CPU.
  ``full``    real training: the backbones' own input sizes, more data and epochs.
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Mapping, Optional

OPTIMIZERS = ("adam", "rmsprop", "adamw")
PROFILES = ("smoke", "default", "full", "ccp")
# Data profiles: another data source, the families that have a preset for it, and every other
# setting from a base profile.
DATA_PROFILES = {"ccp": "default"}
DATA_SOURCES = ("synthetic", "ccp")
REPO_ROOT = os.path.dirname(os.path.abspath(__file__))


class ConfigError(ValueError):
    """A configuration value is invalid."""


def _resolve(path: str) -> str:
    """Absolute local path, or a remote URI (gs://, s3://, ...) unchanged."""
    return path if "://" in path else os.path.abspath(path)


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if "://" in base else os.path.join(base, *parts)


def check(condition: bool, message: str) -> None:
    """Raises ConfigError(``message``) unless ``condition`` holds (for config validation)."""
    if not condition:
        raise ConfigError(message)



def _validate_weights(weights: str) -> None:
    check(bool(weights), "weights must be 'none', 'imagenet', a preset (fashion weights list) or "
          "a path to a weights file")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where records come from and how the embedded synthetic catalog is made."""

    catalog_root: str = ""  # empty: <workspace>/catalog
    # What an empty catalog is filled with: the embedded synthetic catalog, or the CCP photos
    # converted from ccp_dir (empty: ../shared/datasets/ccp beside the repository).
    source: str = "synthetic"
    ccp_dir: str = ""
    synthetic_images: int = 1200
    synthetic_seed: int = 7
    synthetic_image_size: int = 256
    eval_fraction: float = 0.2
    num_shards: int = 4
    # Trainers (and the Transform analysis) see the newest window_spans accepted spans; the
    # evaluators judge on the newest span alone. 1: the newest span only.
    window_spans: int = 1

    def __post_init__(self):
        check(self.synthetic_images >= 10, "synthetic_images must be >= 10")
        check(self.window_spans >= 1, "window_spans must be >= 1")
        check(32 <= self.synthetic_image_size <= 1024, "synthetic_image_size must be 32..1024")
        check(0.0 < self.eval_fraction < 0.9, "eval_fraction must be in (0, 0.9)")
        check(self.num_shards >= 1, "num_shards must be >= 1")
        check(self.source in DATA_SOURCES, f"data source must be one of {DATA_SOURCES}")

    @property
    def resolved_ccp_dir(self) -> str:
        """Where the CCP data set is read from."""
        return _resolve(self.ccp_dir or os.path.join(REPO_ROOT, "..", "shared", "datasets",
                                                     "ccp"))


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """How a new catalog span is compared with the accepted ones before anything trains on it
    (``components/catalog_drift``). A span past any threshold stops the run with a report; a
    span that passes becomes the baseline of the next."""

    enabled: bool = True
    history_spans: int = 5  # earlier accepted spans that duplicates are looked for in
    max_corrupt_rate: float = 0.1  # inputs rejected as broken images
    max_duplicate_rate: float = 0.2  # images with an exact or near duplicate
    near_duplicate_bits: int = 4  # pHash Hamming distance (of 64 bits) of a near duplicate
    max_image_js: float = 0.2  # brightness, contrast, resolution, aspect ratio histograms
    max_embedding_auc: float = 0.9  # a classifier telling the spans apart (0.5: same content)
    max_label_linf: float = 0.25  # TFDV L-infinity on categorical label distributions
    max_numeric_js: float = 0.3  # TFDV Jensen-Shannon on numeric features
    # A class absent now whose previous share predicts this many occurrences in the new span
    # (absent by chance with probability ~exp(-n)) has vanished ...
    vanished_class_min_expected: float = 10.0
    fail_on_vanished_classes: bool = True  # ... and stops the run
    # The image embedder (a dotted path: model code is named, not imported, by the pipeline),
    # its weights ("none": no embedding check) and input size.
    embedder: str = "trainer.backbones.efficientnet.image_embedder"
    embedding_weights: str = "efficientnet-lite0-imagenet"
    embedding_size: int = 96
    max_embedded: int = 512  # images of each span embedded (a seeded sample)

    def __post_init__(self):
        check(self.history_spans >= 1, "drift history_spans must be >= 1")
        check(self.vanished_class_min_expected >= 1, "drift vanished_class_min_expected must "
              "be >= 1")
        for name in ("max_corrupt_rate", "max_duplicate_rate", "max_image_js", "max_label_linf",
                     "max_numeric_js"):
            check(0.0 <= getattr(self, name) <= 1.0, f"drift {name} must be in [0, 1]")
        check(0.5 <= self.max_embedding_auc <= 1.0, "drift max_embedding_auc must be 0.5..1")
        check(0 <= self.near_duplicate_bits < 32, "drift near_duplicate_bits must be 0..31")
        check(32 <= self.embedding_size <= 512, "drift embedding_size must be 32..512")
        check(self.max_embedded >= 20, "drift max_embedded must be >= 20")


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    """Deterministic preprocessing done once by TF Transform."""

    # Side of the square letterboxed images Transform stores (PNG re-encoded); what every
    # image family's model receives. Each family's backbone may run at its own size.
    stored_size: int = 128

    def __post_init__(self):
        check(16 <= self.stored_size <= 1024, "transform stored_size must be 16..1024")


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Train-time random augmentation (Keras preprocessing layers, inactive at inference)."""

    flip: bool = True
    rotation: float = 0.05  # fraction of a full turn
    zoom: float = 0.1
    translation: float = 0.1

    def __post_init__(self):
        for name in ("rotation", "zoom", "translation"):
            check(0.0 <= getattr(self, name) < 0.5, f"augmentation {name} must be in [0, 0.5)")


TRANSFER_MODES = ("feature_extraction", "fine_tune", "hybrid")
IMBALANCE_STRATEGIES = ("none", "class_weights", "oversample")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """What every family's config shares: optimiser, schedule, transfer mode, devices, and the
    blessing threshold the family's evaluator applies to its blessing metric.

    Transfer modes (pipeline study): ``feature_extraction`` (frozen backbone), ``fine_tune``
    (the last ``fine_tune_layers`` backbone layers train, 0: all of it) and ``hybrid``
    (``frozen_epochs`` frozen, then fine-tuning). ``imbalance``: ``class_weights`` or
    ``oversample`` (rare classes drawn more often; the train-time augmentation makes the repeats
    differ). Training resumes after an interruption from checkpoints in the workspace.
    """

    # 'none', 'imagenet', a preset shipped in a pip package (`fashion weights list`) or the
    # path of a backbone .weights.h5 file.
    weights: str = "none"
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
    fine_tune_learning_rate: float = 0.0  # hybrid's fine-tuning phase; 0: learning_rate
    # Frozen-backbone phases run the trunk once and train the head on cached features: 0 turns
    # that off, 1 caches the training images as they are, n > 1 adds n - 1 augmented copies.
    cached_feature_views: int = 0
    imbalance: str = "none"
    # Caps each class weight (imbalance=class_weights): a class with a few examples would
    # otherwise outweigh the rest and the model would predict it everywhere. 0: no cap.
    max_class_weight: float = 10.0
    mixed_precision: bool = False  # mixed_float16 on GPUs (ignored on CPU)
    # The evaluator blesses a model only when its blessing metric (the family spec names it:
    # accuracy, micro F1, ...) is at least this value...
    blessing_threshold: float = 0.5
    # ...and, once a blessed model exists, beats the latest blessed model's value by at least
    # this much: 0 means "not worse", 0.02 demands two points better, a negative value
    # tolerates that much regression.
    min_improvement: float = 0.0
    # Retraining starts from the family's latest blessed model (same architecture) instead of
    # the pretrained trunk, for warm_start_epochs epochs (0: epochs); the evaluator still
    # compares the result with that model and only an improvement is pushed.
    warm_start: bool = False
    warm_start_epochs: int = 0
    augmentation: AugmentationConfig = AugmentationConfig()
    seed: int = 42

    def __post_init__(self):
        _validate_weights(self.weights)
        check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        check(0.0 < self.learning_rate < 1.0, "learning_rate must be in (0, 1)")
        check(0.0 <= self.fine_tune_learning_rate < 1.0,
              "fine_tune_learning_rate must be in [0, 1)")
        check(self.batch_size >= 1 and self.epochs >= 1, "batch_size and epochs must be >= 1")
        check(self.warm_start_epochs >= 0, "warm_start_epochs must be >= 0")
        check(self.steps_per_epoch >= 0 and self.eval_steps >= 0, "steps must be >= 0")
        check(self.early_stopping_patience >= 0 and self.early_stopping_start_epoch >= 0,
              "early stopping settings must be >= 0")
        check(self.transfer_mode in TRANSFER_MODES,
              f"transfer_mode must be one of {TRANSFER_MODES}")
        check(self.fine_tune_layers >= 0, "fine_tune_layers must be >= 0")
        check(0 <= self.cached_feature_views <= 16, "cached_feature_views must be 0..16")
        check(self.transfer_mode != "hybrid" or 0 < self.frozen_epochs < self.epochs,
              "hybrid transfer needs 0 < frozen_epochs < epochs")
        check(self.imbalance in IMBALANCE_STRATEGIES,
              f"imbalance must be one of {IMBALANCE_STRATEGIES}")
        check(self.max_class_weight == 0 or self.max_class_weight >= 1,
              "max_class_weight must be 0 (no cap) or >= 1")
        check(0.0 <= self.blessing_threshold <= 1.0, "blessing_threshold must be in [0, 1]")
        check(-1.0 <= self.min_improvement <= 1.0, "min_improvement must be in [-1, 1]")

    @classmethod
    def from_dict(cls, data: dict):
        """Rebuilds the config from ``dataclasses.asdict`` output (the Trainer's custom_config)."""
        data = dict(data)
        data["augmentation"] = AugmentationConfig(**data.get("augmentation", {}))
        return cls(**data)


PORTABLE_JOB_TIMEOUT_S = 7 * 24 * 3600  # how long a portable job's state may be awaited


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    """Apache Beam options: the DirectRunner (in one process or several), a Beam cluster
    reached through the Job API (``PortableRunner`` with ``job_endpoint`` and the SDK
    ``worker_pool``, e.g. ``pipeline.beam_cluster``), or any runner named here with its
    ``extra_args``."""

    runner: str = "DirectRunner"
    direct_num_workers: int = 1  # also the SDK workers a portable job runs on at once
    direct_running_mode: str = "in_memory"
    job_endpoint: str = ""  # host:port of a Beam job service (PortableRunner)
    worker_pool: str = ""  # host:port of its SDK worker pool (EXTERNAL environment)
    extra_args: tuple = ()

    def __post_init__(self):
        check(self.direct_num_workers >= 0, "direct_num_workers must be >= 0")
        check(self.direct_running_mode in ("in_memory", "multi_threading", "multi_processing"),
              "direct_running_mode must be in_memory, multi_threading or multi_processing")
        if self.runner == "PortableRunner":
            check(bool(self.job_endpoint and self.worker_pool),
                  "runner PortableRunner needs job_endpoint and worker_pool (host:port each; "
                  "python -m pipeline.beam_cluster start prints them)")
        else:
            check(not (self.job_endpoint or self.worker_pool),
                  "job_endpoint and worker_pool are used only with runner PortableRunner")

    def args(self) -> list[str]:
        if self.runner == "PortableRunner":
            # Beam applies job_server_timeout (60 s by default) to the whole job-state stream:
            # a Transform that runs longer would fail with DEADLINE_EXCEEDED.
            return ["--runner=PortableRunner", f"--job_endpoint={self.job_endpoint}",
                    "--environment_type=EXTERNAL", f"--environment_config={self.worker_pool}",
                    f"--direct_num_workers={self.direct_num_workers}",
                    f"--job_server_timeout={PORTABLE_JOB_TIMEOUT_S}", *self.extra_args]
        return [f"--runner={self.runner}", f"--direct_num_workers={self.direct_num_workers}",
                f"--direct_running_mode={self.direct_running_mode}", *self.extra_args]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: paths derive from ``workspace`` unless given.

    ``family_configs`` holds the config of every registered family (so ``--set brand.epochs=3``
    works whichever families run); ``families`` names those the pipeline trains, each its own
    Trainer → Evaluator → InfraValidator → Pusher branch.
    """

    name: str = "fashion"
    workspace: str = "workspace"
    profile: str = "default"
    data: DataConfig = DataConfig()
    transform: TransformConfig = TransformConfig()
    families: tuple = ()
    family_configs: Mapping[str, TrainingConfig] = types.MappingProxyType({})
    beam: BeamConfig = BeamConfig()
    drift: DriftConfig = DriftConfig()
    serving_dir: str = ""  # empty: <workspace>/serving

    def __post_init__(self):
        check(bool(self.name) and self.name.replace("-", "").replace("_", "").isalnum(),
              "pipeline name must be alphanumeric with - or _")
        check(bool(self.workspace), "workspace must be set")
        if not isinstance(self.family_configs, types.MappingProxyType):
            object.__setattr__(self, "family_configs",
                               types.MappingProxyType(dict(self.family_configs)))
        known = tuple(self.family_configs)
        check(bool(self.families) and set(self.families) <= set(known),
              f"families must be a non-empty subset of {known}")
        check(len(set(self.families)) == len(self.families), "families are listed twice")

    def family(self, name: str) -> TrainingConfig:
        """The config of family ``name``."""
        if name not in self.family_configs:
            raise ConfigError(f"unknown family {name!r}; choose from {tuple(self.family_configs)}")
        return self.family_configs[name]

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
    def drift_history_root(self) -> str:
        """The accepted spans' profiles and statistics, which new spans are compared with."""
        return _join(self.workspace_dir, "drift_history")

    @property
    def reports_root(self) -> str:
        """Reports a person reads (drift reports per span), outside the pipeline root."""
        return _join(self.workspace_dir, "reports")

    @property
    def checkpoint_root(self) -> str:
        """Resumable training checkpoints (kept only while a training is unfinished)."""
        return _join(self.workspace_dir, "checkpoints")

    @property
    def serving_root(self) -> str:
        return _resolve(self.serving_dir or _join(self.workspace_dir, "serving"))

    def serving_model_dir(self, family: str) -> str:
        return _join(self.serving_root, family)


def _pipeline_profile(profile: str) -> dict:
    """What a profile sets outside the families (data, Transform, Beam)."""
    if profile == "smoke":
        return {"data": DataConfig(synthetic_images=60, synthetic_image_size=96, num_shards=2),
                "transform": TransformConfig(stored_size=32),
                "drift": DriftConfig(embedding_size=64, max_embedded=60)}
    if profile == "ccp":
        # CCP photos are 550×830 portraits: letterboxed to 128 px, a garment crop keeps detail.
        return {"data": DataConfig(source="ccp", num_shards=2),
                "transform": TransformConfig(stored_size=128)}
    if profile == "default":
        # Pretrained trunks learn the synthetic catalog from 2k images (from scratch, 4k were
        # the least that generalised).
        return {"data": DataConfig(synthetic_images=2000, synthetic_image_size=256),
                "transform": TransformConfig(stored_size=96)}
    return {"data": DataConfig(synthetic_images=20000, synthetic_image_size=256),
            "transform": TransformConfig(stored_size=240),
            "beam": BeamConfig(direct_num_workers=0, direct_running_mode="multi_processing")}


def get_config(profile: str = "default", workspace: Optional[str] = None,
               **overrides) -> PipelineConfig:
    """Returns profile ``profile`` with ``workspace`` and top-level field ``overrides`` applied.

    Every registered family contributes its preset for the profile; all of them are trained
    unless ``families`` is overridden.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    # The registry imports the families' config modules, which import this one: import it here.
    from trainer.families import registry
    specs = registry.family_specs()
    base = DATA_PROFILES.get(profile, profile)
    # A data profile trains the families that have a preset for its data.
    trained = [spec for spec in specs if profile in spec.presets] if base != profile else specs
    config = PipelineConfig(
        profile=profile, families=tuple(spec.name for spec in trained),
        family_configs={spec.name: spec.preset(profile if profile in spec.presets else base)
                        for spec in specs},
        **_pipeline_profile(profile))
    if workspace is not None:
        overrides["workspace"] = workspace
    return dataclasses.replace(config, **overrides) if overrides else config


def replace_nested(config, path: str, value):
    """Returns ``config`` with dotted field ``path`` (e.g. ``category.epochs``) set to ``value``.

    A path may start with a family name (a key of ``family_configs``). Values given as strings
    (from the command line) are converted to the field's type.
    """
    head, _, rest = path.partition(".")
    family_configs = getattr(config, "family_configs", None)
    if family_configs is not None and head in family_configs and head not in {
            f.name for f in dataclasses.fields(config)}:
        if not rest:
            raise ConfigError(f"{head} is a family: set one of its fields, e.g. {head}.epochs")
        configs = dict(family_configs)
        configs[head] = replace_nested(configs[head], rest, value)
        return dataclasses.replace(config, family_configs=configs)
    fields = {f.name: f for f in dataclasses.fields(config)}
    if head not in fields:
        known = ""
        if family_configs is not None:
            known = f" (families: {', '.join(family_configs)})"
        raise ConfigError(f"{type(config).__name__} has no field {head!r}{known}")
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
