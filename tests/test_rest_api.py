"""TF Serving REST API over the model manager: paths, formats, b64 and error shapes.

Bodies are compared byte for byte with what ``tensorflow_model_server``'s code writes
(``util/json_tensor.cc``: rapidjson's PrettyWriter with its single-line arrays;
``http_rest_api_util.cc``: protobuf's JSON printer), and error texts with its messages.
"""

import base64
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

tf = pytest.importorskip("tensorflow")

from serving import rest  # noqa: E402
from serving.inference import InferenceService  # noqa: E402


class _Api:
    """RestApi.handle with the JSON body decoded: ``(status, json)``; ``raw`` keeps bytes."""

    def __init__(self, models, **kwargs):
        self.api = rest.RestApi(InferenceService(models), **kwargs)

    def raw(self, method, path, body=None, authorization=""):
        status, content_type, payload = self.api.handle(method, path, body, authorization)
        return status, content_type, payload

    def __call__(self, method, path, body=None, authorization=""):
        status, content_type, payload = self.raw(method, path, body, authorization)
        assert content_type == "application/json"
        return status, json.loads(payload)


@pytest.fixture(scope="module")
def models(toy_models):
    return _Api(toy_models)


def _post(models, path, body):
    return models("POST", path, json.dumps(body).encode())


def _error(text: str) -> bytes:
    """TF Serving's error body: ``MakeJsonFromStatus`` through rapidjson's PrettyWriter."""
    return b'{\n    "error": ' + json.dumps(text).encode() + b"\n}"


def test_status_body_is_protobufs_json_printer(models):
    status, content_type, body = models.raw("GET", "/v1/models/toy")
    assert (status, content_type) == (200, "application/json")
    assert body == (b'{\n "model_version_status": [\n  {\n   "version": "3",\n'
                    b'   "state": "AVAILABLE",\n   "status": {\n    "error_code": "OK",\n'
                    b'    "error_message": ""\n   }\n  }\n ]\n}\n')
    assert models.raw("GET", "/v1/models/toy/versions/3")[2] == body
    # As in TF Serving, GetModelStatus does not resolve a label: every version is listed.
    assert models.raw("GET", "/v1/models/toy/labels/stable")[2] == body
    assert models.raw("GET", "/v1/models/toy/labels/unknown")[2] == body
    assert models.raw("GET", "/V1/MODELS/toy")[0] == 200  # TF Serving's paths ignore case


