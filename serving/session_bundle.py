"""SavedModels that only TF1's session-based loader can serve.

``tensorflow_model_server`` loads every SavedModel into a session (``LoadSavedModel``) and feeds
each signature's input tensors directly. ``tf.saved_model.load`` rebuilds TF1 graphs as
functions and fails on some that TF Serving serves (reference variables, placeholders whose
declared shape the graph's ops contradict). :func:`load_session_bundle` is the fallback
``serving.warmup.load_servable`` takes then: the TF1 loader into a private graph and session, its
signatures called like loaded TF2 signatures (keyword tensors in, named numpy arrays out).
"""

from __future__ import annotations

import threading

import numpy as np


class SessionSignature:
    """One ``SignatureDef`` of a session bundle, callable as ``signature(**inputs)``."""

    def __init__(self, session, signature_def, lock: threading.Lock):
        self._session = session
        self._inputs = {alias: info.name for alias, info in signature_def.inputs.items()}
        self._outputs = sorted(signature_def.outputs)
        self._output_names = [signature_def.outputs[alias].name for alias in self._outputs]
        self._lock = lock
        self._callables: dict = {}

    def _callable(self, aliases: tuple):
        # C++ Session::MakeCallable feeds tensors as tensorflow_model_server does. Python's
        # Session.run and make_callable refuse a shape the placeholder did not declare, which
        # TF Serving feeds (a [3] tensor into a [-1, 1] placeholder).
        from tensorflow.core.protobuf import config_pb2
        with self._lock:
            made = self._callables.get(aliases)
            if made is None:
                options = config_pb2.CallableOptions(
                    feed=[self._inputs[alias] for alias in aliases], fetch=self._output_names)
                made = self._session._make_callable_from_options(options)  # noqa: SLF001
                self._callables[aliases] = made
            return made

    def __call__(self, **inputs) -> dict:
        unknown = sorted(set(inputs) - set(self._inputs))
        if unknown:
            raise ValueError(f"input tensor alias not found in signature: {unknown[0]}")
        aliases = tuple(sorted(inputs))
        run = self._callable(aliases)
        # Session runs are thread-safe, but TF1 graphs with reference variables (counters,
        # assign ops) are not safe to run concurrently: serialise them.
        with self._lock:
            values = run(*[np.asarray(inputs[alias]) for alias in aliases])
        return dict(zip(self._outputs, values))


class SessionBundle:
    """A SavedModel loaded with TF1's loader; ``signatures`` like a loaded TF2 object's."""

    def __init__(self, export_dir: str, tags: tuple):
        import tensorflow as tf
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags),
                                                              export_dir)
        lock = threading.Lock()
        self.signatures = {name: SessionSignature(self.session, definition, lock)
                           for name, definition in meta_graph.signature_def.items()
                           if not name.startswith("__")}

    def close(self) -> None:
        """Frees the session (the version was unloaded)."""
        self.session.close()


def load_session_bundle(export_dir: str, tags: tuple = ("serve",)) -> SessionBundle:
    """Loads ``export_dir`` into a fresh graph and session with TF1's SavedModel loader."""
    return SessionBundle(export_dir, tags)
