"""Glue shared by the family trainers: weights resolution, optimizers, callbacks, seeding."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional, Sequence

import keras


class WeightsUnavailableError(RuntimeError):
    """Backbone weights were asked for but cannot be had (offline, missing file)."""


def resolve_weights(weights: str):
    """Maps a config ``weights`` value to what ``keras.applications`` accepts.

    ``none`` → None (random init); ``imagenet`` → 'imagenet' (keras downloads it unless cached);
    anything else must be an existing local weights file.
    """
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    path = os.path.abspath(os.path.expanduser(weights))
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"backbone weights file {path} does not exist; use weights='none' for random "
            "initialisation or give the path of a backbone .weights.h5 file")
    return path


def build_with_weights(build, weights: str):
    """Calls ``build(resolved_weights)``; turns a failed ImageNet download into a clear error."""
    resolved = resolve_weights(weights)
    try:
        return build(resolved)
    except Exception as err:  # keras raises a bare Exception on URL fetch failure
        if resolved == "imagenet" and ("URL fetch failure" in str(err) or "urlopen" in str(err)
                                       or isinstance(err, OSError)):
            raise WeightsUnavailableError(
                "ImageNet weights are not cached and cannot be downloaded (this machine is "
                "offline). Use weights='none' to train from scratch, or weights='/path/to/"
                "backbone.weights.h5' to load a local file.") from err
        raise


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam, RMSProp or AdamW (weight decay 0.01, as in the pipeline study)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=0.01)
    raise ValueError(f"unknown optimizer {name!r}")


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def checkpoint_dir(fn_args, family: str) -> Optional[str]:
    """Where ``family``'s training keeps resumable checkpoints, or None when the pipeline gave
    no ``checkpoint_root``. The folder is keyed by the config and the training files, so a rerun
    of the same training resumes it and any other training starts fresh."""
    root = fn_args.custom_config.get("checkpoint_root")
    if not root:
        return None
    key = hashlib.sha256(json.dumps(
        {"config": fn_args.custom_config, "train": sorted(map(str, fn_args.train_files))},
        sort_keys=True, default=str).encode()).hexdigest()[:16]
    return os.path.join(root, family, key)


def steps_per_epoch(configured: int, examples: int, batch_size: int) -> int:
    """The configured steps, or one pass over ``examples``."""
    return configured or max(1, -(-examples // batch_size))


def write_history(fn_args, history: dict) -> None:
    """Saves the training curves next to the model (``model_run_dir/history.json``)."""
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, "history.json"), "w") as handle:
        json.dump(history, handle, indent=2)


@dataclasses.dataclass
class TrainingJob:
    """What a family's ``run_fn`` needs before it builds its model: config, data, labels."""

    config: object
    image_size: int
    tft_output: object
    feature_spec: dict
    label_names: list
    label_counts: dict  # label id -> labelled training examples
    train_examples: int
    steps_per_epoch: int
    train: object  # tf.data.Dataset of (image, label) batches, repeated
    evaluation: object  # tf.data.Dataset, one pass (or eval_steps batches)


def prepare(fn_args, family: str, config_class, label_key: str,
            vocabulary: Optional[str] = None,
            label_names: Optional[Sequence[str]] = None) -> TrainingJob:
    """Reads the family's config, the Transform output and the labelled train/eval data.

    Labels are named by a TF Transform ``vocabulary`` file or by a closed ``label_names`` list.
    """
    from trainer import input_pipeline, training
    config = config_class.from_dict(fn_args.custom_config[family])
    image_size = int(fn_args.custom_config["image_size"])
    seed_everything(config.seed)
    training.set_mixed_precision(config.mixed_precision)
    import tensorflow_transform as tft
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    if vocabulary is not None:
        label_names = [c.decode() if isinstance(c, bytes) else c
                       for c in tft_output.vocabulary_by_name(vocabulary)]
    feature_spec = tft_output.transformed_feature_spec()
    counts = input_pipeline.count_labelled(fn_args.train_files, feature_spec, label_key)
    train_examples = counts.pop(None)
    if train_examples == 0:
        raise ValueError(f"{family}: no labelled training examples in the train split (a "
                         "catalog without these labels, e.g. CCP for brand, is trained with "
                         "--set families=... leaving this family out)")
    if len(label_names) < 2:
        raise ValueError(f"{family}: needs at least 2 labels, found {label_names}")
    balance = sorted(counts) if config.imbalance == "oversample" else ()
    train = input_pipeline.labelled_images(
        fn_args.train_files, feature_spec, label_key, image_size, config.batch_size,
        training=True, seed=config.seed, balance_classes=balance)
    evaluation = input_pipeline.labelled_images(fn_args.eval_files, feature_spec, label_key,
                                                image_size, config.batch_size, training=False)
    if config.eval_steps:
        evaluation = evaluation.take(config.eval_steps)
    return TrainingJob(config, image_size, tft_output, feature_spec, list(label_names), counts,
                       train_examples,
                       steps_per_epoch(config.steps_per_epoch, train_examples,
                                       config.batch_size), train, evaluation)


def fit_and_export(fn_args, family: str, job: TrainingJob, model, compile_model, monitor: str,
                   **export_options) -> dict:
    """Trains ``model`` through its transfer phases and exports the serving SavedModel."""
    from serving import signatures
    from trainer import input_pipeline, training
    from trainer.models import transfer
    config = job.config
    history = training.fit(
        model, compile_model, job.train, job.evaluation,
        phases=transfer.phases(config.transfer_mode, config.epochs, config.fine_tune_layers,
                               config.frozen_epochs),
        steps_per_epoch=job.steps_per_epoch, monitor=monitor,
        patience=config.early_stopping_patience,
        start_from_epoch=config.early_stopping_start_epoch,
        class_weight=(training.class_weights(job.label_counts, len(job.label_names),
                                            config.max_class_weight)
                      if config.imbalance == "class_weights" else None),
        checkpoint_dir=checkpoint_dir(fn_args, family))
    warmup = input_pipeline.sample_images(fn_args.eval_files, job.feature_spec, count=3)
    signatures.export_classifier(fn_args.serving_model_dir, model, job.tft_output,
                                 job.label_names, job.image_size, warmup_images=warmup,
                                 model_name=family, **export_options)
    write_history(fn_args, history)
    return history


def efficientnet_options(config, image_size: int) -> dict:
    """Builder keyword arguments of an ``EfficientNetConfig`` family (category, attributes)."""
    from trainer.models import efficientnet
    aug = config.augmentation
    return {"variant": config.backbone, "image_size": image_size,
            "input_size": config.input_size, "dropout": config.dropout,
            "batchnorm_momentum": config.batchnorm_momentum,
            "augment": efficientnet.augmentation(aug.flip, aug.rotation, aug.zoom,
                                                 aug.translation, seed=config.seed)}


def single_label_compiler(config, scope):
    """``compile_model`` for a softmax classifier: cross-entropy, accuracy, the configured
    optimizer, inside the distribution ``scope``."""
    def compile_model(model):
        with scope():
            model.compile(optimizer=optimizer(config.optimizer, config.learning_rate),
                          loss=keras.losses.SparseCategoricalCrossentropy(),
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return compile_model
