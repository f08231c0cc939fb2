"""The fit loop shared by every family's trainer: transfer phases, early stopping, resumable
checkpoints, class imbalance, optimizers, devices. It knows no family.

:func:`fit` trains a compiled-on-demand model through the phases of its transfer mode
(``trainer.transfer``): each phase sets which backbone layers train, recompiles and fits on.
Early stopping watches the validation metric and restores the best weights. With a
``checkpoint_dir`` training survives being killed: the running phase resumes at its last finished
epoch (``keras.callbacks.BackupAndRestore``) and finished phases are not redone (their final
weights are kept), so a rerun continues instead of starting over. The directory is removed once
training completes (``trainer.checkpoints`` chooses it).
"""

from __future__ import annotations

import contextlib
import json
import logging as python_logging
import os
import time
from typing import Callable, Optional

import keras
from absl import logging

from trainer import feature_cache, transfer

def _gfile():
    """``tf.io.gfile`` (checkpoints may live on gs:// on Kubeflow)."""
    import tensorflow as tf
    return tf.io.gfile


PHASE_DONE = "phase-{index}.done.json"
PHASE_WEIGHTS = "phase-{index}.weights.h5"
PHASE_BACKUP = "phase-{index}"


class History(dict):
    """``{metric: [value per epoch]}`` over every phase, plus where training resumed.

    ``resumed_at_epoch`` is the epoch a rerun continued from after an interruption (0: the
    training started from scratch).
    """

    resumed_at_epoch: int = 0
    warm_start_result: Optional[dict] = None  # what :func:`warm_start` did, when asked


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
    """Seeds Python, NumPy and the backend (initialisation, dropout, augmentation)."""
    keras.utils.set_random_seed(seed)


