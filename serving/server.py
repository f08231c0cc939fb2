"""``fashion serve``: a TF-Serving-compatible model server (gRPC + REST, version watching).

It takes ``tensorflow_model_server``'s flags with the same names and meanings and reads the same
text-proto files (``--model_config_file``, ``--batching_parameters_file``,
``--monitoring_config_file``, ``--ssl_config_file``). Flags of that binary it does not implement
are refused with a clear message rather than silently ignored, and unknown flags fail. Three
flags are this server's own (``--auth_token_file``, ``--max_request_bytes``,
``--max_concurrent_requests``). A background thread polls the models' base paths every
``--file_system_poll_wait_seconds`` and swaps versions without dropping requests; with
``--model_config_file_poll_wait_seconds`` the config file itself is re-read too, and
``HandleReloadConfigRequest`` replaces it over gRPC.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from typing import Optional

from serving.batching import BatchingOptions, Runner
from serving.config_files import (ConfigError, ModelSpec, SslSettings, model_specs_from_proto,
                                  read_batching_parameters, read_model_config,
                                  read_monitoring_config, read_ssl_config)
from serving.errors import InvalidRequest, ModelNotFound, Unknown
from serving.model_manager import ServedModel

__all__ = ["FLAGS", "FlagError", "ModelServer", "ModelSpec", "ServerOptions", "main",
           "model_specs", "options_from_flags", "parse_flags", "read_model_config"]


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(value)


_bool.__name__ = "bool"

# tensorflow_model_server flags implemented here: name -> (type, default, help).
FLAGS = {
    "port": (int, 8500, "port of the gRPC API (0 disables it)"),
    "grpc_socket_path": (str, "", "also serve gRPC on this UNIX socket"),
    "grpc_channel_arguments": (str, "", "gRPC server arguments: key=value,key=value"),
    "grpc_max_threads": (int, 16, "threads answering gRPC calls"),
    "rest_api_port": (int, 8501, "port of the REST API (0 disables it)"),
    "rest_api_host": (str, "127.0.0.1", "address the REST and gRPC APIs bind to"),
    "rest_api_num_threads": (int, 32, "concurrent REST requests (more are answered 429)"),
    "rest_api_timeout_in_ms": (int, 30000, "REST request timeout (504 past it; 0: none)"),
    "rest_api_enable_cors_support": (_bool, False, "CORS headers on REST answers"),
    "model_name": (str, "default", "name of the single model (with --model_base_path)"),
    "model_base_path": (str, "", "folder of numbered SavedModel versions"),
    "model_config_file": (str, "", "ModelServerConfig text proto with one or more models"),
    "model_config_file_poll_wait_seconds": (int, 0, "seconds between re-reads of "
                                            "--model_config_file (0: read once)"),
    "file_system_poll_wait_seconds": (int, 1, "seconds between polls for new versions"),
    "enable_batching": (_bool, False, "batch concurrent requests on the server"),
    "batching_parameters_file": (str, "", "BatchingParameters text proto"),
    "enable_model_warmup": (_bool, True, "replay assets.extra/tf_serving_warmup_requests "
                            "before a version is AVAILABLE"),
    "num_request_iterations_for_warmup": (int, 0, "times each warm-up record is replayed "
                                          "(0 or 1: once)"),
    "saved_model_tags": (str, "serve", "comma-separated tags of the meta graph to load"),
    "enable_signature_method_name_check": (_bool, False, "Classify/Regress/Predict check the "
                                           "signature's method name"),
    "enable_serialization_as_tensor_content": (_bool, False, "gRPC Predict outputs in "
                                               "tensor_content instead of typed fields"),
    "monitoring_config_file": (str, "", "MonitoringConfig text proto (Prometheus endpoint "
                               "on the REST port)"),
    "ssl_config_file": (str, "", "SSLConfig text proto: TLS for gRPC and REST"),
    "tensorflow_intra_op_parallelism": (int, 0, "TF intra-op threads (0: TF's choice)"),
    "tensorflow_inter_op_parallelism": (int, 0, "TF inter-op threads (0: TF's choice)"),
    "enable_grpc_healthcheck_service": (_bool, False, "accepted; grpc.health.v1 is always "
                                        "served here"),
    "allow_version_labels_for_unavailable_models": (_bool, False, "accepted; labels may always "
                                                    "name versions not loaded yet here"),
    "version": (_bool, False, "print the version and exit"),
    # This server's own flags (not tensorflow_model_server's).
    "auth_token_file": (str, "", "file holding a bearer token every request must carry "
                        "(not the health check)"),
    "max_request_bytes": (int, 64 * 1024 * 1024, "largest gRPC message or REST body"),
    "max_concurrent_requests": (int, 64, "requests in flight before RESOURCE_EXHAUSTED / 429"),
    "allow_config_reload": (_bool, False, "HandleReloadConfigRequest without a token (with "
                            "--auth_token_file only token holders may reload)"),
    "max_request_rows": (int, 256, "rows (examples, dimension 0) one request may carry; more "
                         "are RESOURCE_EXHAUSTED / 413"),
    "max_request_pixels": (int, 1_000_000_000, "pixels the images of one request may declare "
                           "to decode, all frames together (read from their headers before the "
                           "request is queued); more are RESOURCE_EXHAUSTED / 413"),
    "max_json_values": (int, 1024 * 1024, "values one REST JSON body may hold (counted before "
                        "parsing); more are 413"),
    "shutdown_grace_seconds": (float, 10.0, "on SIGTERM, how long in-flight requests may "
                               "finish before the process exits"),
    "rest_api_listen_backlog": (int, 1024, "connections the REST socket queues before accept"),
    "rest_api_max_connections": (int, 256, "open REST connections; more are answered 503"),
}
# tensorflow_model_server flags that mean nothing here (TFLite, GPUs, TPUs, XLA, its thread
# pools, session tuning, load threads): accepted with their types so that TF Serving manifests
# start this server unchanged, and named in a warning at start-up.
IGNORED_FLAGS = {
    "platform_config_file": str, "per_process_gpu_memory_fraction": float,
    "tensorflow_session_parallelism": int, "tensorflow_session_config_file": str,
    "use_tflite_model": _bool, "prefer_tflite_model": _bool, "num_tflite_pools": int,
    "num_tflite_interpreters_per_pool": int, "num_load_threads": int,
    "num_unload_threads": int, "max_num_load_retries": int, "load_retry_interval_micros": int,
    "flush_filesystem_caches": _bool, "remove_unused_fields_from_bundle_metagraph": _bool,
    "xla_cpu_compilation_enabled": _bool, "xla_gpu_compilation_enabled": _bool,
    "enable_profiler": _bool, "mixed_precision": str, "use_alts_credentials": _bool,
    "thread_pool_factory_config_file": str, "skip_initialize_tpu": _bool,
    "enable_per_model_batching_parameters": _bool,
}
VERSION = "fashion serve (TF Serving 2.16 API)"


class FlagError(ValueError):
    """A command-line flag is unknown, malformed or not supported."""


def parse_flags(argv: list[str]) -> dict:
    """Parses ``--flag=value`` / ``--flag value`` (and bare ``--bool_flag``) like
    tensorflow_model_server does. Flags of that binary with no meaning here are checked for
    their type and listed under ``"ignored"``."""
    values = {name: default for name, (_, default, _) in FLAGS.items()}
    values["ignored"] = []
    items = list(argv)
    while items:
        item = items.pop(0)
        if not item.startswith("-"):
            raise FlagError(f"unexpected argument {item!r}; flags look like --name=value")
        name, has_value, value = item.lstrip("-").partition("=")
        if name not in FLAGS and name not in IGNORED_FLAGS:
            raise FlagError(f"unknown flag --{name}; run `fashion serve --help` for the list")
        kind = FLAGS[name][0] if name in FLAGS else IGNORED_FLAGS[name]
        if not has_value:
            if kind is _bool:
                value = "true"
            elif not items:
                raise FlagError(f"--{name} needs a value")
            else:
                value = items.pop(0)
        try:
            parsed = kind(value)
        except ValueError:
            raise FlagError(f"--{name}={value!r} is not a {kind.__name__}") from None
        if name in FLAGS:
            values[name] = parsed
        elif name not in values["ignored"]:
            values["ignored"].append(name)
    return values


def model_specs(flags: dict) -> list[ModelSpec]:
    """The models to serve, from the config file or the single-model flags."""
    if flags["model_config_file"]:
        if flags["model_base_path"]:
            raise FlagError("give --model_config_file or --model_base_path, not both")
        try:
            return read_model_config(flags["model_config_file"])
        except ConfigError as err:
            raise FlagError(str(err)) from None
    if not flags["model_base_path"]:
        raise FlagError("--model_base_path (or --model_config_file) is required")
    return [ModelSpec(flags["model_name"], flags["model_base_path"])]


def _channel_arguments(text: str) -> list[tuple]:
    arguments = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, has_value, value = item.partition("=")
        if not has_value or not key:
            raise FlagError(f"--grpc_channel_arguments: {item!r} is not key=value")
        arguments.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return arguments


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything but the model list that shapes a :class:`ModelServer`."""

    host: str = "127.0.0.1"
    grpc_port: int = 0
    grpc_socket_path: str = ""
    grpc_threads: int = 16
    grpc_arguments: tuple = ()
    rest_port: int = 0
    rest_threads: int = 32
    rest_timeout_seconds: Optional[float] = 30.0
    poll_seconds: float = 1.0
    config_file: str = ""
    config_poll_seconds: float = 0.0
    batching: Optional[BatchingOptions] = None
    warmup: bool = True
    metrics_path: Optional[str] = None
    ssl: Optional[SslSettings] = None
    token: Optional[str] = None
    max_request_bytes: int = 64 * 1024 * 1024
    max_concurrent: int = 64
    method_name_check: bool = False
    saved_model_tags: tuple = ("serve",)
    warmup_iterations: int = 1
    tensor_content: bool = False
    cors: bool = False
    rest_backlog: int = 1024
    allow_config_reload: bool = False
    shutdown_grace_seconds: float = 10.0
    max_request_rows: int = 256
    max_request_pixels: int = 1_000_000_000
    max_json_values: int = 1024 * 1024
    rest_max_connections: int = 256


