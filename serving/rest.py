"""TF Serving's REST API over :mod:`serving.model_manager` (a first slice of ``fashion serve``).

Implemented: ``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` (status),
``GET .../metadata`` (signature defs) and ``POST ...:predict`` in the row (``instances``) and
columnar (``inputs``) formats with ``{"b64": ...}`` bytes, answering with TF Serving's JSON
shapes (``{"error": ...}`` on failure). :func:`handle` is pure request → response logic; the
HTTP server around it is :func:`make_server`.
"""

from __future__ import annotations

import base64
import json
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from serving.model_manager import ModelNotFound, ServedModel

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<tail>/metadata|:predict)?$")
MAX_BODY_BYTES = 64 * 1024 * 1024
IDLE_CONNECTION_SECONDS = 5


class BadRequest(ValueError):
    """A malformed request (HTTP 400)."""


def _decode_value(value):
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError):
                raise BadRequest("invalid base64 in a {'b64': ...} value") from None
        raise BadRequest("objects are only allowed as {'b64': ...} values")
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


def _to_tensor(name: str, value, spec):
    import numpy as np
    import tensorflow as tf
    try:
        array = np.array(value, dtype=object if spec.dtype == tf.string else
                         spec.dtype.as_numpy_dtype)
    except (ValueError, TypeError, OverflowError) as err:
        raise BadRequest(f"input {name!r}: {err}") from None
    if array.dtype == object and spec.dtype != tf.string:
        raise BadRequest(f"input {name!r}: ragged or mixed values")
    if not spec.shape.is_compatible_with(array.shape):
        raise BadRequest(f"input {name!r}: shape {list(array.shape)} does not match "
                         f"{spec.shape.as_list()}")
    return tf.constant(array, dtype=spec.dtype)


def _predict(servable, body: dict):
    signature_name = body.get("signature_name") or "serving_default"
    if signature_name not in servable.signatures:
        raise BadRequest(f"Serving signature name: \"{signature_name}\" not found in signature def")
    function = servable.signatures[signature_name]
    specs = function.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the request needs exactly one of 'instances' or 'inputs'")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("'instances' must be a non-empty list")
        named = [isinstance(i, dict) and set(i) != {"b64"} for i in instances]
        if all(named):
            keys = set(instances[0])
            if any(set(i) != keys for i in instances):
                raise BadRequest("every instance must name the same inputs")
            inputs = {k: [_decode_value(i[k]) for i in instances] for k in keys}
        elif any(named):
            raise BadRequest("instances mix named and unnamed values")
        elif len(specs) != 1:
            raise BadRequest(f"signature has inputs {sorted(specs)}: name them per instance")
        else:
            inputs = {next(iter(specs)): _decode_value(instances)}
    else:
        raw = body["inputs"]
        if isinstance(raw, dict):
            inputs = {k: _decode_value(v) for k, v in raw.items()}
        elif len(specs) == 1:
            inputs = {next(iter(specs)): _decode_value(raw)}
        else:
            raise BadRequest(f"signature has inputs {sorted(specs)}: name them in 'inputs'")
    unknown = sorted(set(inputs) - set(specs))
    missing = sorted(set(specs) - set(inputs))
    if unknown or missing:
        raise BadRequest(f"unknown inputs {unknown}, missing inputs {missing}")
    tensors = {k: _to_tensor(k, v, specs[k]) for k, v in inputs.items()}
    import tensorflow as tf
    try:
        outputs = function(**tensors)
    except (tf.errors.InvalidArgumentError, ValueError) as err:
        message = getattr(err, "message", str(err))
        raise BadRequest(message.splitlines()[0]) from None
    columns = {k: _encode_value(v.numpy().tolist()) for k, v in outputs.items()}
    if "instances" in body:
        if len(columns) == 1:
            return {"predictions": next(iter(columns.values()))}
        count = len(next(iter(columns.values())))
        return {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(count)]}
    return {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}


def _status_json(statuses) -> dict:
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in statuses]}


def _metadata_json(model: ServedModel, version: int) -> dict:
    from google.protobuf import json_format
    signatures = {k: json_format.MessageToDict(v)
                  for k, v in model.signature_defs(version).items()}
    return {"model_spec": {"name": model.name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": signatures}}}


def handle(models: dict, method: str, path: str, body: Optional[bytes]) -> tuple[int, dict]:
    """Answers one REST request: ``(http_status, json_body)``."""
    match = _PATH.match(path.split("?", 1)[0])
    if not match:
        return HTTPStatus.NOT_FOUND, {"error": f"Malformed request: {method} {path}"}
    name, tail = match.group("name"), match.group("tail")
    version = int(match.group("version")) if match.group("version") else None
    label = match.group("label")
    try:
        model = models.get(name)
        if model is None:
            raise ModelNotFound(f"Servable not found for request: Latest({name})")
        if method == "GET" and tail is None:
            if label is not None:
                version, _ = model.resolve(label=label)
            return HTTPStatus.OK, _status_json(model.statuses(version))
        if method == "GET" and tail == "/metadata":
            version, _ = model.resolve(version, label)
            return HTTPStatus.OK, _metadata_json(model, version)
        if method == "POST" and tail == ":predict":
            try:
                request = json.loads(body or b"", parse_constant=_reject_constant)
            except (ValueError, RecursionError) as err:
                raise BadRequest(f"JSON Parse error: {err}") from None
            if not isinstance(request, dict):
                raise BadRequest("the request body must be a JSON object")
            version, servable = model.resolve(version, label)
            return HTTPStatus.OK, _predict(servable, request)
        return HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{method} not supported on {path}"}
    except ModelNotFound as err:
        return HTTPStatus.NOT_FOUND, {"error": str(err)}
    except BadRequest as err:
        return HTTPStatus.BAD_REQUEST, {"error": str(err)}


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number")


def make_server(models: dict, host: str = "127.0.0.1", port: int = 8501) -> ThreadingHTTPServer:
    """An HTTP server answering TF Serving REST requests for ``models`` (name → ServedModel)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = IDLE_CONNECTION_SECONDS  # idle keep-alive connections do not block shutdown

        def _answer(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                status, payload = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
                    "error": f"request of {length} bytes exceeds {MAX_BODY_BYTES}"}
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                status, payload = handle(models, method, self.path, body)
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server naming)
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def log_message(self, *args):  # keep request logs off stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    # Non-daemon handler threads: server_close() waits for in-flight requests (graceful stop).
    server.daemon_threads = False
    return server
