"""TF Serving's REST API (the ``--rest_api_port`` of ``fashion serve``).

Paths: ``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` (status), ``GET .../metadata``
(signature defs), ``POST ...:predict`` (row ``instances`` or columnar ``inputs`` format, with
``{"b64": ...}`` bytes), ``POST ...:classify`` and ``...:regress`` (``examples`` with an optional
``context``), answering with TF Serving's JSON shapes and ``{"error": ...}`` on failure; beside
them, the extension ``POST ...:search`` (catalog search, ``serving.search``). Optional:
the Prometheus metrics path, a bearer token (401 without it) and TLS. :meth:`RestApi.handle` is
pure request → response logic; the HTTP server around it is :func:`make_server`.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import numpy as np

from schemas.serving_api import CLASSIFY_METHOD, REGRESS_METHOD
from serving.errors import (InvalidRequest, Overloaded, RequestTooLarge, ServingError,
                            Unauthenticated)
from serving.inference import InferenceService
from serving.search import DEFAULT_K, CatalogSearch

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<tail>/metadata|:predict|:classify|:regress|:search)?$")
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
IDLE_CONNECTION_SECONDS = 5
JSON_TYPE = "application/json"


def _decode_value(value):
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError):
                raise InvalidRequest("invalid base64 in a {'b64': ...} value") from None
        raise InvalidRequest("objects are only allowed as {'b64': ...} values")
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    return value


def _encode_value(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_encode_value(v) for v in value]
    return value


def _to_array(name: str, value, spec) -> np.ndarray:
    import tensorflow as tf
    is_string = spec.dtype == tf.string
    if is_string:
        value = _utf8(value)
    try:
        array = np.array(value, dtype=object if is_string else spec.dtype.as_numpy_dtype)
    except (ValueError, TypeError, OverflowError) as err:
        raise InvalidRequest(f"input {name!r}: {err}") from None
    if is_string and any(isinstance(v, (list, np.ndarray)) for v in array.flat):
        raise InvalidRequest(f"input {name!r}: ragged values")
    if is_string and not all(isinstance(v, bytes) for v in array.flat):
        raise InvalidRequest(f"input {name!r}: expects strings or {{'b64': ...}} values")
    if not spec.shape.is_compatible_with(array.shape):
        raise InvalidRequest(f"input {name!r}: shape {list(array.shape)} does not match "
                             f"{spec.shape.as_list()}")
    if array.size == 0:
        raise InvalidRequest(f"input {name!r} is empty")
    return array


def _utf8(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        return [_utf8(v) for v in value]
    return value


def _feature(key: str, value):
    """A ``tf.train.Feature`` from a JSON value (TF Serving's classify/regress encoding)."""
    import tensorflow as tf
    values = value if isinstance(value, list) else [value]
    values = [_decode_value(v) for v in values]
    if not values:
        return tf.train.Feature()
    if all(isinstance(v, (str, bytes)) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode("utf-8") if isinstance(v, str) else v for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    raise InvalidRequest(f"feature {key!r}: values must all be strings, integers or floats")


def _examples(body: dict) -> list:
    """Serialized tf.Examples from a ``:classify``/``:regress`` body (context merged in)."""
    import tensorflow as tf
    examples, context = body.get("examples"), body.get("context", {})
    if not isinstance(examples, list) or not examples:
        raise InvalidRequest("'examples' must be a non-empty list of objects")
    if not isinstance(context, dict):
        raise InvalidRequest("'context' must be an object")
    serialized = []
    for entry in examples:
        if not isinstance(entry, dict):
            raise InvalidRequest("every example must be an object of features")
        merged = {**context, **entry}
        example = tf.train.Example(features=tf.train.Features(
            feature={k: _feature(k, v) for k, v in merged.items()}))
        serialized.append(example.SerializeToString())
    return serialized


def _status_json(statuses) -> dict:
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in statuses]}


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number")


