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


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    """A tiny served SavedModel, version 3, label ``stable``: ``serving_default`` (x float →
    y=2x), ``measure`` (data string, weight float → length, weighted=10·weight, raw),
    ``classify`` (tf.Examples with float ``x`` → classes low/high, scores [1-x/10, x/10]) and
    ``regress`` (tf.Examples → outputs=3x), the last two with TF Serving's method names."""
    tf = pytest.importorskip("tensorflow")
    from serving import model_manager
    from serving.signatures import CLASSIFY_METHOD, REGRESS_METHOD, set_signature_methods

    class Toy(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def double(self, x):
            return {"y": x * self.factor}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data"),
                                      tf.TensorSpec([None], tf.float32, name="weight")])
        def measure(self, data, weight):
            return {"length": tf.strings.length(data), "weighted": weight * 10.0, "raw": data}

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

    base = tmp_path_factory.mktemp("toy")
    toy = Toy()
    tf.saved_model.save(toy, str(base / "3"), signatures={
        "serving_default": toy.double.get_concrete_function(),
        "measure": toy.measure.get_concrete_function(),
        "classify": toy.classify.get_concrete_function(),
        "regress": toy.regress.get_concrete_function()})
    set_signature_methods(str(base / "3"), {"classify": CLASSIFY_METHOD,
                                            "regress": REGRESS_METHOD})
    model = model_manager.ServedModel("toy", str(base), labels={"stable": 3})
    model.poll()
    return {"toy": model}
