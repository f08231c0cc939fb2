"""TF Serving's REST API (the ``--rest_api_port`` of ``fashion serve``).

Routing, request parsing and every body follow ``tensorflow_model_server``'s code
(``http_server.cc``, ``http_rest_api_handler.cc``, ``util/json_tensor.cc``; see
``serving.tf_json``): ``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` (status; a label is
not resolved, as in TF Serving), ``GET .../metadata``, ``POST ...:predict`` (row ``instances`` or
columnar ``inputs``, ``{"b64": ...}`` bytes), ``POST ...:classify`` and ``...:regress``; paths
are matched case-insensitively, a malformed ``/v1/`` request is 400 ``Malformed request: ...``,
any other path 404; errors are ``{"error": ...}`` with TF Serving's status mapping; ``OPTIONS``
answers CORS preflights. Beside them, the extension ``POST ...:search`` (catalog search,
``serving.search``). Optional: the Prometheus metrics path, a bearer token (401 without it),
CORS headers and TLS. :meth:`RestApi.handle` is pure request -> response logic; the HTTP
server around it is :func:`make_server`.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from serving import tf_json
from serving.errors import (InvalidRequest, ModelNotFound, Overloaded, RequestTooLarge,
                            ServingError, Unauthenticated)
from serving.grpc_service import MAX_ELEMENTS, MAX_STRING_ELEMENTS
from serving.inference import InferenceService, serialized_examples, status_response
from serving.search import DEFAULT_K, CatalogSearch

# TF Serving's three path expressions (http_rest_api_util.{h,cc}), and this server's extension.
_API_PATH = re.compile(r"(?i)/v1/.*")
_PREDICTION_PATH = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|"
                              r"(?:/labels/([^/:]+)))?:(classify|regress|predict)")
_STATUS_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|"
                          r"(?:/labels/([^/:]+)))?(?:\/(metadata))?")
_SEARCH_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|"
                          r"(?:/labels/([^/:]+)))?:search")
_ORIGIN = re.compile(r"https?://")
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_LISTEN_BACKLOG = 1024
DEFAULT_MAX_JSON_VALUES = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 256
AUTHENTICATE = 'Bearer realm="fashion serve"'
TLS_HANDSHAKE_SECONDS = 10
IDLE_CONNECTION_SECONDS = 5
JSON_TYPE = "application/json"
CORS_HEADERS = (("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Methods", "POST, GET"),
                ("Access-Control-Allow-Headers", "Content-Type"))
# libevent's evhttp_send_error page, which TF Serving answers for paths outside /v1/.
NOT_FOUND_PAGE = (b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n"
                  b"<H1>Not Found</H1>\n</BODY></HTML>\n")


def _element_budget(dtype) -> int:
    return MAX_STRING_ELEMENTS if dtype.name == "string" else MAX_ELEMENTS


def _model_info(match) -> tuple:
    """``ParseModelInfo``: ``(name, version or None, label or None)`` of a matched path."""
    name = urllib.parse.unquote(match.group(1) or "")
    version = label = None
    if match.group(2):
        version = int(match.group(2))
        if version > 2 ** 63 - 1:
            raise InvalidRequest(f"Failed to convert version: {match.group(2)} to numeric.")
    if match.group(3):
        label = urllib.parse.unquote(match.group(3))
    return name, version, label


class RestApi:
    """The REST request handler logic over an :class:`InferenceService`."""

    def __init__(self, service: InferenceService, timeout_seconds: Optional[float] = 30.0,
                 token: Optional[str] = None, metrics_path: Optional[str] = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, cors: bool = False,
                 max_json_values: int = DEFAULT_MAX_JSON_VALUES):
        self.service = service
        self.max_json_values = max_json_values
        self.timeout_seconds = timeout_seconds
        self.metrics_path = metrics_path
        self.max_body_bytes = max_body_bytes
        self.cors = cors
        self._expected_auth = f"Bearer {token}".encode() if token else None
        self.catalog_search = CatalogSearch(service)

    def authorized(self, authorization: str) -> bool:
        """Whether a request with this ``Authorization`` header may be served."""
        return self._expected_auth is None or hmac.compare_digest(
            authorization.encode("latin-1", "replace"), self._expected_auth)

    def _deadline(self) -> Optional[float]:
        return time.monotonic() + self.timeout_seconds if self.timeout_seconds else None

    def _check_json_values(self, body: bytes) -> None:
        # Parsed JSON costs ~300 bytes a value (57 MiB of short strings took 3.9 GB): count
        # the values (at most one more than the commas) before parsing.
        values = body.count(b",") + 1
        if values > self.max_json_values:
            raise RequestTooLarge(f"about {values} JSON values exceed --max_json_values "
                                  f"({self.max_json_values})")

    def _parse(self, body: bytes) -> dict:
        self._check_json_values(body)
        return tf_json.parse_body(body)

    def _predict(self, name, version, label, body: bytes) -> bytes:
        document = self._parse(body)
        requested = tf_json.signature_name(document)
        signature = self.service.signature(name, version, label, requested, "rest_predict")
        request_format, arrays = tf_json.predict_inputs(document, signature.inputs,
                                                        _element_budget, requested)
        outputs = self.service.predict(signature, arrays, self._deadline())
        return tf_json.predict_response(outputs, request_format)

    def _classify_or_regress(self, method, name, version, label, body: bytes) -> bytes:
        document = self._parse(body)
        signature_name = tf_json.signature_name(document)
        examples = serialized_examples(tf_json.classify_regress_input(document))
        signature = self.service.signature(name, version, label, signature_name, method)
        if method == "classify":
            return tf_json.classify_response(*self.service.classify(signature, examples,
                                                                     self._deadline()))
        return tf_json.regress_response(self.service.regress(signature, examples,
                                                             self._deadline()))

    def _metadata(self, name: str, version, label) -> bytes:
        from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2
        model = self.service.model(name)
        version, _ = model.resolve(version, label)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in model.signature_defs(version).items():
            signature_map.signature_def[key].CopyFrom(value)
        spec = model_pb2.ModelSpec(name=model.name)
        spec.version.value = version
        return tf_json.metadata_response(spec, signature_map)

    def _search(self, name, version, label, body: bytes) -> bytes:
        self._check_json_values(body)
        try:
            document = json.loads(body or b"")
        except (ValueError, RecursionError) as err:
            raise InvalidRequest(f"JSON Parse error: {err}") from None
        if not isinstance(document, dict):
            raise InvalidRequest("the request body must be a JSON object")
        image = document.get("image")
        if image is not None:
            if not isinstance(image, dict) or set(image) != {"b64"}:
                raise InvalidRequest("'image' must be {\"b64\": \"<base64 bytes>\"}")
            image = tf_json.decode_b64(image)
        answer = self.catalog_search.search(name, version, label, document.get("text"), image,
                                            document.get("k", DEFAULT_K), self._deadline())
        return json.dumps(answer).encode()

    def handle(self, method: str, path: str, body: Optional[bytes], authorization: str = "",
               origin: str = "") -> tuple:
        """Answers one request: ``(http_status, content_type or None, payload bytes)``."""
        path = path.split("?", 1)[0]
        try:
            if not self.authorized(authorization):
                raise Unauthenticated("missing or wrong bearer token")
            if self.metrics_path and path == self.metrics_path:
                from serving.metrics import CONTENT_TYPE
                return HTTPStatus.OK, CONTENT_TYPE, self.service.metrics.exposition()
            if not _API_PATH.fullmatch(path):
                return HTTPStatus.NOT_FOUND, "text/html", NOT_FOUND_PAGE
            if method == "OPTIONS":  # a CORS preflight
                status = HTTPStatus.OK if _ORIGIN.search(origin) else HTTPStatus.BAD_REQUEST
                return status, None, b""
            return HTTPStatus.OK, JSON_TYPE, self._route(method, path, body or b"")
        except ServingError as err:
            return err.http_status, JSON_TYPE, tf_json.error_body(str(err))

    def _route(self, method: str, path: str, body: bytes) -> bytes:
        malformed = InvalidRequest(f"Malformed request: {method} {path}")
        if method == "POST":
            search = _SEARCH_PATH.fullmatch(path)
            if search:
                name, version, label = _model_info(search)
                with self.service.observed("search", "REST", name):
                    return self._search(name, version, label, body)
            match = _PREDICTION_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version, label = _model_info(match)
            api = match.group(4)
            if api not in ("predict", "classify", "regress"):
                raise malformed  # the method is matched without case but compared with it
            with self.service.observed(api, "REST", name):
                if api == "predict":
                    return self._predict(name, version, label, body)
                return self._classify_or_regress(api, name, version, label, body)
        if method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version, label = _model_info(match)
            if not name:
                raise InvalidRequest("Missing model name in request.")
            if match.group(4):
                return self._metadata(name, version, label)
            if name not in self.service.models:
                raise ModelNotFound(f"Could not find any versions of model {name}")
            return tf_json.status_response(
                status_response(self.service.models[name].statuses(version)))
        raise malformed


def make_server(api: RestApi, host: str = "127.0.0.1", port: int = 8501,
                max_threads: int = 32,
                ssl_context: Optional[ssl.SSLContext] = None,
                listen_backlog: int = DEFAULT_LISTEN_BACKLOG,
                max_connections: int = DEFAULT_MAX_CONNECTIONS) -> ThreadingHTTPServer:
    """An HTTP(S) server for ``api``; beyond ``max_threads`` concurrent requests it answers 429.

    The socket listens with a ``listen_backlog`` queue (a burst of connections is not refused
    by the kernel); beyond ``max_connections`` open connections a new one is answered 503 and
    closed, so idle or slow clients cannot hold a thread each without limit. With a token, the
    token is checked on the headers, before any body is read (401 with ``WWW-Authenticate``);
    a body sent with ``Transfer-Encoding`` is refused (501) and the connection closed, so
    nothing hidden in a chunked body is ever read as a request. The TLS handshake of each
    connection runs in that connection's thread, bounded by ``TLS_HANDSHAKE_SECONDS``."""
    slots = threading.BoundedSemaphore(max_threads)

    class Server(ThreadingHTTPServer):
        request_queue_size = listen_backlog

        def __init__(self, *args, **kwargs):
            self.connections = threading.BoundedSemaphore(max_connections)
            self.draining = threading.Event()
            self._lock = threading.Lock()
            self._idle: set = set()       # keep-alive connections waiting for a request
            self._workers: set = set()    # connection threads
            super().__init__(*args, **kwargs)

        def mark_idle(self, connection, idle: bool) -> None:
            with self._lock:
                (self._idle.add if idle else self._idle.discard)(connection)

        def drain(self, grace_seconds: float) -> bool:
            """Graceful stop: no new connections, idle keep-alive connections closed, every
            answer from now on with ``Connection: close``, in-flight requests given up to
            ``grace_seconds``. Returns whether they all finished."""
            self.draining.set()
            self.shutdown()  # ends the accept loop
            with self._lock:
                idle, workers = list(self._idle), list(self._workers)
            for connection in idle:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            deadline = time.monotonic() + grace_seconds
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            self.server_close()
            return not any(worker.is_alive() for worker in workers)

        def process_request(self, request, client_address):
            if not self.connections.acquire(blocking=False):
                try:
                    request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                    b"Connection: close\r\n\r\n")
                except OSError:
                    pass
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.connections.release()
                raise

        def process_request_thread(self, request, client_address):
            # The TLS handshake runs here, in the connection's own thread and with a timeout,
            # not in the accept loop, where one idle TCP connection would block every client.
            with self._lock:
                self._workers.add(threading.current_thread())
            try:
                if ssl_context is not None:
                    try:
                        request.settimeout(TLS_HANDSHAKE_SECONDS)
                        request = ssl_context.wrap_socket(request, server_side=True)
                    except (OSError, ValueError):  # ssl.SSLError and timeouts are OSErrors
                        self.shutdown_request(request)
                        return
                super().process_request_thread(request, client_address)
            finally:
                with self._lock:
                    self._workers.discard(threading.current_thread())
                self.connections.release()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = IDLE_CONNECTION_SECONDS  # idle keep-alive connections do not block shutdown
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's
        # delayed ACK of the headers (~40 ms per keep-alive request).
        disable_nagle_algorithm = True

        def _refuse(self, status, message: str):
            self.close_connection = True  # the unread body makes the stream unusable
            self._send(status, JSON_TYPE, tf_json.error_body(message))

        def handle_one_request(self):
            if self.server.draining.is_set():
                self.close_connection = True
                return
            self.server.mark_idle(self.connection, True)
            try:
                super().handle_one_request()
            finally:
                self.server.mark_idle(self.connection, False)

        def _answer(self, method):
            self.server.mark_idle(self.connection, False)
            if self.server.draining.is_set():
                return self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, "the server is shutting down")
            if not api.authorized(self.headers.get("Authorization", "")):
                return self._refuse(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")
            if self.headers.get("Transfer-Encoding"):
                return self._refuse(HTTPStatus.NOT_IMPLEMENTED, "Transfer-Encoding is not "
                                    "supported: send the body with Content-Length")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > api.max_body_bytes:
                err = (RequestTooLarge(f"request of {length} bytes exceeds "
                                       f"{api.max_body_bytes}") if length > 0 else
                       InvalidRequest("bad Content-Length"))
                self.close_connection = True  # the unread body makes the stream unusable
                return self._send(err.http_status, JSON_TYPE, tf_json.error_body(str(err)))
            body = self.rfile.read(length) if length else b""
            if not slots.acquire(blocking=False):
                err = Overloaded(f"more than {max_threads} concurrent REST requests")
                return self._send(err.http_status, JSON_TYPE, tf_json.error_body(str(err)))
            try:
                status, content_type, payload = api.handle(
                    method, self.path, body, self.headers.get("Authorization", ""),
                    self.headers.get("Origin", ""))
            except Exception as err:  # noqa: BLE001 (the server stays up)
                status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, JSON_TYPE
                payload = tf_json.error_body(f"{type(err).__name__}: {err}")
            finally:
                slots.release()
            self._send(status, content_type, payload)

        def _send(self, status, content_type, payload):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if api.cors:
                for header, value in CORS_HEADERS:
                    self.send_header(header, value)
            if status == HTTPStatus.UNAUTHORIZED:
                self.send_header("WWW-Authenticate", AUTHENTICATE)
            if self.server.draining.is_set():
                self.close_connection = True
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def version_string(self):  # no "Server: BaseHTTP/..." header (evhttp sends none)
            return ""

        def send_header(self, keyword, value):
            if keyword != "Server":
                super().send_header(keyword, value)

        def do_GET(self):  # noqa: N802 (http.server naming)
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def do_OPTIONS(self):  # noqa: N802
            self._answer("OPTIONS")

        def do_PUT(self):  # noqa: N802
            self._answer("PUT")

        def do_DELETE(self):  # noqa: N802
            self._answer("DELETE")

        def log_message(self, *args):  # keep request logs off stderr
            pass

    server = Server((host, port), Handler)
    # Connection threads are daemons: Server.drain waits for in-flight requests, up to a grace
    # period, and the process can exit after it even if a request is stuck in a model.
    server.daemon_threads = True
    return server
