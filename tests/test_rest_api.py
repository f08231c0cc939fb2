"""TF Serving REST API over the model manager: paths, formats, b64 and error shapes."""

import base64
import json
import threading
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")

from serving import rest  # noqa: E402


@pytest.fixture(scope="module")
def models(toy_models):
    return toy_models


def _post(models, path, body):
    return rest.handle(models, "POST", path, json.dumps(body).encode())


def test_status_paths(models):
    status, body = rest.handle(models, "GET", "/v1/models/toy", None)
    assert status == 200
    assert body == {"model_version_status": [{"version": "3", "state": "AVAILABLE", "status": {
        "error_code": "OK", "error_message": ""}}]}
    assert rest.handle(models, "GET", "/v1/models/toy/versions/3", None)[0] == 200
    assert rest.handle(models, "GET", "/v1/models/toy/labels/stable", None)[0] == 200
    for path in ("/v1/models/nope", "/v1/models/toy/versions/9", "/v1/models/toy/labels/x",
                 "/v2/whatever"):
        status, body = rest.handle(models, "GET", path, None)
        assert status == 404 and "error" in body, path


def test_metadata_lists_signatures(models):
    status, body = rest.handle(models, "GET", "/v1/models/toy/metadata", None)
    assert status == 200 and body["model_spec"] == {"name": "toy", "signature_name": "",
                                                    "version": "3"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "measure"}
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
        status, answer = rest.handle(models, "POST", "/v1/models/toy:predict", raw)
        assert status == 400 and "error" in answer


def test_http_server_round_trip(models):
    server = rest.make_server(models, port=0)
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
