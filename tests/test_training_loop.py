"""The shared fit loop: phases, class weights and resuming a killed training."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from trainer import training  # noqa: E402
from trainer import transfer  # noqa: E402

TRAIN_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import keras
    import tensorflow as tf
    from trainer import training, transfer

    checkpoints, log = sys.argv[1], sys.argv[2]
    kill_after = int(os.environ.get("KILL_AFTER_EPOCH", "-1"))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    backbone = keras.Sequential([keras.layers.Dense(8, activation="relu")], name="backbone")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(backbone(inputs)))
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).batch(16)

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(log, "a") as handle:
                handle.write(json.dumps(epoch) + "\\n")
            if epoch == kill_after:
                os._exit(3)  # a crash, not a clean stop

    def compile_model(m):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    history = training.fit(
        model, compile_model, data, data, phases=transfer.phases("hybrid", 6, 1, 2),
        steps_per_epoch=None, monitor="val_accuracy", patience=100,
        checkpoint_dir=checkpoints, callbacks=(Record(),))
    print(json.dumps([len(history["loss"]), history.resumed_at_epoch]))
""")


def _script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(TRAIN_SCRIPT)
    return path


def test_a_killed_training_resumes_where_it_stopped(tmp_path):
    script, checkpoints, log = _script(tmp_path), tmp_path / "ckpt", tmp_path / "epochs.log"
    env = {**os.environ, "KILL_AFTER_EPOCH": "3", "PYTHONPATH": os.getcwd()}
    first = subprocess.run([sys.executable, str(script), str(checkpoints), str(log)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 3, first.stderr[-3000:]
    assert [json.loads(line) for line in log.read_text().split()] == [0, 1, 2, 3]
    env["KILL_AFTER_EPOCH"] = "-1"
    second = subprocess.run([sys.executable, str(script), str(checkpoints), str(log)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    # Phase 1 (epochs 0-1, frozen) is not redone; phase 2 resumes after epoch 3.
    assert [json.loads(line) for line in log.read_text().split()] == [0, 1, 2, 3, 4, 5]
    # Phase 1 + epochs 4, 5; the rerun says where it resumed.
    assert json.loads(second.stdout.strip().splitlines()[-1]) == [4, 4]
    assert not checkpoints.exists()  # removed once training completed


def test_class_weights_favour_rare_classes():
    weights = training.class_weights({0: 90, 1: 10}, 3)
    assert weights[1] == pytest.approx(9 * weights[0]) and weights[2] == 0.0
    assert 90 * weights[0] + 10 * weights[1] == pytest.approx(100)  # same total weight


def test_class_weights_are_capped():
    counts = {0: 990, 1: 9, 2: 1}
    uncapped = training.class_weights(counts, 3)
    assert uncapped[2] == pytest.approx(1000 / 3)
    capped = training.class_weights(counts, 3, max_weight=10.0)
    assert capped[0] == pytest.approx(uncapped[0]) and capped[1] == capped[2] == 10.0


def test_phases_freeze_then_thaw_the_backbone():
    inputs = keras.Input((4,))
    backbone = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(8)], name="backbone")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(backbone(inputs)))
    seen = []

    def compile_model(m):
        seen.append([layer.trainable for layer in backbone.layers])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    import tensorflow as tf
    data = tf.data.Dataset.from_tensor_slices((np.zeros((8, 4), "float32"),
                                               np.zeros((8,), "int32"))).batch(4)
    history = training.fit(model, compile_model, data, data,
                           phases=transfer.phases("hybrid", 3, 1, frozen_epochs=1),
                           steps_per_epoch=None, monitor="val_accuracy")
    assert seen == [[False, False], [False, True]]
    assert len(history["loss"]) == 3


def test_cpu_runs_in_float32_without_a_distribution_strategy():
    if training.gpu_count():
        pytest.skip("checks the CPU behaviour; this machine has a GPU")
    training.set_mixed_precision(True)  # asked for, but only applied on GPUs
    assert keras.mixed_precision.global_policy().name == "float32"
    import contextlib
    assert training.distribution_scope() is contextlib.nullcontext


def _example(features: dict):
    import tensorflow as tf
    return tf.train.Example(features=tf.train.Features(feature={
        key: tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        for key, value in features.items()}))


def _write(path, examples):
    import tensorflow as tf
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for example in examples:
            writer.write(example.SerializeToString())


def test_the_checkpoint_key_follows_the_data_not_its_files(tmp_path):
    """Two Transform runs of the same data write other file names, another record order and
    feature maps in another order on the wire: the training's key is the same. Other data or
    another config is another key, and a new training removes superseded checkpoints."""
    from trainer import checkpoints
    rows = [{"label": i, "image": 10 * i} for i in range(5)]
    _write(tmp_path / "run1-00000.gz", [_example(r) for r in rows])
    reordered = [_example(dict(reversed(list(r.items())))) for r in reversed(rows)]
    _write(tmp_path / "run2-00000.gz", reordered[:2])
    _write(tmp_path / "run2-00001.gz", reordered[2:])
    first = checkpoints.data_fingerprint([str(tmp_path / "run1-*")])
    assert first == checkpoints.data_fingerprint([str(tmp_path / "run2-*")])
    _write(tmp_path / "other-00000.gz", [_example({**r, "label": 0}) for r in rows])
    assert checkpoints.data_fingerprint([str(tmp_path / "other-*")]) != first
    root = tmp_path / "checkpoints"
    kept = checkpoints.checkpoint_dir(str(root), "category", {"epochs": 3},
                                      [str(tmp_path / "run1-*")])
    os.makedirs(kept)
    assert checkpoints.checkpoint_dir(str(root), "category", {"epochs": 3},
                                      [str(tmp_path / "run2-*")]) == kept
    assert os.path.isdir(kept)  # the same training: kept for resuming
    other = checkpoints.checkpoint_dir(str(root), "category", {"epochs": 4},
                                       [str(tmp_path / "run1-*")])
    assert other != kept and not os.path.exists(kept)  # superseded: removed
    assert checkpoints.checkpoint_dir("", "category", {}, []) is None


def _cacheable_model(seed=0):
    """augmentation → frozen 'backbone' → trunk_features → head (dropout, softmax)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    x = keras.Sequential([keras.layers.GaussianNoise(0.5)], name="augmentation")(inputs)
    backbone = keras.Sequential([keras.layers.Dense(8, activation="relu")], name="backbone")
    features = keras.layers.Identity(name=transfer.FEATURES_LAYER)(backbone(x))
    outputs = keras.layers.Dense(2, activation="softmax", name="scores")(
        keras.layers.Dropout(0.1)(features))
    return keras.Model(inputs, outputs)


def test_a_frozen_phase_trains_the_head_on_features_computed_once():
    import tensorflow as tf

    from trainer import feature_cache
    x = np.random.default_rng(0).normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    once = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = _cacheable_model()
    backbone_before = [np.array(w) for w in model.get_layer("backbone").get_weights()]
    trunk_calls = []
    original_extract = feature_cache.extract

    def counting_extract(extractor, dataset, views=1, augmentation=None):
        features, labels = original_extract(extractor, dataset, views, augmentation)
        trunk_calls.append(len(labels))
        return features, labels

    def compile_model(m):
        m.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    feature_cache.extract = counting_extract
    try:
        history = training.fit(
            model, compile_model, once.repeat(), once,
            phases=transfer.phases("hybrid", 5, frozen_epochs=4, fine_tune_learning_rate=0.01),
            steps_per_epoch=6, monitor="val_accuracy", patience=100,
            caching=feature_cache.FeatureCaching(once, views=3, batch_size=16))
    finally:
        feature_cache.extract = original_extract
    # The trunk ran once per cached view over the training data and once over the evaluation
    # data, not once per epoch; then the fine-tuning phase trained everything at its own rate.
    assert trunk_calls == [96 * 3, 96]
    assert len(history["loss"]) == 5
    assert history["val_accuracy"][3] > 0.8  # the head learned from cached features
    assert model.optimizer.learning_rate.numpy() == pytest.approx(0.01)
    assert not all(np.array_equal(a, b) for a, b in zip(
        backbone_before, model.get_layer("backbone").get_weights()))


def test_cached_views_beyond_the_first_are_augmented():
    import tensorflow as tf

    from trainer import feature_cache
    model = _cacheable_model()
    x = np.ones((8, 4), np.float32)
    once = tf.data.Dataset.from_tensor_slices((x, np.zeros(8, np.int32))).batch(4)
    extractor, head = feature_cache.split(model)
    features, labels = feature_cache.extract(extractor, once, views=2,
                                             augmentation=model.get_layer("augmentation"))
    assert features.shape == (16, 8) and features.dtype == np.float16 and len(labels) == 16
    plain, augmented = features[:8], features[8:]
    assert np.allclose(plain, plain[0]) and not np.allclose(augmented, plain)
    with pytest.raises(ValueError, match="augmentation"):
        feature_cache.extract(extractor, once, views=2)


@pytest.mark.parametrize("previous_backup", [True, False], ids=["previous", "none"])
def test_a_backup_torn_by_the_kill_falls_back_or_starts_the_phase_over(tmp_path,
                                                                      previous_backup):
    """A kill in the middle of writing a backup leaves a truncated weights file: the rerun
    takes the previous backup (an epoch earlier), or with none starts the phase over, and
    finishes instead of failing."""
    script, checkpoints, log = _script(tmp_path), tmp_path / "ckpt", tmp_path / "epochs.log"
    env = {**os.environ, "KILL_AFTER_EPOCH": "3", "PYTHONPATH": os.getcwd()}
    first = subprocess.run([sys.executable, str(script), str(checkpoints), str(log)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 3, first.stderr[-3000:]
    backup = checkpoints / "phase-1"
    weights = backup / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:300])  # torn mid-write
    if not previous_backup:
        for leftover in backup.glob("*.bkp"):
            leftover.unlink()
    env["KILL_AFTER_EPOCH"] = "-1"
    second = subprocess.run([sys.executable, str(script), str(checkpoints), str(log)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    epochs = [json.loads(line) for line in log.read_text().split()]
    assert epochs[-1] == 5
    rerun = epochs[4:]
    # The previous backup is the one saved after epoch 2: the rerun redoes epoch 3 onwards;
    # without it phase 2 (epochs 2-5) runs again whole.
    assert rerun == ([3, 4, 5] if previous_backup else [2, 3, 4, 5])
    trained, resumed = json.loads(second.stdout.strip().splitlines()[-1])
    assert resumed == (3 if previous_backup else 2)


def _small_model(hidden=8, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    backbone = keras.Sequential([keras.layers.Dense(hidden, activation="relu")], name="backbone")
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(backbone(inputs)))


def _export(model, export_dir):
    """Saves the model as this project's ExportModule does: its variables as
    ``model_variables``, in ``model.variables`` order."""
    import tensorflow as tf
    module = tf.Module()
    module.model_variables = [getattr(v, "value", v) for v in model.variables]
    tf.saved_model.save(module, export_dir)


def test_warm_start_loads_a_blessed_models_weights_or_changes_nothing(tmp_path):
    import tensorflow as tf
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).batch(16)
    trained = _small_model(seed=1)
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trained.fit(data, epochs=3, verbose=0)
    _export(trained, str(tmp_path / "blessed"))

    fresh = _small_model(seed=2)
    assert not np.allclose(fresh.predict(x, verbose=0), trained.predict(x, verbose=0))
    result = training.warm_start(fresh, str(tmp_path / "blessed"))
    assert result == {"warm_started_from": str(tmp_path / "blessed")}
    np.testing.assert_allclose(fresh.predict(x, verbose=0), trained.predict(x, verbose=0),
                               rtol=1e-6)

    other = _small_model(hidden=16, seed=3)  # another architecture: nothing is loaded
    before = [v.numpy().copy() for v in other.variables]
    assert "warm_start_skipped" in training.warm_start(other, str(tmp_path / "blessed"))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, other.variables))
    assert "cannot load" in training.warm_start(other, str(tmp_path / "missing"))[
        "warm_start_skipped"]


def test_a_warm_started_fit_records_where_it_started(tmp_path):
    import tensorflow as tf
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int32"))).batch(16)
    blessed = _small_model(seed=1)
    _export(blessed, str(tmp_path / "blessed"))

    def compile_model(m):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model = _small_model(seed=4)
    history = training.fit(model, compile_model, data, data,
                           phases=transfer.phases("fine_tune", 1), steps_per_epoch=None,
                           monitor="val_accuracy", warm_start_from=str(tmp_path / "blessed"))
    training.write_history(str(tmp_path / "run"), history)
    saved = json.load(open(tmp_path / "run" / "history.json"))
    assert saved["warm_started_from"] == str(tmp_path / "blessed")
    assert len(saved["metrics"]["loss"]) == 1


def test_a_warm_start_skips_hybrids_frozen_phase():
    from pipeline_config import TrainingConfig
    from trainer.kinds.classifier import training_phases
    config = TrainingConfig(transfer_mode="hybrid", epochs=8, frozen_epochs=3,
                            fine_tune_learning_rate=1e-4, warm_start_epochs=2)
    assert [p.epochs for p in training_phases(config)] == [3, 5]
    (phase,) = training_phases(config, warm=True)
    assert phase.epochs == 2 and phase.trainable_layers is None and phase.learning_rate == 1e-4
