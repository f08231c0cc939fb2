"""``fashion serve`` on SavedModels like TF Serving's own testdata, called as its clients call.

The models are built here: ``half_plus_two`` exported by TF2's ``tf.saved_model.save`` (every
signature marked predict, two versions) and ``half_plus_three`` exported with TF1 session APIs
(placeholders of unknown shape, reference variables, classify/regress signatures, two
versions), the second of which ``tf.saved_model.load`` cannot load. Each behaviour is checked
through the ``tensorflow-serving-api`` stubs and over HTTP against what
``tensorflow_model_server`` answers.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import portpicker
import pytest

tf = pytest.importorskip("tensorflow")

from tensorflow_serving.apis import (classification_pb2, inference_pb2,  # noqa: E402
                                     model_management_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)

from conftest import REPO_ROOT  # noqa: E402
from serving.config_files import ModelSpec  # noqa: E402
from serving.model_manager import VersionPolicy  # noqa: E402
from serving.server import ModelServer, ServerOptions  # noqa: E402
from serving.session_bundle import SessionBundle  # noqa: E402


def _export_tf2_half_plus_two(path: str, b: float) -> None:
    """y = 0.5·x + b; ``regress_x_to_y`` and ``classify_x_to_y`` read tf.Examples, but as a
    plain ``tf.saved_model.save`` export every signature's method name is predict."""
    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = tf.Variable(0.5), tf.Variable(b)

        def _x(self, inputs):
            return tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            return {"scores": self.a * self._x(inputs) + self.b}

    module = HalfPlusTwo()
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.predict.get_concrete_function(),
        "regress_x_to_y": module.regress.get_concrete_function(),
        "classify_x_to_y": module.classify.get_concrete_function()})


