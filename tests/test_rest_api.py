"""TF Serving REST API over the model manager: paths, formats, b64 and error shapes."""

import base64
import json
import threading
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")

from serving import rest  # noqa: E402
from serving.inference import InferenceService  # noqa: E402


class _Api:
    """RestApi.handle with the JSON body decoded: ``(status, json)``."""

    def __init__(self, models, **kwargs):
        self.api = rest.RestApi(InferenceService(models), **kwargs)

    def __call__(self, method, path, body=None, authorization=""):
        status, content_type, payload = self.api.handle(method, path, body, authorization)
        assert content_type == "application/json"
        return status, json.loads(payload)


@pytest.fixture(scope="module")
def models(toy_models):
    return _Api(toy_models)


def _post(models, path, body):
    return models("POST", path, json.dumps(body).encode())


def test_status_paths(models):
    status, body = models("GET", "/v1/models/toy", None)
    assert status == 200
    assert body == {"model_version_status": [{"version": "3", "state": "AVAILABLE", "status": {
        "error_code": "OK", "error_message": ""}}]}
    assert models("GET", "/v1/models/toy/versions/3", None)[0] == 200
    assert models("GET", "/v1/models/toy/labels/stable", None)[0] == 200
    for path in ("/v1/models/nope", "/v1/models/toy/versions/9", "/v1/models/toy/labels/x",
                 "/v2/whatever"):
        status, body = models("GET", path, None)
        assert status == 404 and "error" in body, path


def test_metadata_lists_signatures(models):
    status, body = models("GET", "/v1/models/toy/metadata", None)
    assert status == 200 and body["model_spec"] == {"name": "toy", "signature_name": "",
                                                    "version": "3"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "measure", "classify", "regress", "slow",
                               "calls"}
    assert signatures["classify"]["methodName"] == "tensorflow/serving/classify"
    assert "x" in signatures["serving_default"]["inputs"]


def test_predict_row_and_columnar(models):
    assert _post(models, "/v1/models/toy:predict", {"instances": [1.0, 2.5]}) == (
        200, {"predictions": [2.0, 5.0]})
    assert _post(models, "/v1/models/toy/versions/3:predict", {"inputs": {"x": [4.0]}}) == (
        200, {"outputs": [8.0]})
    status, body = _post(models, "/v1/models/toy/labels/stable:predict", {
        "signature_name": "measure",
        "instances": [{"data": {"b64": base64.b64encode(b"\xff\x00ab").decode()},
                       "weight": 1.0},
                      {"data": "hello", "weight": 0.5}]})
    assert status == 200
    assert body["predictions"][0]["length"] == 4
    assert body["predictions"][0]["raw"] == {"b64": base64.b64encode(b"\xff\x00ab").decode()}
    assert body["predictions"][1] == {"length": 5, "weighted": 5.0, "raw": "hello"}


@pytest.mark.parametrize("body,fragment", [
    ({"instances": ["a", "b"]}, "input 'x'"),                  # wrong dtype
    ({"instances": [[1.0, 2.0], 3.0]}, "input 'x'"),           # ragged
    ({"instances": []}, "non-empty"),                           # empty inputs
    ({"inputs": {"z": [1.0]}}, "unknown inputs ['z']"),         # unknown alias
    ({"signature_name": "measure", "inputs": {"data": ["a"]}}, "missing inputs ['weight']"),
    ({"instances": [1.0], "inputs": [1.0]}, "exactly one"),
    ({"signature_name": "nope", "instances": [1.0]}, "not found"),
    ({"instances": [{"b64": "!!!"}]}, "base64"),
])
def test_malformed_predictions_are_400(models, body, fragment):
    status, answer = _post(models, "/v1/models/toy:predict", body)
    assert status == 400 and fragment in answer["error"], answer


def test_bad_json_nan_and_deep_nesting_are_400(models):
    for raw in (b"{not json", b'{"instances": [NaN]}', b'{"instances": [Infinity]}',
                b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"[1, 2]"):
        status, answer = models("POST", "/v1/models/toy:predict", raw)
        assert status == 400 and "error" in answer


