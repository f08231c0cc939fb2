"""``fashion serve``: a TF-Serving-compatible model server (gRPC + REST, version watching).

It takes ``tensorflow_model_server``'s flags with the same names and meanings. Flags this slice
does not implement yet are refused with a clear message rather than silently ignored, and
unknown flags fail. Models come from ``--model_config_file`` (TF Serving's ``ModelServerConfig``
text proto: name, base_path, model_version_policy, version_labels) or from ``--model_name`` and
``--model_base_path``. A background thread polls the base paths every
``--file_system_poll_wait_seconds`` and swaps versions without dropping requests.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from typing import Optional

from serving.model_manager import ServedModel, VersionPolicy

# tensorflow_model_server flags implemented here: name -> (type, default, help).
FLAGS = {
    "port": (int, 8500, "port of the gRPC API (0 disables it)"),
    "rest_api_port": (int, 8501, "port of the REST API (0 disables it)"),
    "rest_api_host": (str, "127.0.0.1", "address the REST and gRPC APIs bind to"),
    "model_name": (str, "default", "name of the single model (with --model_base_path)"),
    "model_base_path": (str, "", "folder of numbered SavedModel versions"),
    "model_config_file": (str, "", "ModelServerConfig text proto with one or more models"),
    "file_system_poll_wait_seconds": (int, 1, "seconds between polls for new versions"),
}
# tensorflow_model_server flags recognised but not implemented by this slice yet.
NOT_YET = ("grpc_socket_path", "grpc_channel_arguments", "enable_batching",
           "batching_parameters_file", "monitoring_config_file", "rest_api_timeout_in_ms",
           "model_config_file_poll_wait_seconds", "rest_api_num_threads", "ssl_config_file",
           "tensorflow_session_parallelism", "enable_model_warmup")


class FlagError(ValueError):
    """A command-line flag is unknown, malformed or not supported yet."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: tuple = ()


def parse_flags(argv: list[str]) -> dict:
    """Parses ``--flag=value`` / ``--flag value`` like tensorflow_model_server does."""
    values = {name: default for name, (_, default, _) in FLAGS.items()}
    items = list(argv)
    while items:
        item = items.pop(0)
        if not item.startswith("--"):
            raise FlagError(f"unexpected argument {item!r}; flags look like --name=value")
        name, has_value, value = item[2:].partition("=")
        if name in NOT_YET:
            raise FlagError(f"--{name} is a tensorflow_model_server flag that fashion serve "
                            "does not support yet")
        if name not in FLAGS:
            raise FlagError(f"unknown flag --{name}; supported: "
                            + ", ".join(f"--{n}" for n in FLAGS))
        if not has_value:
            if not items:
                raise FlagError(f"--{name} needs a value")
            value = items.pop(0)
        kind = FLAGS[name][0]
        try:
            values[name] = kind(value)
        except ValueError:
            raise FlagError(f"--{name}={value!r} is not a {kind.__name__}") from None
    return values


def model_specs(flags: dict) -> list[ModelSpec]:
    """The models to serve, from the config file or the single-model flags."""
    if flags["model_config_file"]:
        if flags["model_base_path"]:
            raise FlagError("give --model_config_file or --model_base_path, not both")
        return read_model_config(flags["model_config_file"])
    if not flags["model_base_path"]:
        raise FlagError("--model_base_path (or --model_config_file) is required")
    return [ModelSpec(flags["model_name"], flags["model_base_path"])]


def read_model_config(path: str) -> list[ModelSpec]:
    """Reads a TF Serving ``ModelServerConfig`` text proto (``model_config_list``)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2
    config = model_server_config_pb2.ModelServerConfig()
    with open(path) as handle:
        try:
            text_format.Parse(handle.read(), config)
        except text_format.ParseError as err:
            raise FlagError(f"{path}: {err}") from None
    specs = []
    for model in config.model_config_list.config:
        if not model.name or not model.base_path:
            raise FlagError(f"{path}: every model needs a name and a base_path")
        policy = model.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        if choice == "all":
            version_policy = VersionPolicy("all")
        elif choice == "specific":
            version_policy = VersionPolicy("specific", versions=tuple(policy.specific.versions))
        else:
            version_policy = VersionPolicy("latest", policy.latest.num_versions or 1)
        specs.append(ModelSpec(model.name, model.base_path, version_policy,
                               tuple(sorted(model.version_labels.items()))))
    if not specs:
        raise FlagError(f"{path}: no model in model_config_list")
    return specs


class ModelServer:
    """Serves ``specs`` over REST, polling their base paths in the background."""

    def __init__(self, specs: list[ModelSpec], rest_host: str = "127.0.0.1",
                 rest_port: int = 8501, poll_seconds: float = 1.0, grpc_port: int = 0):
        self.models = {s.name: ServedModel(s.name, s.base_path, s.policy, dict(s.labels))
                       for s in specs}
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._rest = None
        self._rest_address = (rest_host, rest_port)
        self._grpc_port = grpc_port
        self._grpc = None
        self.grpc_port: Optional[int] = None
        self._threads: list[threading.Thread] = []

    def poll(self) -> None:
        for model in self.models.values():
            model.poll()

    def _poll_loop(self):
        while not self._stop.wait(self._poll_seconds):
            self.poll()

    def start(self) -> None:
        from serving import rest
        self.poll()
        self._threads.append(threading.Thread(target=self._poll_loop, daemon=True))
        if self._rest_address[1] != 0:
            self._rest = rest.make_server(self.models, *self._rest_address)
            self._threads.append(threading.Thread(target=self._rest.serve_forever, daemon=True))
        if self._grpc_port != 0:
            from serving.grpc_service import make_grpc_server
            self._grpc, self.grpc_port = make_grpc_server(self.models, self._rest_address[0],
                                                          self._grpc_port)
            self._grpc.start()
        for thread in self._threads:
            thread.start()

    @property
    def rest_port(self) -> Optional[int]:
        return self._rest.server_address[1] if self._rest else None

    def stop(self) -> None:
        """Stops polling; in-flight gRPC (10 s grace) and REST requests finish first."""
        self._stop.set()
        if self._grpc:
            self._grpc.stop(grace=10).wait()
        if self._rest:
            self._rest.shutdown()
            self._rest.server_close()


def help_text() -> str:
    lines = ["usage: fashion serve --model_base_path=DIR [--model_name=NAME] | "
             "--model_config_file=FILE [--rest_api_port=8501]", "",
             "tensorflow_model_server flags supported so far:"]
    lines += [f"  --{name} (default {default!r}): {text}"
              for name, (_, default, text) in FLAGS.items()]
    lines.append("recognised but not supported yet: " + ", ".join(f"--{n}" for n in NOT_YET))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point of ``fashion serve`` (runs until SIGTERM or SIGINT)."""
    try:
        flags = parse_flags(argv)
        specs = model_specs(flags)
    except FlagError as err:
        print(f"fashion serve: error: {err}", file=sys.stderr)
        return 2
    server = ModelServer(specs, flags["rest_api_host"], flags["rest_api_port"],
                         flags["file_system_poll_wait_seconds"], grpc_port=flags["port"])
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"fashion serve: gRPC on port {server.grpc_port}, REST API on "
          f"{flags['rest_api_host']}:{server.rest_port}; models: "
          + ", ".join(f"{s.name} <- {s.base_path}" for s in specs), file=sys.stderr, flush=True)
    done.wait()
    server.stop()
    return 0