def options_from_flags(flags: dict) -> ServerOptions:
    """Checks the flags and reads the files they name; raises FlagError with the reason."""
    try:
        batching = None
        if flags["enable_batching"]:
            batching = (read_batching_parameters(flags["batching_parameters_file"])
                        if flags["batching_parameters_file"] else BatchingOptions())
        elif flags["batching_parameters_file"]:
            raise FlagError("--batching_parameters_file needs --enable_batching")
        metrics_path = (read_monitoring_config(flags["monitoring_config_file"])
                        if flags["monitoring_config_file"] else None)
        ssl_settings = (read_ssl_config(flags["ssl_config_file"])
                        if flags["ssl_config_file"] else None)
    except ConfigError as err:
        raise FlagError(str(err)) from None
    token = None
    if flags["auth_token_file"]:
        try:
            with open(flags["auth_token_file"]) as handle:
                token = handle.read().strip()
        except OSError as err:
            raise FlagError(f"--auth_token_file: {err.strerror}") from None
        if not token:
            raise FlagError("--auth_token_file is empty")
    for name in ("grpc_max_threads", "rest_api_num_threads", "max_request_bytes",
                 "max_concurrent_requests", "file_system_poll_wait_seconds",
                 "rest_api_listen_backlog", "rest_api_max_connections", "max_request_rows",
                 "max_request_pixels", "max_json_values"):
        if flags[name] < 1:
            raise FlagError(f"--{name} must be >= 1")
    if metrics_path and not flags["rest_api_port"]:
        raise FlagError("--monitoring_config_file needs --rest_api_port (metrics are served "
                        "on the REST port)")
    if flags["shutdown_grace_seconds"] < 0:
        raise FlagError("--shutdown_grace_seconds must be >= 0")
    tags = tuple(t.strip() for t in flags["saved_model_tags"].split(",") if t.strip())
    if not tags:
        raise FlagError("--saved_model_tags needs at least one tag")
    arguments = _channel_arguments(flags["grpc_channel_arguments"])
    if not any(key == "grpc.max_receive_message_length" for key, _ in arguments):
        arguments.append(("grpc.max_receive_message_length", flags["max_request_bytes"]))
    return ServerOptions(
        host=flags["rest_api_host"], grpc_port=flags["port"],
        grpc_socket_path=flags["grpc_socket_path"], grpc_threads=flags["grpc_max_threads"],
        grpc_arguments=tuple(arguments), rest_port=flags["rest_api_port"],
        rest_threads=flags["rest_api_num_threads"],
        rest_timeout_seconds=flags["rest_api_timeout_in_ms"] / 1000 or None,
        poll_seconds=flags["file_system_poll_wait_seconds"],
        config_file=flags["model_config_file"],
        config_poll_seconds=flags["model_config_file_poll_wait_seconds"], batching=batching,
        warmup=flags["enable_model_warmup"], metrics_path=metrics_path, ssl=ssl_settings,
        token=token, max_request_bytes=flags["max_request_bytes"],
        max_concurrent=flags["max_concurrent_requests"],
        method_name_check=flags["enable_signature_method_name_check"],
        saved_model_tags=tags, warmup_iterations=max(1, flags["num_request_iterations_for_warmup"]),
        tensor_content=flags["enable_serialization_as_tensor_content"],
        cors=flags["rest_api_enable_cors_support"],
        rest_backlog=flags["rest_api_listen_backlog"],
        rest_max_connections=flags["rest_api_max_connections"],
        allow_config_reload=flags["allow_config_reload"],
        shutdown_grace_seconds=flags["shutdown_grace_seconds"],
        max_request_rows=flags["max_request_rows"],
        max_request_pixels=flags["max_request_pixels"], max_json_values=flags["max_json_values"])