@pytest.mark.parametrize("method,path,status,message", [
    ("GET", "/v1/models/nope", 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/toy/versions/9", 404, "Could not find version 9 of model toy"),
    ("GET", "/v1/models", 400, "Missing model name in request."),
    ("GET", "/v1/foo", 400, "Malformed request: GET /v1/foo"),
    ("POST", "/v1/models/toy/metadata", 400, "Malformed request: POST /v1/models/toy/metadata"),
    ("GET", "/v1/models/toy:predict", 400, "Malformed request: GET /v1/models/toy:predict"),
    ("PUT", "/v1/models/toy", 400, "Malformed request: PUT /v1/models/toy"),
    ("POST", "/v1/models/toy/versions/HELLO:regress", 400,
     "Malformed request: POST /v1/models/toy/versions/HELLO:regress"),
    ("POST", "/v1/models/toy/versions/18446744073709551615:regress", 400,
     "Failed to convert version: 18446744073709551615 to numeric."),
    ("POST", "/v1/models/toy/labels/nope:predict", 400,
     "Unrecognized servable version label: nope"),
    ("POST", "/v1/models/toy/versions/9:predict", 404,
     "Servable not found for request: Specific(toy, 9)"),
    ("POST", "/v1/models/nope:predict", 404, "Servable not found for request: Latest(nope)"),
])
def test_routing_errors_are_tf_servings(models, method, path, status, message):
    assert models.raw(method, path, b'{"instances": [1.0]}') == (
        status, "application/json", _error(message))


def test_paths_outside_v1_get_libevents_404(models):
    status, content_type, body = models.raw("GET", "/index.html")
    assert (status, content_type) == (404, "text/html") and b"404 Not Found" in body


def test_metadata_body(models):
    status, _, body = models.raw("GET", "/v1/models/toy/metadata")
    assert status == 200
    head = b'{\n"model_spec":{\n "name": "toy",\n "signature_name": "",\n "version": "3"\n}\n,\n'
    assert body.startswith(head + b'"metadata": {"signature_def": {\n "signature_def": {\n')
    assert body.endswith(b"}\n}\n")
    parsed = json.loads(body)
    signatures = parsed["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "measure", "classify", "regress", "slow",
                               "calls", "__saved_model_init_op"}
    assert signatures["classify"]["method_name"] == "tensorflow/serving/classify"
    x = signatures["serving_default"]["inputs"]["x"]
    assert list(x) == ["dtype", "tensor_shape", "name"]  # the oneof 'name' is printed last
    assert x["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}


def test_predict_bodies_row_and_columnar(models):
    assert models.raw("POST", "/v1/models/toy:predict", b'{"instances": [1.0, 2.5]}')[2] == \
        b'{\n    "predictions": [2.0, 5.0\n    ]\n}'
    assert models.raw("POST", "/v1/models/toy/versions/3:predict",
                      b'{"inputs": {"x": [4.0, 0.1]}}')[2] == \
        b'{\n    "outputs": [\n        8.0,\n        0.2\n    ]\n}'
    raw = base64.b64encode(b"\xff\x00ab").decode()
    status, _, body = models.raw("POST", "/v1/models/toy/labels/stable:predict", json.dumps({
        "signature_name": "measure",
        "instances": [{"data": {"b64": raw}, "weight": 1.0},
                      {"data": "hello", "weight": 0.5}]}).encode())
    assert status == 200
    assert body == (b'{\n    "predictions": [\n        {\n            "length": 4,\n'
                    b'            "raw_bytes": {\n                "b64": "' + raw.encode()
                    + b'"\n            },\n            "weighted": 10.0\n        },\n'
                    b'        {\n            "length": 5,\n            "raw_bytes": {\n'
                    b'                "b64": "aGVsbG8="\n            },\n'
                    b'            "weighted": 5.0\n        }\n    ]\n}')


def test_floats_are_written_as_tf_serving_writes_them(models):
    """Six significant digits when they round-trip, else nine; ``.0`` on whole numbers;
    NaN and infinities as words (and accepted in requests, as rapidjson's flags allow)."""
    body = b'{"instances": [0.1, 1e6, 1e-5, 0.123456789, NaN, -Infinity, 3]}'
    assert models.raw("POST", "/v1/models/toy:predict", body)[2] == \
        b'{\n    "predictions": [0.2, 2e+06, 2e-05, 0.246913582, NaN, -Infinity, 6.0\n    ]\n}'


def test_shapes_are_tensorflows_to_judge(models):
    """TF Serving feeds the tensor as sent; a ``[None]`` input takes a ``[2, 1]`` tensor when
    the graph can compute it, and the graph's own error is a 400 otherwise."""
    assert _post(models, "/v1/models/toy:predict", {"instances": [[1.0], [2.0]]}) == (
        200, {"predictions": [[2.0], [4.0]]})
    assert _post(models, "/v1/models/toy:predict", {"inputs": 3.0}) == (200, {"outputs": 6.0})
    status, answer = _post(models, "/v1/models/toy:predict", {
        "signature_name": "classify", "instances": [["a"], ["b"]]})
    assert status == 400 and "Expected serialized to be a scalar or vector" in answer["error"]


@pytest.mark.parametrize("body,message", [
    ({"instances": ["a", "b"]}, "Failed to process element: 0 of 'instances' list. Error: "
     "INVALID_ARGUMENT: JSON Value: \"a\" Type: String is not of expected type: float"),
    ({"instances": [[1.0, 2.0], 3.0]}, "Failed to process element: 1 of 'instances' list. "
     "Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 1"),
    ({"instances": [[1.0, 2.0], [3.0, [4.0]]]}, "Failed to process element: 1 of 'instances' "
     "list. Error: INVALID_ARGUMENT: Encountered list at unexpected level: 1 expected < 1"),
    ({"instances": []}, "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
    ({"instances": 1.0}, "JSON Value: {\n    \"instances\": 1.0\n} Expecting 'instances' to be "
     "an list/array"),
    ({"inputs": {"z": [1.0]}}, "Missing named input: x in 'inputs' object."),
    ({"signature_name": "measure", "inputs": {"data": ["a"]}},
     "Missing named input: weight in 'inputs' object."),
    ({"signature_name": "measure", "inputs": ["a"]}, "inputs is a plain value/list, but "
     "expecting an object as multiple input tensors required as per tensorinfo_map"),
    ({"signature_name": "measure", "instances": ["a"]}, "instances is a plain list, but "
     "expecting list of objects as multiple input tensors required as per tensorinfo_map"),
    ({"signature_name": "measure", "instances": [{"data": "a"}]}, "Failed to process element: "
     "0 of 'instances' list. JSON object: {\n    \"data\": \"a\"\n} keys must be equal to: "
     "data,weight"),
    ({"instances": [1.0], "inputs": [1.0]}, "JSON Value: {\n    \"instances\": [1.0],\n    "
     "\"inputs\": [1.0]\n} Not formatted correctly expecting only one of 'inputs' or "
     "'instances' keys to exist "),
    ({"signature_name": "nope", "instances": [1.0]},
     "Serving signature name: \"nope\" not found in signature def"),
    ({"signature_name": 7, "instances": [1.0]}, "JSON Value: {\n    \"signature_name\": 7,\n"
     "    \"instances\": [1.0]\n} not formatted correctly. 'signature_name' key must be a "
     "string value."),
    ({"signature_name": "measure", "instances": [{"data": {"b64": "!!!"}, "weight": 1.0}]},
     "Failed to process element: 0 key: data of 'instances' list. Error: INVALID_ARGUMENT: "
     "Unable to base64 decode"),
    ({"signature_name": "measure", "instances": [{"data": "a", "weight": 1.0},
                                                 {"data": 5, "weight": 1.0}]},
     "Failed to process element: 1 key: data of 'instances' list. Error: INVALID_ARGUMENT: "
     "JSON Value: 5 Type: Number is not of expected type: string"),
    ({}, "Missing 'inputs' or 'instances' key"),
    ({"signature_name": "calls", "inputs": {}}, "Failed to get input map for signature: calls"),
])
def test_malformed_predictions_get_tf_servings_messages(models, body, message):
    assert models.raw("POST", "/v1/models/toy:predict", json.dumps(body).encode()) == (
        400, "application/json", _error(message))


@pytest.mark.parametrize("raw,message", [
    (b"", "JSON Parse error: The document is empty"),
    (b"instances = [1, 2]", "JSON Parse error: Invalid value. at offset: 0"),
    (b"{not json", "JSON Parse error: Missing a name for object member. at offset: 1"),
    (b'{"instances": [1.0 2.0]}', "JSON Parse error: Missing a comma or ']' after an array "
     "element. at offset: 19"),
    (b"[1, 2]", "JSON Value: [1, 2] Is not object"),
    (b'{"signature_name": "measure", "instances": [{"data": "\\ud800", "weight": 1.0}]}',
     "Failed to process element: 0 key: data of 'instances' list. Error: INVALID_ARGUMENT: "
     "JSON Parse error: The surrogate pair in string is invalid."),
])
def test_bad_json_gets_rapidjsons_wording(models, raw, message):
    assert models.raw("POST", "/v1/models/toy:predict", raw)[::2] == (400, _error(message))


def test_strings_keep_their_raw_bytes(models):
    """Like rapidjson, bytes that are not UTF-8 reach the model as they were sent."""
    status, _, body = models.raw("POST", "/v1/models/toy:predict", b'{"signature_name": '
                                 b'"measure", "inputs": {"data": ["\xff\xfe"], "weight": [1.0]}}')
    assert status == 200 and json.loads(body) == {"outputs": {
        "length": [2], "raw_bytes": [{"b64": "//4="}], "weighted": [10.0]}}


def test_text_after_the_json_object_is_ignored_as_in_tf_serving(models):
    assert _post(models, "/v1/models/toy:predict", {"instances": [1.0]}) == \
        models("POST", "/v1/models/toy:predict", b'{"instances": [1.0]} trailing')


def test_deep_nesting_is_400(models):
    raw = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
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
            assert response.headers["Content-Type"] == "application/json"
            assert "Server" not in response.headers
            assert json.loads(response.read()) == {"predictions": [3.0]}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url.replace("toy", "nope"), data=b'{"instances": [1]}',
                                   timeout=10)
        assert err.value.code == 404
        assert json.loads(err.value.read()) == {
            "error": "Servable not found for request: Latest(nope)"}
    finally:
        server.shutdown()
        server.server_close()


def test_cors_headers_and_preflight(toy_models):
    server = rest.make_server(rest.RestApi(InferenceService(toy_models), cors=True), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1/models/toy"
    try:
        with urllib.request.urlopen(base, timeout=10) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.headers["Access-Control-Allow-Methods"] == "POST, GET"
        preflight = urllib.request.Request(base + ":predict", method="OPTIONS",
                                           headers={"Origin": "https://shop.example"})
        with urllib.request.urlopen(preflight, timeout=10) as response:
            assert response.status == 200 and response.read() == b""
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(base, method="OPTIONS"), timeout=10)
        assert err.value.code == 400
    finally:
        server.shutdown()
        server.server_close()


def test_classify_and_regress_bodies(models):
    body = {"signature_name": "classify", "context": {"unused": "shop-7"},
            "examples": [{"x": 2.0}, {"x": 7.0}]}
    status, _, answer = models.raw("POST", "/v1/models/toy:classify", json.dumps(body).encode())
    assert status == 200
    assert answer == (b'{\n    "results": [[["low", 0.8], ["high", 0.2]], [["low", 0.3], '
                      b'["high", 0.7]]\n    ]\n}')
    assert models.raw("POST", "/v1/models/toy/labels/stable:regress", json.dumps(
        {"signature_name": "regress", "examples": [{"x": 1.5}, {"x": 2.0}]}).encode())[2] == \
        b'{\n    "results": [4.5, 6.0]\n}'


@pytest.mark.parametrize("path,body,fragment", [
    (":classify", {"examples": [{"x": 1.0}]}, "No classification inputs found in SignatureDef"),
    (":classify", {"signature_name": "regress", "examples": [{"x": 1.0}]},
     "Expected classification signature outputs to contain at least one of \"classes\" or "
     "\"scores\""),
    (":regress", {"signature_name": "classify", "examples": [{"x": 1.0}]},
     "Expected one output Tensor."),
    (":classify", {"signature_name": "nope", "examples": [{"x": 1.0}]},
     "No signature was found with the name: nope"),
    (":classify", {"signature_name": "classify", "examples": []}, "'examples' value is an "
     "empty array"),
    (":regress", {"signature_name": "regress"}, "When method is classify, key 'examples' is "
     "expected and was not found"),
    (":classify", {"signature_name": "classify", "examples": [{"x": [1, "a"]}]},
     "Unexpected element type in feature: x expecting type: int64"),
    (":classify", {"signature_name": "classify", "examples": [{"x": None}]},
     "Feature: x has element with unexpected JSON type: Null"),
    (":classify", {"signature_name": "classify", "examples": [7]},
     "Example must be JSON object but got JSON Number"),
    (":classify", {"signature_name": "classify", "examples": [{"y": 1.0}]},
     "Feature: x (data type: float) is required"),
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


def _raw_exchange(port: int, data: bytes, seconds: float = 10.0) -> bytes:
    """Sends ``data`` on a fresh connection and reads until the server closes it."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as connection:
        connection.sendall(data)
        received = b""
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    return received
                received += chunk
        except socket.timeout:
            return received + b"<timeout>"


def test_a_chunked_body_is_refused_and_nothing_in_it_is_executed(toy_models):
    """Before: ``Transfer-Encoding`` was ignored, the POST answered as bodiless and the chunk
    parsed as a second request (request smuggling behind a proxy)."""
    server, _ = _serve(rest.RestApi(InferenceService(toy_models)))
    try:
        smuggled = b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = _raw_exchange(server.server_address[1], (
            b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(smuggled) + smuggled
            + b"\r\n0\r\n\r\n"))
        assert answer.startswith(b"HTTP/1.1 501 ")
        assert answer.count(b"HTTP/1.1 ") == 1 and b"model_version_status" not in answer
        assert b"Transfer-Encoding is not supported" in answer
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_is_checked_before_the_body_is_read(toy_models):
    """Before: a client without the token could make the server read (and hold) a body of up
    to --max_request_bytes. Now the headers alone get the 401, at once."""
    server, _ = _serve(rest.RestApi(InferenceService(toy_models), token="s3cret"))
    try:
        start = time.monotonic()
        answer = _raw_exchange(server.server_address[1], (
            b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 60000000\r\n\r\n" + b"[" * 1000))  # the rest is never sent
        assert time.monotonic() - start < 5
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert b'WWW-Authenticate: Bearer realm="fashion serve"' in answer
    finally:
        server.shutdown()
        server.server_close()


def test_connections_are_bounded(toy_models):
    """Before: every connection got a thread, without limit. Beyond max_connections a new one
    is answered 503 and closed."""
    import socket
    server = rest.make_server(rest.RestApi(InferenceService(toy_models)), port=0,
                              max_connections=4)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        time.sleep(0.3)  # the four are accepted and hold their connection threads
        assert _raw_exchange(port, b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n\r\n") \
            .startswith(b"HTTP/1.1 503 ")
        for connection in idle:
            connection.close()
        time.sleep(0.3)
        assert _http_get(port, "/v1/models/toy")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_burst_of_connections_waits_in_the_listen_backlog(toy_models):
    """Before: a backlog of 5, so a burst of 200 connections saw dozens time out. 200
    connections opened while the server is not accepting yet all connect, and all are
    answered once it is."""
    import socket
    server = rest.make_server(rest.RestApi(InferenceService(toy_models)), port=0)
    port = server.server_address[1]
    burst = []
    try:
        for _ in range(200):
            connection = socket.create_connection(("127.0.0.1", port), timeout=3)
            connection.sendall(b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
            burst.append(connection)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for connection in burst:
            connection.settimeout(30)
            assert connection.recv(12) == b"HTTP/1.1 200"
    finally:
        for connection in burst:
            connection.close()
        server.shutdown()
        server.server_close()


def _http_get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read()