def steps_per_epoch(configured: int, examples: int, batch_size: int) -> int:
    """The configured steps, or one pass over ``examples``."""
    return configured or max(1, -(-examples // batch_size))


def write_history(model_run_dir: str, history: "History") -> None:
    """Saves the training curves next to the model (``model_run_dir/history.json``), with the
    epoch a resumed training continued from."""
    _gfile().makedirs(model_run_dir)
    with _gfile().GFile(os.path.join(model_run_dir, "history.json"), "w") as handle:
        json.dump({"resumed_at_epoch": history.resumed_at_epoch, "metrics": dict(history),
                   **(history.warm_start_result or {})}, handle, indent=2)


def class_weights(counts: dict, num_classes: int, max_weight: float = 0.0) -> dict:
    """``{class: total / (classes × count)}``: rare classes weigh more (absent ones weigh 0).

    ``max_weight`` > 0 caps each weight. Uncapped, a class with a handful of examples among
    thousands weighs ~100 times the others; on CCP street photos (16 categories, some with one
    training example) that drove a from-scratch classifier to predict a rare class everywhere.
    """
    total = sum(counts.values())
    present = [c for c in range(num_classes) if counts.get(c, 0) > 0]
    weights = {c: (total / (len(present) * counts[c]) if counts.get(c, 0) else 0.0)
               for c in range(num_classes)}
    if max_weight > 0:
        weights = {c: min(w, max_weight) for c, w in weights.items()}
    return weights


def distribution_scope() -> Callable[[], contextlib.AbstractContextManager]:
    """A scope factory that spreads training over every visible GPU, without code changes.

    TensorFlow backend: a ``MirroredStrategy`` scope when there is more than one GPU (build and
    compile the model inside it). JAX backend: Keras' ``DataParallel`` distribution is set
    globally. Otherwise (one device, CPU) an empty scope.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy().scope
    elif backend == "jax" and gpu_count() > 1:
        devices = keras.distribution.list_devices("gpu")
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return contextlib.nullcontext


def gpu_count() -> int:
    """GPUs the current Keras backend sees."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return len(tf.config.list_logical_devices("GPU"))
    try:
        return len(keras.distribution.list_devices("gpu"))
    except (NotImplementedError, RuntimeError, ValueError):
        return 0


def set_mixed_precision(enabled: bool) -> None:
    """``mixed_float16`` on a GPU when asked (heads keep float32 outputs); float32 otherwise."""
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if enabled and gpu_count() else "float32")


def fit(model: keras.Model, compile_model: Callable[[keras.Model], None], train, evaluation, *,
        phases: list, steps_per_epoch: int, monitor: str, mode: str = "max",
        patience: int = 3, start_from_epoch: int = 0, class_weight: Optional[dict] = None,
        checkpoint_dir: Optional[str] = None, callbacks: tuple = (),
        caching: Optional[feature_cache.FeatureCaching] = None,
        backbones: Optional[list] = None, warm_start_from: Optional[str] = None) -> History:
    """Trains ``model`` through ``phases``; returns the merged history (``{metric: [...]}``).

    ``compile_model(model)`` compiles it (called again at each phase, since a change of
    trainable layers needs a recompile). ``monitor`` is a validation metric (``val_...``).
    With ``caching``, a phase whose backbone is frozen trains only the model's head on trunk
    features computed once (``trainer.feature_cache``; the model must name where its trunk
    ends), with the caching's own steps per epoch. ``backbones``: the sub-models the phases'
    trainable layers apply to (default: every nested model of ``model``; ``[]`` leaves every
    layer's trainability as the caller set it). ``warm_start_from``: a SavedModel this project
    exported for the same architecture (the family's latest blessed model), whose weights
    ``model`` starts from (:func:`warm_start`).
    """
    if backbones is None:
        backbones = transfer.find_backbones(model)
    if not backbones and any(p.trainable_layers is not None for p in phases):
        raise ValueError("freezing or partial fine-tuning needs a model with a backbone")
    history = History()
    if warm_start_from:
        history.warm_start_result = warm_start(model, warm_start_from)
    epoch = 0
    gfile = _gfile() if checkpoint_dir else None
    if checkpoint_dir:
        gfile.makedirs(checkpoint_dir)
    for index, phase in enumerate(phases):
        done = os.path.join(checkpoint_dir, PHASE_DONE.format(index=index)) \
            if checkpoint_dir else None
        if backbones:
            transfer.set_trainable_layers(backbones, phase.trainable_layers)
        trained, phase_train, phase_evaluation, phase_steps = (model, train, evaluation,
                                                               steps_per_epoch)
        if (caching is not None and phase.trainable_layers == 0 and feature_cache.supports(model)
                and not (done and gfile.exists(done))):
            cached = feature_cache.prepare(model, caching, evaluation, class_weight)
            trained, phase_train, phase_evaluation, phase_steps = (
                cached.head, cached.train, cached.evaluation, cached.steps_per_epoch)
        compile_model(trained)
        if phase.learning_rate is not None:
            trained.optimizer.learning_rate = phase.learning_rate
        if done and gfile.exists(done):  # finished before an interruption: keep its result
            model.load_weights(os.path.join(checkpoint_dir, PHASE_WEIGHTS.format(index=index)))
            with gfile.GFile(done) as handle:
                saved = json.load(handle)
            for key, values in saved["history"].items():
                history.setdefault(key, []).extend(values)
            epoch += phase.epochs
            history.resumed_at_epoch = epoch
            logging.info("phase %d finished before an interruption: kept (%s)", index, done)
            continue
        phase_callbacks = [keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=patience,
            start_from_epoch=max(0, start_from_epoch - epoch), restore_best_weights=True)]
        restore = None
        if checkpoint_dir:
            restore = _BackupAndRestore(
                os.path.join(checkpoint_dir, PHASE_BACKUP.format(index=index)),
                double_checkpoint=True, delete_checkpoint=True)
            phase_callbacks.append(restore)
        # BackupAndRestore sets this when it resumes and Keras never clears it: a stale value
        # would make the next phase start at the wrong epoch.
        trained._initial_epoch = None
        total_epochs = sum(p.epochs for p in phases)
        result = trained.fit(phase_train, epochs=epoch + phase.epochs, initial_epoch=epoch,
                             steps_per_epoch=phase_steps, validation_data=phase_evaluation,
                             class_weight=class_weight,
                             callbacks=phase_callbacks + [_EpochLog(total_epochs, monitor)]
                             + list(callbacks), verbose=2)
        if restore is not None and restore.resumed_epoch:
            history.resumed_at_epoch = restore.resumed_epoch
            logging.info("phase %d resumed after epoch %d from %s", index,
                         restore.resumed_epoch, restore.backup_dir)
        phase_history = {k: [float(v) for v in values] for k, values in result.history.items()}
        for key, values in phase_history.items():
            history.setdefault(key, []).extend(values)
        if done:
            model.save_weights(os.path.join(checkpoint_dir, PHASE_WEIGHTS.format(index=index)))
            with gfile.GFile(done, "w") as handle:
                json.dump({"history": phase_history}, handle)
        epoch += phase.epochs
    if checkpoint_dir and gfile.exists(checkpoint_dir):
        gfile.rmtree(checkpoint_dir)
    return history