class RestApi:
    """The REST request handler logic over an :class:`InferenceService`."""

    def __init__(self, service: InferenceService, timeout_seconds: Optional[float] = 30.0,
                 token: Optional[str] = None, metrics_path: Optional[str] = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.service = service
        self.timeout_seconds = timeout_seconds
        self.metrics_path = metrics_path
        self.max_body_bytes = max_body_bytes
        self._expected_auth = f"Bearer {token}".encode() if token else None
        self.catalog_search = CatalogSearch(service)

    def _predict(self, signature, body: dict, deadline) -> dict:
        specs = signature.input_specs
        if ("instances" in body) == ("inputs" in body):
            raise InvalidRequest("the request needs exactly one of 'instances' or 'inputs'")
        if "instances" in body:
            instances = body["instances"]
            if not isinstance(instances, list) or not instances:
                raise InvalidRequest("'instances' must be a non-empty list")
            named = [isinstance(i, dict) and set(i) != {"b64"} for i in instances]
            if all(named):
                keys = set(instances[0])
                if any(set(i) != keys for i in instances):
                    raise InvalidRequest("every instance must name the same inputs")
                inputs = {k: [_decode_value(i[k]) for i in instances] for k in keys}
            elif any(named):
                raise InvalidRequest("instances mix named and unnamed values")
            elif len(specs) != 1:
                raise InvalidRequest(f"signature has inputs {sorted(specs)}: name them per "
                                     "instance")
            else:
                inputs = {next(iter(specs)): _decode_value(instances)}
        else:
            raw = body["inputs"]
            if isinstance(raw, dict) and set(raw) != {"b64"}:
                inputs = {k: _decode_value(v) for k, v in raw.items()}
            elif len(specs) == 1:
                inputs = {next(iter(specs)): _decode_value(raw)}
            else:
                raise InvalidRequest(f"signature has inputs {sorted(specs)}: name them in "
                                     "'inputs'")
        self.service.check_input_names(signature, inputs)
        arrays = {k: _to_array(k, v, specs[k]) for k, v in inputs.items()}
        outputs = self.service.predict(signature, arrays, deadline)
        columns = {k: _encode_value(v.tolist()) for k, v in outputs.items()}
        if "instances" in body:
            if len(columns) == 1:
                return {"predictions": next(iter(columns.values()))}
            count = len(next(iter(columns.values())))
            return {"predictions": [{k: v[i] for k, v in columns.items()}
                                    for i in range(count)]}
        return {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}

    def _metadata(self, name: str, version, label) -> dict:
        from google.protobuf import json_format
        model = self.service.model(name)
        version, _ = model.resolve(version, label)
        signatures = {k: json_format.MessageToDict(v)
                      for k, v in model.signature_defs(version).items()}
        return {"model_spec": {"name": model.name, "signature_name": "",
                               "version": str(version)},
                "metadata": {"signature_def": {"signature_def": signatures}}}

    def _inference(self, tail: str, name: str, version, label, raw: bytes) -> dict:
        try:
            body = json.loads(raw or b"", parse_constant=_reject_constant)
        except (ValueError, RecursionError) as err:
            raise InvalidRequest(f"JSON Parse error: {err}") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        signature_name = body.get("signature_name") or ""
        if not isinstance(signature_name, str):
            raise InvalidRequest("'signature_name' must be a string")
        deadline = (time.monotonic() + self.timeout_seconds
                    if self.timeout_seconds else None)
        if tail == ":search":
            image = body.get("image")
            if image is not None:
                if not isinstance(image, dict) or set(image) != {"b64"}:
                    raise InvalidRequest("'image' must be {\"b64\": \"<base64 bytes>\"}")
                image = _decode_value(image)
            return self.catalog_search.search(name, version, label, body.get("text"), image,
                                              body.get("k", DEFAULT_K), deadline)
        if tail == ":predict":
            signature = self.service.signature(name, version, label, signature_name)
            return self._predict(signature, body, deadline)
        method = CLASSIFY_METHOD if tail == ":classify" else REGRESS_METHOD
        signature = self.service.signature(name, version, label, signature_name, method)
        examples = _examples(body)
        if tail == ":classify":
            classes, scores = self.service.classify(signature, examples, deadline)
            rows, width = (classes if classes is not None else scores).shape
            return {"result": [[[classes[i, j].decode("utf-8", "replace")
                                 if classes is not None else "",
                                 float(scores[i, j]) if scores is not None else 0.0]
                                for j in range(width)] for i in range(rows)]}
        return {"result": [float(v) for v in self.service.regress(signature, examples,
                                                                   deadline)]}

    def handle(self, method: str, path: str, body: Optional[bytes],
               authorization: str = "") -> tuple:
        """Answers one request: ``(http_status, content_type, payload bytes)``."""
        path = path.split("?", 1)[0]
        try:
            if self._expected_auth is not None and not hmac.compare_digest(
                    authorization.encode("latin-1", "replace"), self._expected_auth):
                raise Unauthenticated("missing or wrong bearer token")
            if self.metrics_path and path == self.metrics_path and method == "GET":
                from serving.metrics import CONTENT_TYPE
                return HTTPStatus.OK, CONTENT_TYPE, self.service.metrics.exposition()
            return (*self._route(method, path, body),)
        except ServingError as err:
            return err.http_status, JSON_TYPE, json.dumps({"error": str(err)}).encode()

    def _route(self, method, path, body) -> tuple:
        match = _PATH.match(path)
        if not match:
            return HTTPStatus.NOT_FOUND, JSON_TYPE, json.dumps(
                {"error": f"Malformed request: {method} {path}"}).encode()
        name, tail = match.group("name"), match.group("tail")
        version = int(match.group("version")) if match.group("version") else None
        label = match.group("label")
        model = self.service.model(name)
        if method == "GET" and tail is None:
            if label is not None:
                version, _ = model.resolve(label=label)
            payload = _status_json(model.statuses(version))
        elif method == "GET" and tail == "/metadata":
            payload = self._metadata(name, version, label)
        elif method == "POST" and tail in (":predict", ":classify", ":regress", ":search"):
            with self.service.observed(tail[1:], "REST", name):
                payload = self._inference(tail, name, version, label, body)
        else:
            return HTTPStatus.METHOD_NOT_ALLOWED, JSON_TYPE, json.dumps(
                {"error": f"{method} not supported on {path}"}).encode()
        return HTTPStatus.OK, JSON_TYPE, json.dumps(payload).encode()


def make_server(api: RestApi, host: str = "127.0.0.1", port: int = 8501,
                max_threads: int = 32,
                ssl_context: Optional[ssl.SSLContext] = None) -> ThreadingHTTPServer:
    """An HTTP(S) server for ``api``; beyond ``max_threads`` concurrent requests it answers 429."""
    slots = threading.BoundedSemaphore(max_threads)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = IDLE_CONNECTION_SECONDS  # idle keep-alive connections do not block shutdown
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's
        # delayed ACK of the headers (~40 ms per keep-alive request).
        disable_nagle_algorithm = True

        def _answer(self, method):
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > api.max_body_bytes:
                err = (RequestTooLarge(f"request of {length} bytes exceeds "
                                       f"{api.max_body_bytes}") if length > 0 else
                       InvalidRequest("bad Content-Length"))
                self.close_connection = True  # the unread body makes the stream unusable
                return self._send(err.http_status, JSON_TYPE,
                                  json.dumps({"error": str(err)}).encode())
            body = self.rfile.read(length) if length else b""
            if not slots.acquire(blocking=False):
                err = Overloaded(f"more than {max_threads} concurrent REST requests")
                return self._send(err.http_status, JSON_TYPE,
                                  json.dumps({"error": str(err)}).encode())
            try:
                status, content_type, payload = api.handle(
                    method, self.path, body, self.headers.get("Authorization", ""))
            except Exception as err:  # noqa: BLE001 (the server stays up)
                status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, JSON_TYPE
                payload = json.dumps({"error": f"{type(err).__name__}: {err}"}).encode()
            finally:
                slots.release()
            self._send(status, content_type, payload)

        def _send(self, status, content_type, payload):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):  # noqa: N802 (http.server naming)
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def log_message(self, *args):  # keep request logs off stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    # Non-daemon handler threads: server_close() waits for in-flight requests (graceful stop).
    server.daemon_threads = False
    return server
