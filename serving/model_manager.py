"""Model version management with TF Serving's semantics (the core of ``fashion serve``).

A served model is a base path of numbered version folders (what the Pusher writes). Each
:meth:`ServedModel.poll` looks at the folders, picks the versions the version policy wants
(latest N, all, or specific), loads the ones not loaded yet and unloads the ones no longer
wanted, with TF Serving's availability-preserving order: a new version becomes AVAILABLE before
an old one is unloaded, and a version that fails to load leaves the old one serving and is
reported with its error. A version folder is loaded only once it is complete (its SavedModel
graph and every variables shard are present), so a half-copied push is never served. A version
that failed is retried when any of its files changes (size or time: a copy still being written
when it was first tried finishes without touching the folder's own time), with a backoff that
doubles from one second to a minute between attempts.

Loading goes through an injectable ``loader`` (default: ``tf.saved_model.load`` followed by the
version's TF Serving warm-up requests), so the policy logic is tested without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Callable, Optional

from schemas.serving_api import list_versions
from serving.errors import InvalidRequest, ModelNotFound

# The names of tensorflow.serving.ModelVersionStatus.State.
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions to serve: ``latest`` (the N highest), ``all`` or ``specific``."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"unknown version policy {self.kind!r}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError("latest policy needs num_versions >= 1")
        if self.kind == "specific" and not self.versions:
            raise ValueError("specific policy needs at least one version")

    def select(self, available: list[int]) -> list[int]:
        available = sorted(available)
        if self.kind == "all":
            return available
        if self.kind == "specific":
            return [v for v in available if v in self.versions]
        return available[-self.num_versions:]


@dataclasses.dataclass
class VersionStatus:
    """One version's state, as GetModelStatus reports it."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


RETRY_BACKOFF_SECONDS = 1.0
MAX_RETRY_BACKOFF_SECONDS = 60.0