def _rest_ssl_context(settings: SslSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain only reads files: write the PEM text to a private temporary file.
    with tempfile.TemporaryDirectory() as folder:
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for path, text in ((cert, settings.server_cert), (key, settings.server_key)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert, key)
    if settings.client_verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=settings.custom_ca)
    return context


def _unavailable_text(model: ServedModel) -> str:
    """``{name: m version: v} due to error: CODE: message`` for a model that did not load."""
    try:
        failed = [s for s in model.statuses() if s.state != "AVAILABLE"]
    except ModelNotFound:
        failed = []
    if not failed:
        return (f"{{name: {model.name} version: none}} due to error: NOT_FOUND: no version "
                f"folder under {model.base_path}")
    status = failed[-1]
    return (f"{{name: {model.name} version: {status.version}}} due to error: "
            f"{status.error_code}: {status.error_message}")


class ModelServer:
    """Serves ``specs`` over gRPC and REST, polling their base paths in the background."""

    def __init__(self, specs: list[ModelSpec], options: ServerOptions = ServerOptions(),
                 loader=None):
        from serving.inference import InferenceService
        from serving.metrics import ServingMetrics
        self.options = options
        self._loader = loader
        self.models: dict[str, ServedModel] = {}
        self._models_lock = threading.Lock()
        for spec in specs:
            self.models[spec.name] = self._served_model(spec)
        self._specs = list(specs)
        self._rejected_specs: Optional[list] = None
        self._reload_lock = threading.Lock()
        self.metrics = ServingMetrics(lambda: dict(self.models))
        runner = Runner(options.batching, options.max_concurrent,
                        on_batch=self.metrics.observe_batch)
        self.service = InferenceService(self.models, runner, self.metrics,
                                        options.method_name_check, options.max_request_rows,
                                        options.max_request_pixels)
        self._stop = threading.Event()
        self._rest = None
        self._grpc = None
        self._health = None
        self.grpc_port: Optional[int] = None
        self._threads: list[threading.Thread] = []

    def _served_model(self, spec: ModelSpec) -> ServedModel:
        if self._loader is not None:
            loader = self._loader
        else:
            from serving.warmup import load_servable

            def loader(path):
                return load_servable(path, warmup=self.options.warmup,
                                     tags=self.options.saved_model_tags,
                                     warmup_iterations=self.options.warmup_iterations)
        return ServedModel(spec.name, spec.base_path, spec.policy, dict(spec.labels), loader,
                           self.options.saved_model_tags)

    def poll(self) -> None:
        """One round of version polling, then health and batch-queue bookkeeping."""
        with self._models_lock:
            models = list(self.models.values())
        for model in models:
            model.poll()
        self._after_change()

    def _after_change(self) -> None:
        with self._models_lock:
            live = {(name, v) for name, m in self.models.items() for v in m.loaded_versions()}
        self.service.runner.prune(live)
        if self._health is not None:
            self._health.update(dict(self.models))

    def reload(self, specs: list[ModelSpec]) -> None:
        """Serves exactly ``specs`` from now on (TF Serving's config reload semantics): new
        models are loaded before this returns, removed ones unloaded, changed policies applied.

        As ``ServerCore::WaitUntilModelsAvailable`` does, a new model that has no version
        available makes this raise :class:`~serving.errors.Unknown` with TF Serving's text
        naming each such model and its error. Unlike TF Serving, which then keeps the broken
        model in its config, nothing of the new config is applied: the models served before
        keep serving."""
        with self._reload_lock:
            with self._models_lock:
                current = dict(self.models)
            fresh = {}
            for spec in specs:
                model = current.get(spec.name)
                if model is None or model.base_path != spec.base_path:
                    fresh[spec.name] = self._served_model(spec)
                    fresh[spec.name].poll()  # loaded before it replaces anything
            unavailable = [_unavailable_text(m) for m in fresh.values()
                           if not m.loaded_versions()]
            if unavailable:
                for model in fresh.values():
                    model.unload_all()
                raise Unknown(f"{len(unavailable)} model(s) did not become available: {{"
                              + "".join(f"{{{text}}}, " for text in unavailable) + "}")
            for spec in specs:
                if spec.name not in fresh:
                    current[spec.name].reconfigure(spec.policy, dict(spec.labels))
                    current[spec.name].poll()
            wanted = {s.name for s in specs}
            with self._models_lock:
                replaced = [m for name, m in self.models.items()
                            if name not in wanted or name in fresh]
                for name in [n for n in self.models if n not in wanted]:
                    del self.models[name]
                self.models.update(fresh)
            for model in replaced:
                model.unload_all()
            self._specs = list(specs)
            self._after_change()

    def reload_proto(self, config) -> None:
        """``HandleReloadConfigRequest``: reload from a ``ModelServerConfig`` message."""
        try:
            specs = model_specs_from_proto(config, "ReloadConfigRequest")
        except ConfigError as err:
            raise InvalidRequest(str(err)) from None
        self.reload(specs)

    def _poll_loop(self):
        while not self._stop.wait(self.options.poll_seconds):
            self.poll()

    def _config_loop(self):
        while not self._stop.wait(self.options.config_poll_seconds):
            try:
                specs = read_model_config(self.options.config_file)
            except ConfigError as err:
                print(f"fashion serve: keeping the current models: {err}", file=sys.stderr)
                continue
            if specs != self._specs and specs != self._rejected_specs:
                try:
                    self.reload(specs)
                except Unknown as err:  # retried only when the file changes again
                    self._rejected_specs = specs
                    print(f"fashion serve: keeping the current models: {err}", file=sys.stderr)

    def start(self) -> None:
        from serving import rest
        self.poll()
        self._threads.append(threading.Thread(target=self._poll_loop, daemon=True))
        if self.options.config_file and self.options.config_poll_seconds > 0:
            self._threads.append(threading.Thread(target=self._config_loop, daemon=True))
        options = self.options
        if options.rest_port != 0:
            api = rest.RestApi(self.service, options.rest_timeout_seconds, options.token,
                               options.metrics_path, options.max_request_bytes, options.cors,
                               options.max_json_values)
            self._rest = rest.make_server(
                api, options.host, options.rest_port, options.rest_threads,
                _rest_ssl_context(options.ssl) if options.ssl else None,
                options.rest_backlog, options.rest_max_connections)
            self._threads.append(threading.Thread(target=self._rest.serve_forever, daemon=True))
        if options.grpc_port != 0 or options.grpc_socket_path:
            import grpc

            from serving.grpc_service import make_grpc_server
            addresses = []
            if options.grpc_port != 0:
                addresses.append(f"{options.host}:{options.grpc_port}")
            if options.grpc_socket_path:
                addresses.append(f"unix:{options.grpc_socket_path}")
            credentials = None
            if options.ssl:
                credentials = grpc.ssl_server_credentials(
                    [(options.ssl.server_key.encode(), options.ssl.server_cert.encode())],
                    root_certificates=options.ssl.custom_ca.encode() or None,
                    require_client_auth=options.ssl.client_verify)
            self._grpc, self.grpc_port, self._health = make_grpc_server(
                self.service, addresses, max_workers=options.grpc_threads,
                options=options.grpc_arguments, credentials=credentials, token=options.token,
                reload_config=(self.reload_proto if options.token or options.allow_config_reload
                               else None),
                tensor_content=options.tensor_content)
            self._health.update(dict(self.models))
            self._grpc.start()
        for thread in self._threads:
            thread.start()

    @property
    def rest_port(self) -> Optional[int]:
        return self._rest.server_address[1] if self._rest else None

    def stop(self) -> bool:
        """Graceful stop within ``shutdown_grace_seconds``: health turns NOT_SERVING, no new
        calls or connections are taken, idle REST keep-alive connections are closed, in-flight
        gRPC and REST requests get the grace period to finish. Returns whether they did."""
        self._stop.set()
        grace = self.options.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        if self._rest:
            self._rest.draining.set()  # first: keep-alive clients get no further answers
        if self._health is not None:
            self._health.shutting_down()
        stopped = self._grpc.stop(grace=grace) if self._grpc else None
        finished = self._rest.drain(grace) if self._rest else True
        if stopped is not None:
            finished = stopped.wait(max(0.0, deadline - time.monotonic())) and finished
        return finished


