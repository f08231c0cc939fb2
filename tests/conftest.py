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
    """A tiny served SavedModel: ``serving_default`` (x float → y=2x) and ``measure``
    (data string, weight float → length, weighted=10·weight, raw), version 3, label stable."""
    tf = pytest.importorskip("tensorflow")
    from serving import model_manager

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

    base = tmp_path_factory.mktemp("toy")
    toy = Toy()
    tf.saved_model.save(toy, str(base / "3"), signatures={
        "serving_default": toy.double.get_concrete_function(),
        "measure": toy.measure.get_concrete_function()})
    model = model_manager.ServedModel("toy", str(base), labels={"stable": 3})
    model.poll()
    return {"toy": model}