def release_memory() -> None:
    """Frees an unloaded version's memory now: collects the Python cycles that hold its
    TensorFlow objects, then asks glibc to hand freed heap pages back (with many request
    threads, each with its own malloc arena, freed model memory otherwise stays in the
    process: +700 MB over four swaps of the default category model under load)."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass


def version_files(path: str) -> tuple:
    """``(relative path, size, mtime_ns)`` of every file in a version folder: what changes when
    a copy still being written finishes, even when the folder's own time does not."""
    found = []
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            try:
                info = os.stat(full)
            except OSError:
                continue
            found.append((os.path.relpath(full, path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


def _default_loader(path: str):
    from serving.warmup import load_servable
    return load_servable(path)


def read_signature_defs(export_dir: str, tags: tuple = ("serve",)) -> dict:
    """The ``SignatureDef`` protos of the SavedModel's meta graph with ``tags`` (all of them,
    TF's internal ``__saved_model_init_op`` included, as TF Serving's metadata lists them)."""
    from tensorflow.core.protobuf import saved_model_pb2
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as handle:
        saved = saved_model_pb2.SavedModel.FromString(handle.read())
    graphs = [g for g in saved.meta_graphs if set(g.meta_info_def.tags) == set(tags)]
    return dict((graphs or saved.meta_graphs)[0].signature_def)


class ServedModel:
    """One model name: its versions, their states and the loaded servables."""

    def __init__(self, name: str, base_path: str, policy: VersionPolicy = VersionPolicy(),
                 labels: Optional[dict] = None,
                 loader: Callable[[str], object] = _default_loader,
                 tags: tuple = ("serve",)):
        self.name = name
        self.base_path = base_path
        self.policy = policy
        self.labels = dict(labels or {})
        self._loader = loader
        self._tags = tuple(tags)
        self._lock = threading.Lock()
        self._servables: dict[int, object] = {}
        self._status: dict[int, VersionStatus] = {}
        # version -> (its files' sizes and times when it failed, attempts, earliest retry)
        self._failures: dict[int, tuple] = {}
        self._paths: dict[int, str] = {}
        self._signature_defs: dict[int, dict] = {}
        self._poll_lock = threading.Lock()  # one poll (or reload) at a time

    def poll(self) -> None:
        """Brings the loaded versions in line with the folders and the policy."""
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        available = list_versions(self.base_path)
        wanted = self.policy.select(list(available))
        for version in wanted:
            if version in self._servables:
                continue
            files = version_files(available[version])
            failure = self._failures.get(version)
            if failure is not None and (failure[0] == files or time.monotonic() < failure[2]):
                continue  # unchanged since it failed, or changed but still backing off
            self._set(version, LOADING)
            try:
                servable = self._loader(available[version])
            except Exception as err:  # any load failure is reported, never raised
                attempts = failure[1] + 1 if failure else 1
                backoff = min(MAX_RETRY_BACKOFF_SECONDS,
                              RETRY_BACKOFF_SECONDS * 2 ** (attempts - 1))
                self._failures[version] = (files, attempts, time.monotonic() + backoff)
                self._set(version, END, "UNKNOWN", f"{type(err).__name__}: {err}")
                continue
            with self._lock:
                self._servables[version] = servable
                self._paths[version] = available[version]
                self._signature_defs.pop(version, None)
            self._failures.pop(version, None)
            self._set(version, AVAILABLE)
        wanted_loaded = [v for v in wanted if v in self._servables]
        for version in sorted(self._servables):
            if version in wanted:
                continue
            if not wanted_loaded:
                break  # nothing wanted is serving yet: keep the old version(s) up
            self._set(version, UNLOADING)
            with self._lock:
                del self._servables[version]
                self._signature_defs.pop(version, None)
            release_memory()
            self._set(version, END)

    def reconfigure(self, policy: VersionPolicy, labels: dict) -> None:
        """Takes a new version policy and labels (a config reload); the next poll applies them."""
        with self._lock:
            self.policy = policy
            self.labels = dict(labels)

    def unload_all(self) -> None:
        """Unloads every version (the model left the config)."""
        with self._poll_lock:
            for version in sorted(self._servables):
                self._set(version, UNLOADING)
                with self._lock:
                    del self._servables[version]
                    self._signature_defs.pop(version, None)
                release_memory()
                self._set(version, END)

    def loaded_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._servables)

    def _set(self, version: int, state: str, code: str = "OK", message: str = "") -> None:
        with self._lock:
            self._status[version] = VersionStatus(version, state, code, message)

    def version_path(self, version: int) -> str:
        """The folder a loaded version was loaded from."""
        with self._lock:
            if version not in self._paths or version not in self._servables:
                raise ModelNotFound(f"version {version} of model {self.name} is not loaded")
            return self._paths[version]

    def signature_defs(self, version: int) -> dict:
        """The ``SignatureDef`` protos of a loaded version, read from its ``saved_model.pb``."""
        path = self.version_path(version)
        with self._lock:
            cached = self._signature_defs.get(version)
        if cached is None:
            cached = read_signature_defs(path, self._tags)
            with self._lock:
                self._signature_defs[version] = cached
        return cached

    def statuses(self, version: Optional[int] = None) -> list[VersionStatus]:
        """Status of every known version (or of one); raises ModelNotFound for unknown ones."""
        with self._lock:
            if version is None:
                if not self._status:
                    raise ModelNotFound(f"Could not find any versions of model {self.name}")
                return [dataclasses.replace(s) for _, s in sorted(self._status.items())]
            if version not in self._status:
                raise ModelNotFound(f"Could not find version {version} of model {self.name}")
            return [dataclasses.replace(self._status[version])]

    def resolve(self, version: Optional[int] = None, label: Optional[str] = None):
        """``(version, servable)`` for a request: a version, a label or the latest loaded."""
        with self._lock:
            if label is not None:
                if label not in self.labels:
                    raise InvalidRequest(f"Unrecognized servable version label: {label}")
                version = self.labels[label]
            if version is None:
                if not self._servables:
                    raise ModelNotFound(f"Servable not found for request: Latest({self.name})")
                version = max(self._servables)
            if version not in self._servables:
                raise ModelNotFound(
                    f"Servable not found for request: Specific({self.name}, {version})")
            return version, self._servables[version]