def _export_tf1_half_plus_three(path: str, b: float) -> None:
    """TF1 session export: y = 0.5·x + b with ``x`` a placeholder of unknown shape, reference
    variables, classify/regress signatures with TF Serving's method names, and ``incr``
    (a reference counter: each call adds one)."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        a = v1.Variable(0.5, name="a", use_resource=False)
        offset = v1.Variable(b, name="b", use_resource=False)
        counter = v1.Variable(0.0, name="counter", use_resource=False)
        x = v1.placeholder(tf.float32, name="x")  # no shape: unknown rank
        y = tf.add(a * x, offset, name="y")
        examples = v1.placeholder(tf.string, name="tf_example")
        parsed = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        from_examples = tf.add(a * parsed["x"], offset, name="y_from_examples")
        incremented = v1.assign_add(counter, 1.0)
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            info = v1.saved_model.utils.build_tensor_info
            builder = v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
                "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y}),
                "regress_x_to_y": v1.saved_model.regression_signature_def(examples,
                                                                         from_examples),
                "classify_x_to_y": v1.saved_model.classification_signature_def(
                    examples, None, from_examples),
                "incr": v1.saved_model.build_signature_def(
                    {}, {"output": info(incremented)}, "tensorflow/serving/predict")})
            builder.save()


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfs")
    for version, b in ((123, 2.0), (124, 12.0)):
        _export_tf2_half_plus_two(str(root / "half_plus_two" / str(version)), b)
    for version, b in ((1, 3.0), (2, 13.0)):
        _export_tf1_half_plus_three(str(root / "half_plus_three" / str(version)), b)
    return root


def _start(bases, **options):
    specs = [ModelSpec("half_plus_two", str(bases / "half_plus_two"), VersionPolicy("all"),
                       {"stable": 123}),
             ModelSpec("half_plus_three", str(bases / "half_plus_three"), VersionPolicy("all"))]
    server = ModelServer(specs, ServerOptions(grpc_port=portpicker.pick_unused_port(),
                                              rest_port=portpicker.pick_unused_port(),
                                              poll_seconds=0.2, **options))
    server.start()
    return server


@pytest.fixture(scope="module")
def served(bases):
    server = _start(bases, allow_config_reload=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    server.stop()


def _http(server, method, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=body,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _predict_request(name, signature="", version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_the_tf1_export_needs_the_session_loader_and_is_served(served, bases):
    with pytest.raises(Exception):  # what makes TF Serving's session loader necessary
        tf.saved_model.load(str(bases / "half_plus_three" / "2"))
    server, stub = served
    assert isinstance(server.models["half_plus_three"].resolve()[1], SessionBundle)
    assert [s.state for s in server.models["half_plus_three"].statuses()] == ["AVAILABLE"] * 2
    # Placeholders of unknown shape take any shape, as in TF Serving.
    for value, expected in ((np.float32(4.0), 15.0), (np.array([1.0, 3.0], np.float32),
                                                      [13.5, 14.5]),
                            (np.array([[2.0]], np.float32), [[14.0]])):
        response = stub.Predict(_predict_request("half_plus_three", x=value), timeout=30)
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), expected)
        assert response.model_spec.version.value == 2
    older = stub.Predict(_predict_request("half_plus_three", version=1,
                                          x=np.array([1.0], np.float32)), timeout=30)
    assert list(older.outputs["y"].float_val) == [3.5]
    # The reference counter keeps its state between calls.
    counts = [stub.Predict(_predict_request("half_plus_three", "incr"), timeout=30)
              .outputs["output"].float_val[0] for _ in range(3)]
    assert counts == [1.0, 2.0, 3.0]
    assert _http(server, "POST", "/v1/models/half_plus_three/versions/1:predict",
                 b'{"instances": [1.0, 2.0, 5.0]}') == (
        200, b'{\n    "predictions": [3.5, 4.0, 5.5\n    ]\n}')


def test_request_shapes_are_left_to_tensorflow(served):
    """``x`` is declared ``[-1, 1]``: a ``[3]`` tensor (REST ``instances: [2.0, 3.0, 4.0]``)
    is fed as TF Serving feeds it, and the graph computes a ``[3]`` answer."""
    server, stub = served
    assert _http(server, "POST", "/v1/models/half_plus_two/versions/123:predict",
                 b'{"instances": [2.0, 3.0, 4.0]}') == (
        200, b'{\n    "predictions": [3.0, 3.5, 4.0\n    ]\n}')
    response = stub.Predict(_predict_request("half_plus_two", version=123,
                                             x=np.array([2.0, 3.0], np.float32)), timeout=30)
    assert [d.size for d in response.outputs["y"].tensor_shape.dim] == [2]
    assert list(response.outputs["y"].float_val) == [3.0, 3.5]
    wrong_dtype = _predict_request("half_plus_two", x=np.array([1], np.int32))
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(wrong_dtype, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _examples(request, *values):
    for value in values:
        request.input.example_list.examples.add().features.feature["x"].float_list.value \
            .append(value)
    return request


def test_classify_and_regress_take_predict_signatures_without_the_method_check(served):
    server, stub = served
    for name, b in (("half_plus_two", 12.0), ("half_plus_three", 13.0)):
        request = regression_pb2.RegressionRequest()
        request.model_spec.name, request.model_spec.signature_name = name, "regress_x_to_y"
        response = stub.Regress(_examples(request, 2.0, 4.0), timeout=30)
        assert [r.value for r in response.result.regressions] == [1.0 + b, 2.0 + b]
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name, request.model_spec.signature_name = name, "classify_x_to_y"
        response = stub.Classify(_examples(request, 2.0), timeout=30)
        assert [(c.label, c.score) for c in response.result.classifications[0].classes] == [
            ("", 1.0 + b)]
    multi = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                              ("regress_x_to_y", "tensorflow/serving/regress")):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "half_plus_two", signature
    results = stub.MultiInference(_examples(multi, 8.0), timeout=30).results
    assert results[1].regression_result.regressions[0].value == 16.0
    assert _http(server, "POST", "/v1/models/half_plus_two/labels/stable:regress",
                 b'{"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}') == (
        200, b'{\n    "results": [42.0]\n}')
    assert _http(server, "POST", "/v1/models/half_plus_two/versions/123:classify",
                 b'{"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}') == (
        200, b'{\n    "results": [[["", 12.0]]\n    ]\n}')


def test_the_method_name_check_is_tf_servings_flag(bases):
    server = _start(bases, method_name_check=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = regression_pb2.RegressionRequest()
            request.model_spec.name = "half_plus_two"
            request.model_spec.signature_name = "regress_x_to_y"
            with pytest.raises(grpc.RpcError) as err:
                stub.Regress(_examples(request, 2.0), timeout=30)
            assert (err.value.code(), err.value.details()) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "Expected regression signature method_name to be tensorflow/serving/regress. "
                "Was: tensorflow/serving/predict")
            request.model_spec.name = "half_plus_three"  # its signature has the method name
            assert stub.Regress(_examples(request, 2.0), timeout=30).result \
                .regressions[0].value == 14.0
    finally:
        server.stop()


def test_status_and_metadata_list_every_version(served):
    server, _ = served
    status, body = _http(server, "GET", "/v1/models/half_plus_two")
    assert status == 200 and [s["version"] for s in json.loads(body)["model_version_status"]] \
        == ["123", "124"]
    status, body = _http(server, "GET", "/v1/models/half_plus_two/versions/123/metadata")
    metadata = json.loads(body)
    assert metadata["model_spec"] == {"name": "half_plus_two", "signature_name": "",
                                      "version": "123"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""},
                                                               {"size": "1", "name": ""}]
    status, body = _http(server, "GET", "/v1/models/half_plus_three/metadata")
    x = json.loads(body)["metadata"]["signature_def"]["signature_def"]["serving_default"][
        "inputs"]["x"]
    assert x == {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [], "unknown_rank": True},
                 "name": "x:0"}


def test_outputs_in_tensor_content_on_request(bases):
    server = _start(bases, tensor_content=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            y = stub.Predict(_predict_request("half_plus_two", version=123,
                                              x=np.array([[1.0], [2.0]], np.float32)),
                             timeout=30).outputs["y"]
            assert y.tensor_content and not y.float_val
            assert tf.make_ndarray(y).tolist() == [[2.5], [3.0]]
    finally:
        server.stop()


def test_a_reload_whose_model_does_not_load_is_an_error_naming_it_and_changes_nothing(
        served, tmp_path):
    server, _ = served
    broken = tmp_path / "broken" / "7"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    request = model_management_pb2.ReloadConfigRequest()
    for name, base in (("half_plus_two", server.models["half_plus_two"].base_path),
                       ("half_plus_three", server.models["half_plus_three"].base_path),
                       ("broken", str(tmp_path / "broken"))):
        config = request.config.model_config_list.config.add()
        config.name, config.base_path = name, base
        config.model_version_policy.all.SetInParent()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            models.HandleReloadConfigRequest(request, timeout=60)
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    assert err.value.details().startswith(
        "1 model(s) did not become available: {{{name: broken version: 7} due to error: ")
    # Unlike TF Serving (which keeps the broken model in its config), nothing was applied.
    assert set(server.models) == {"half_plus_two", "half_plus_three"}
    assert server.models["half_plus_two"].loaded_versions() == [123, 124]


def test_python_m_serving_accepts_every_flag_with_a_warning(bases):
    """The real process: TF Serving flags with no meaning here start it with a warning."""
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=half_plus_three", f"--model_base_path={bases / 'half_plus_three'}",
         "--prefer_tflite_model=true", "--enable_profiler=false", "--num_load_threads=2",
         "--xla_cpu_compilation_enabled=false", "--saved_model_tags=serve"],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
            if "REST API on" in line:
                break
        warning = next(line for line in lines if "warning: ignoring" in line)
        for flag in ("--prefer_tflite_model", "--enable_profiler", "--num_load_threads",
                     "--xla_cpu_compilation_enabled"):
            assert flag in warning
        request = urllib.request.Request(
            f"http://127.0.0.1:{rest_port}/v1/models/half_plus_three:predict",
            data=b'{"instances": [1.0, 2.0, 5.0]}')
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.read() == b'{\n    "predictions": [13.5, 14.0, 15.5\n    ]\n}'
    finally:
        process.terminate()
        process.wait(timeout=60)