def help_text() -> str:
    lines = ["usage: fashion serve --model_base_path=DIR [--model_name=NAME] | "
             "--model_config_file=FILE [--port=8500] [--rest_api_port=8501] ...", "",
             "tensorflow_model_server flags (same names and meanings), then this server's own:"]
    lines += [f"  --{name} (default {default!r}): {text}"
              for name, (_, default, text) in FLAGS.items()]
    lines.append("tensorflow_model_server flags accepted and ignored (with a warning): "
                 + ", ".join(f"--{n}" for n in IGNORED_FLAGS))
    return "\n".join(lines)


def _configure_tensorflow(flags: dict) -> None:
    if flags["tensorflow_intra_op_parallelism"] or flags["tensorflow_inter_op_parallelism"]:
        import tensorflow as tf
        if flags["tensorflow_intra_op_parallelism"]:
            tf.config.threading.set_intra_op_parallelism_threads(
                flags["tensorflow_intra_op_parallelism"])
        if flags["tensorflow_inter_op_parallelism"]:
            tf.config.threading.set_inter_op_parallelism_threads(
                flags["tensorflow_inter_op_parallelism"])


def main(argv: list[str]) -> int:
    """Entry point of ``fashion serve`` (runs until SIGTERM or SIGINT)."""
    try:
        flags = parse_flags(argv)
        if flags["version"]:
            print(f"TensorFlow ModelServer: {VERSION}")
            return 0
        specs = model_specs(flags)
        options = options_from_flags(flags)
    except FlagError as err:
        print(f"fashion serve: error: {err}", file=sys.stderr)
        return 2
    if flags["ignored"]:
        print("fashion serve: warning: ignoring tensorflow_model_server flags that have no "
              "meaning here: " + ", ".join(f"--{n}" for n in flags["ignored"]),
              file=sys.stderr, flush=True)
    _configure_tensorflow(flags)
    server = ModelServer(specs, options)
    try:
        server.start()
    except (OSError, RuntimeError, ssl.SSLError) as err:
        print(f"fashion serve: error: cannot start: {err}", file=sys.stderr)
        server.stop()
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"fashion serve: gRPC on port {server.grpc_port}, REST API on "
          f"{options.host}:{server.rest_port}; models: "
          + ", ".join(f"{s.name} <- {s.base_path}" for s in specs), file=sys.stderr, flush=True)
    done.wait()
    print("fashion serve: stopping (grace "
          f"{options.shutdown_grace_seconds:g} s)", file=sys.stderr, flush=True)
    if not server.stop():
        print("fashion serve: in-flight requests did not finish in time; exiting",
              file=sys.stderr, flush=True)
    # A model call that cannot be stopped (a TF1 session run, a batch, a REST call abandoned at
    # its timeout) must not keep the process past its grace period: interpreter exit would
    # wait for the worker threads running it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
