"""Shared fixtures: tiny data made by the tests, and the optional ../shared data sets."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CCP_DIR = REPO_ROOT.parent / "shared" / "datasets" / "ccp"


@pytest.fixture
def ccp_dir():
    """The real CCP data set, or a skip with the reason when it is absent."""
    if not (CCP_DIR / "photos").is_dir():
        pytest.skip(f"CCP data set not found at {CCP_DIR} (../shared/datasets/ccp)")
    return CCP_DIR


def write_toy_model(export_dir: str, factor: float = 2.0) -> None:
    """A tiny SavedModel: ``serving_default`` (x float → y=factor·x), ``measure`` (data string,
    weight float → length, weighted=10·weight, raw_bytes: TF Serving's REST writes outputs named
    ``*_bytes`` as base64), ``classify`` (tf.Examples with float ``x`` → classes low/high,
    scores [1-x/10, x/10]), ``regress`` (tf.Examples → outputs=3x), the last two with TF
    Serving's method names, and ``slow`` (work int → done: a loop of ``work`` steps) with
    ``calls`` (how many rows ``slow`` has run)."""
    import tensorflow as tf

    from schemas.serving_api import CLASSIFY_METHOD, REGRESS_METHOD
    from trainer.export.saved_model import set_signature_methods

    class Toy(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(factor)
            self.slow_rows = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def double(self, x):
            return {"y": x * self.factor}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data"),
                                      tf.TensorSpec([None], tf.float32, name="weight")])
        def measure(self, data, weight):
            return {"length": tf.strings.length(data), "weighted": weight * 10.0,
                    "raw_bytes": data}

        def _x(self, inputs):
            return tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            high = tf.clip_by_value(self._x(inputs) / 10.0, 0.0, 1.0)
            batch = tf.shape(high)[0]
            return {"classes": tf.tile(tf.constant([[b"low", b"high"]]), [batch, 1]),
                    "scores": tf.stack([1.0 - high, high], axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": self._x(inputs) * 3.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="work")])
        def slow(self, work):
            self.slow_rows.assign_add(tf.size(work, out_type=tf.int64))
            (steps,) = tf.while_loop(lambda i: i < tf.reduce_max(work), lambda i: (i + 1,),
                                     (tf.constant(0, tf.int64),))
            return {"done": tf.fill(tf.shape(work), steps)}

        @tf.function(input_signature=[])
        def calls(self):
            return {"rows": tf.identity(self.slow_rows)}

    toy = Toy()
    tf.saved_model.save(toy, export_dir, signatures={
        "serving_default": toy.double.get_concrete_function(),
        "measure": toy.measure.get_concrete_function(),
        "classify": toy.classify.get_concrete_function(),
        "regress": toy.regress.get_concrete_function(),
        "slow": toy.slow.get_concrete_function(),
        "calls": toy.calls.get_concrete_function()})
    set_signature_methods(export_dir, {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD})


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    """The toy model (``write_toy_model``) served as version 3, label ``stable``."""
    pytest.importorskip("tensorflow")
    from serving import model_manager
    base = tmp_path_factory.mktemp("toy")
    write_toy_model(str(base / "3"))
    model = model_manager.ServedModel("toy", str(base), labels={"stable": 3})
    model.poll()
    return {"toy": model}


def write_image_model(export_dir: str) -> None:
    """An image model as ours are exported: encoded bytes → the serving graph's checked decode
    (``trainer.preprocessing.decode_and_resize``) → the mean of each 8×8 image."""
    import tensorflow as tf

    from trainer.preprocessing import decode_and_resize

    class Images(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def mean(self, images):
            pixels = tf.map_fn(lambda image: tf.cast(decode_and_resize(image, 8), tf.float32),
                               images, fn_output_signature=tf.float32)
            return {"mean": tf.reduce_mean(pixels, axis=[1, 2, 3])}

    module = Images()
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.mean.get_concrete_function()})