def warm_start_source(fn_args, config) -> Optional[str]:
    """The SavedModel a Trainer warm-starts from: TFX's ``base_model`` (the family's latest
    blessed model, given when ``config.warm_start``), or None (first run, or not asked)."""
    base = getattr(fn_args, "base_model", None)
    return base if config.warm_start and base else None


def warm_start(model: keras.Model, saved_model_dir: str) -> dict:
    """Loads the weights of a model this project exported (``ExportModule`` tracks the Keras
    model's variables as ``model_variables``, in ``model.variables`` order) into ``model``.

    Every variable must match in shape (same architecture and config); otherwise nothing is
    changed and the training starts as it would have. Returns what happened, for the history.
    """
    return warm_start_groups(saved_model_dir, {"model_variables": list(model.variables)})


def warm_start_groups(saved_model_dir: str, groups: dict) -> dict:
    """:func:`warm_start` for models exported in several parts: ``groups`` maps an attribute
    of the export (a list of variables, e.g. ``model_variables``, ``text_variables``) to the
    variables that take its values, in order. All or nothing: unless every group matches in
    count and shapes, no variable changes."""
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(saved_model_dir)
        saved = {name: list(getattr(loaded, name, [])) for name in groups}
    except (OSError, ValueError, tf.errors.OpError) as err:
        logging.warning("warm start: cannot load %s (%s); training from the usual start",
                        saved_model_dir, err)
        return {"warm_start_skipped": f"cannot load {saved_model_dir}: {err}"}
    for name, mine in groups.items():
        shapes = [tuple(v.shape) for v in mine], [tuple(v.shape) for v in saved[name]]
        if not saved[name] or shapes[0] != shapes[1]:
            reason = (f"{saved_model_dir} holds {len(saved[name])} {name}, this model "
                      f"{len(mine)}, or their shapes differ (the architecture or config "
                      "changed)")
            logging.warning("warm start skipped: %s", reason)
            return {"warm_start_skipped": reason}
    for name, mine in groups.items():
        for variable, value in zip(mine, saved[name]):
            variable.assign(tf.cast(value, variable.dtype))
    logging.info("warm start: %d variables from %s", sum(map(len, groups.values())),
                 saved_model_dir)
    return {"warm_started_from": saved_model_dir}


class _EpochLog(keras.callbacks.Callback):
    """One line per finished epoch on the ``fashion.progress`` logger (``fashion run`` shows
    it): epoch, loss, the monitored metric and the epoch's seconds."""

    def __init__(self, total_epochs: int, monitor: str):
        super().__init__()
        self._total, self._monitor = total_epochs, monitor
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = [f"{key} {float(logs[key]):.4g}" for key in ("loss", self._monitor)
                 if key in logs]
        python_logging.getLogger("fashion.progress").info(
            "epoch %d/%d %s (%.0f s)", epoch + 1, self._total, ", ".join(shown),
            time.monotonic() - self._started)


class _BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore that survives a backup torn by a kill in mid-write and says
    where it resumed (``resumed_epoch``, 0: from the start).

    Keras falls back to the previous backup only when loading raises OSError, but a truncated
    ``.weights.h5`` raises ValueError; and with no usable backup left it fails the training.
    Here an unreadable backup falls back to the previous one, and with none the phase starts
    over.
    """

    resumed_epoch = 0

    def _load_model(self):
        try:
            super()._load_model()
        except ValueError as err:
            if not self.model.built:
                raise
            raise OSError(f"unreadable backup {self._weights_path}: {err}") from err

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except OSError as err:
            logging.warning("training backup in %s unusable (%s): the phase starts over",
                            self.backup_dir, err)
            gfile = _gfile()
            for path in (self._weights_path, self._prev_weights_path,
                         self._training_metadata_path, self._prev_training_metadata_path):
                if gfile.exists(path):
                    gfile.remove(path)
            self.model._initial_epoch = None
        self.resumed_epoch = int(self.model._initial_epoch or 0)