def test_http_server_round_trip(models):
    server = rest.make_server(models.api, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/toy:predict"
        request = urllib.request.Request(url, data=json.dumps({"instances": [1.5]}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"predictions": [3.0]}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url.replace("toy", "nope"), timeout=10)
        assert err.value.code == 404
        assert "error" in json.loads(err.value.read())
    finally:
        server.shutdown()
        server.server_close()


def test_classify_and_regress(models):
    body = {"signature_name": "classify", "context": {"unused": "shop-7"},
            "examples": [{"x": 2.0}, {"x": 7.0}]}
    status, answer = _post(models, "/v1/models/toy:classify", body)
    assert status == 200
    assert answer["result"][0][0][0] == "low" and answer["result"][0][1][0] == "high"
    assert [round(row[1][1], 5) for row in answer["result"]] == [0.2, 0.7]
    status, answer = _post(models, "/v1/models/toy/labels/stable:regress",
                           {"signature_name": "regress", "examples": [{"x": 1.5}]})
    assert (status, answer) == (200, {"result": [4.5]})


@pytest.mark.parametrize("path,body,fragment", [
    (":classify", {"examples": [{"x": 1.0}]}, "Expected tensorflow/serving/classify"),
    (":classify", {"signature_name": "regress", "examples": [{"x": 1.0}]}, "classify"),
    (":regress", {"signature_name": "classify", "examples": [{"x": 1.0}]}, "regress"),
    (":classify", {"signature_name": "classify", "examples": []}, "non-empty"),
    (":classify", {"signature_name": "classify", "examples": [{"x": [1, "a"]}]}, "feature 'x'"),
    (":classify", {"signature_name": "classify", "examples": [{"y": 1.0}]},
     "Feature: x (data type: float) is required"),
    (":classify", {"signature_name": "classify", "examples": [{"x": 7}]}, "x"),  # int64
])
def test_bad_classify_and_regress_requests_are_400(models, path, body, fragment):
    status, answer = _post(models, "/v1/models/toy" + path, body)
    assert status == 400 and fragment in answer["error"], answer


def test_bearer_token(toy_models):
    api = _Api(toy_models, token="s3cret")
    assert api("GET", "/v1/models/toy")[0] == 401
    assert api("GET", "/v1/models/toy", authorization="Bearer wrong")[0] == 401
    status, answer = api("POST", "/v1/models/toy:predict", b'{"instances": [1.0]}',
                         authorization="Bearer s3cret")
    assert (status, answer) == (200, {"predictions": [2.0]})


def test_rest_timeout_is_504(toy_models):
    api = _Api(toy_models, timeout_seconds=1e-9)
    status, answer = api("POST", "/v1/models/toy:predict", b'{"instances": [1.0]}')
    assert status == 504 and "deadline" in answer["error"]


def test_metrics_endpoint(toy_models):
    from serving.metrics import ServingMetrics
    metrics = ServingMetrics(lambda: toy_models)
    api = rest.RestApi(InferenceService(toy_models, metrics=metrics),
                       metrics_path="/monitoring/prometheus/metrics")
    api.handle("POST", "/v1/models/toy:predict", b'{"instances": [1.0]}')
    api.handle("POST", "/v1/models/toy:predict", b'{"instances": ["a"]}')
    status, content_type, payload = api.handle("GET", "/monitoring/prometheus/metrics", None)
    text = payload.decode()
    assert status == 200 and content_type.startswith("text/plain")
    assert (':tensorflow:serving:request_count_total{API="predict",entrypoint="REST",'
            'model_name="toy",status="OK"} 1.0') in text
    assert 'status="INVALID_ARGUMENT"} 1.0' in text
    assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="REST",' \
        'model_name="toy"} 2.0' in text
    assert ':tensorflow:serving:model_version_state{model_name="toy",state="AVAILABLE",' \
        'version="3"} 1.0' in text


def _serve(api, **kwargs):
    server = rest.make_server(api, port=0, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1/models/toy:predict"


def test_oversized_body_is_413_and_the_server_stays_up(toy_models):
    server, url = _serve(rest.RestApi(InferenceService(toy_models), max_body_bytes=1024))
    try:
        big = json.dumps({"instances": [1.0] * 1000}).encode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(url, data=big), timeout=10)
        assert err.value.code == 413 and "exceeds 1024" in json.loads(err.value.read())["error"]
        small = urllib.request.Request(url, data=b'{"instances": [1.0]}')
        with urllib.request.urlopen(small, timeout=10) as response:
            assert json.loads(response.read()) == {"predictions": [2.0]}
    finally:
        server.shutdown()
        server.server_close()


def test_overload_is_429(toy_models):
    from serving.batching import Runner
    runner = Runner(max_concurrent=1)
    api = rest.RestApi(InferenceService(toy_models, runner))
    with runner._admitted():  # one request already in flight
        status, _, payload = api.handle("POST", "/v1/models/toy:predict",
                                        b'{"instances": [1.0]}')
    assert status == 429 and "in flight" in json.loads(payload)["error"]
    assert api.handle("POST", "/v1/models/toy:predict", b'{"instances": [1.0]}')[0] == 200


def test_mixed_type_instances_are_400(models):
    status, answer = _post(models, "/v1/models/toy:predict", {
        "signature_name": "measure",
        "instances": [{"data": "a", "weight": 1.0}, {"data": 5, "weight": 1.0}]})
    assert status == 400 and "expects strings" in answer["error"]
    status, answer = _post(models, "/v1/models/toy:predict", {"instances": [1.0, "a"]})
    assert status == 400 and "input 'x'" in answer["error"]
