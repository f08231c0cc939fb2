"""The detector's TFX Trainer ``run_fn``: Model Garden's RetinaNet trained by Model Garden's own
loop (``train_lib.run_experiment``, Orbit), then exported with its detection module.

Raw examples, no Transform: the detector reads ImportExampleGen's records as they are (the
OD API's keys) because it needs each image's boxes at its own input size, and Model Garden's
parser already resizes images with their boxes and does the box-aware train-time augmentation
(flip with the boxes, scale jitter with crop). A Transform fragment would have to letterbox the
boxes only for the parser to resize them again.

Checkpoints go to the same resumable folder as the other families' (keyed by the config and
the data's contents): Orbit restores the latest one, so a killed run continues where it was.

Warm start (``detector.warm_start``): beside its SavedModel, every trained detector leaves a
checkpoint of the Model Garden model (``WARM_START_CHECKPOINT`` in the Model artifact, not
pushed). A retraining given the latest blessed model as TFX's ``base_model`` hands that
checkpoint to Model Garden as ``init_checkpoint`` (every module), and trains
``warm_start_epochs`` epochs.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging

from trainer import checkpoints, training
from trainer.export import warmup
from trainer.export.records import examples_to_images, read_records
from trainer.families.detector import export, model_garden
from trainer.families.detector.config import DetectorConfig

FAMILY = "detector"
WARMUP_RECORDS = 2
# Beside Format-Serving in the Model artifact: the Pusher copies only the SavedModel.
WARM_START_CHECKPOINT = "warm-start-checkpoint"


def save_warm_start_checkpoint(model, serving_model_dir: str) -> str:
    """Writes ``model``'s Model Garden checkpoint items beside ``serving_model_dir`` (in the
    Model artifact); returns the checkpoint's prefix."""
    import tensorflow as tf
    prefix = os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), WARM_START_CHECKPOINT,
                          "model")
    return tf.train.Checkpoint(**model.checkpoint_items).write(prefix)


def warm_start_checkpoint(base_model: str):
    """The checkpoint a blessed model's training left beside it (``base_model``: its
    SavedModel folder, as TFX gives it), or None when it has none (trained before warm
    starts existed)."""
    import tensorflow as tf
    folder = os.path.join(os.path.dirname(base_model.rstrip("/")), WARM_START_CHECKPOINT)
    return os.path.join(folder, "model") if tf.io.gfile.exists(
        os.path.join(folder, "model.index")) else None


def train(config: DetectorConfig, train_files, eval_files, model_dir: str,
          warm_start_from: str = None):
    """Trains (or resumes training) the detector in ``model_dir``; returns ``(experiment,
    model, history)`` with one loss entry per epoch. ``warm_start_from``: a blessed model's
    SavedModel folder whose checkpoint (:func:`warm_start_checkpoint`) initialises every
    module, for ``config.warm_start_epochs`` epochs."""
    import tensorflow as tf
    from official.core import train_lib

    warm = None
    if warm_start_from:
        warm = warm_start_checkpoint(warm_start_from)
        if warm is None:
            logging.warning("detector: %s has no warm-start checkpoint beside it; training from "
                            "the pretrained trunk", warm_start_from)
        elif config.warm_start_epochs:
            config = dataclasses.replace(config, epochs=config.warm_start_epochs)
    experiment = model_garden.experiment_config(config, train_files, eval_files)
    if warm is not None:
        experiment.task.init_checkpoint = warm
        experiment.task.init_checkpoint_modules = "all"
    steps_per_epoch = max(1, config.steps_per_epoch)
    experiment.trainer.summary_interval = steps_per_epoch
    latest = tf.train.latest_checkpoint(model_dir) if tf.io.gfile.isdir(model_dir) else None
    history = training.History()
    if warm_start_from:
        history.warm_start_result = (
            {"warm_started_from": warm_start_from} if warm is not None else
            {"warm_start_skipped": f"{warm_start_from} has no {WARM_START_CHECKPOINT}"})
    if latest:
        step = int(latest.rsplit("-", 1)[-1])
        history.resumed_at_epoch = step // steps_per_epoch
        logging.info("detector: resuming from %s (epoch %d)", latest, history.resumed_at_epoch)

    def record_epoch(logs):
        # RetinaNet logs cls_loss and box_loss, Faster R-CNN its RPN and box-head losses.
        for name, value in logs.items():
            if name.endswith("_loss") and name not in ("model_loss", "training_loss", "mask_loss"):
                history.setdefault("loss" if name == "total_loss" else name, []).append(
                    float(value))

    task = model_garden.task(experiment, logging_dir=model_dir)
    model, _ = train_lib.run_experiment(
        distribution_strategy=tf.distribute.get_strategy(), task=task, mode="train",
        params=experiment, model_dir=model_dir, save_summary=False,
        train_actions=[record_epoch])
    return experiment, model, history


def run_fn(fn_args):
    """TFX Trainer entry point (see the module docstring)."""
    config = DetectorConfig.from_dict(fn_args.custom_config[FAMILY])
    training.seed_everything(config.seed)
    model_dir = checkpoints.for_trainer(fn_args, FAMILY, dataclasses.asdict(config)) or \
        os.path.join(fn_args.model_run_dir, "checkpoints")
    experiment, model, history = train(config, fn_args.train_files, fn_args.eval_files,
                                       model_dir, training.warm_start_source(fn_args, config))
    module = export.export_module(experiment, model, config)
    save_warm_start_checkpoint(model, fn_args.serving_model_dir)
    records = read_records(fn_args.eval_files[0], WARMUP_RECORDS)
    logs = []
    for record, image in zip(records, examples_to_images(records)):
        logs += [warmup.predict_log(FAMILY, export.SERVING_DEFAULT, {export.INPUT_NAME: [image]}),
                 warmup.predict_log(FAMILY, export.TF_EXAMPLE, {export.INPUT_NAME: [record]})]
    export.save(fn_args.serving_model_dir, module, logs)
    training.write_history(fn_args.model_run_dir, history)
