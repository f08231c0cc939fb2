"""The request path shared by the REST and gRPC front ends of ``fashion serve``.

Predict runs any signature on named input tensors. Classify and Regress follow TF Serving's
tf.Example convention: the signature must carry the standard method name
(``tensorflow/serving/classify`` or ``.../regress``), take serialized ``tf.Example`` protos as
``inputs`` and return ``classes``/``scores`` (classify) or ``outputs`` (regress). Every call goes
through the :class:`~serving.batching.Runner` (admission control, batching, deadlines) and is
counted in the metrics with its final status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Optional

import numpy as np

from schemas.serving_api import (CLASSES_OUTPUT, CLASSIFY_INPUTS, REGRESS_OUTPUTS,
                                 SCORES_OUTPUT, SERVING_DEFAULT)
from serving.batching import Runner
from serving.errors import InvalidRequest, ModelNotFound, ServingError


@dataclasses.dataclass(frozen=True)
class Signature:
    """One resolved signature of one loaded model version."""

    model_name: str
    version: int
    name: str
    function: object
    method_name: str

    @property
    def input_specs(self) -> dict:
        return self.function.structured_input_signature[1]

    @property
    def key(self) -> tuple:
        return (self.model_name, self.version, self.name)


class InferenceService:
    """Resolves models and signatures and runs Predict / Classify / Regress on them."""

    def __init__(self, models: dict, runner: Optional[Runner] = None, metrics=None):
        self.models = models
        self.runner = runner or Runner()
        self.metrics = metrics

    def model(self, name: str):
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"Servable not found for request: Latest({name})")
        return model

    def signature(self, name: str, version: Optional[int] = None, label: Optional[str] = None,
                  signature_name: str = "", method: Optional[str] = None) -> Signature:
        """The signature a request names; ``method`` checks its method name (classify/regress)."""
        model = self.model(name)
        version, servable = model.resolve(version, label)
        signature_name = signature_name or SERVING_DEFAULT
        if signature_name not in servable.signatures:
            raise InvalidRequest(f"Serving signature name: \"{signature_name}\" not found in "
                                 "signature def")
        method_name = model.signature_defs(version)[signature_name].method_name
        if method is not None and method_name != method:
            raise InvalidRequest(f"Expected {method} signature method_name, found "
                                 f"{method_name or 'none'} (signature \"{signature_name}\")")
        return Signature(name, version, signature_name, servable.signatures[signature_name],
                         method_name)

    @staticmethod
    def check_input_names(signature: Signature, names) -> None:
        """Raises InvalidRequest unless ``names`` are exactly the signature's inputs."""
        specs = signature.input_specs
        unknown = sorted(set(names) - set(specs))
        missing = sorted(set(specs) - set(names))
        if unknown or missing:
            raise InvalidRequest(f"unknown inputs {unknown}, missing inputs {missing}")

    def predict(self, signature: Signature, inputs: dict, deadline: Optional[float] = None,
                abandon_at_deadline: bool = True) -> dict:
        """Runs ``signature`` on validated numpy ``inputs``; returns numpy outputs.

        ``deadline`` and ``abandon_at_deadline``: see :meth:`serving.batching.Runner.run`.
        """
        self.check_input_names(signature, inputs)
        return self.runner.run(signature.key, signature.function, inputs, deadline,
                               abandon_at_deadline)

    def _run_examples(self, signature: Signature, examples: list, deadline,
                      abandon_at_deadline: bool = True) -> dict:
        if not examples:
            raise InvalidRequest("Input is empty: no examples")
        if set(signature.input_specs) != {CLASSIFY_INPUTS}:
            raise InvalidRequest(f"signature \"{signature.name}\" must have exactly one input "
                                 f"named {CLASSIFY_INPUTS!r} (serialized tf.Examples)")
        return self.predict(signature, {CLASSIFY_INPUTS: np.array(examples, dtype=object)},
                            deadline, abandon_at_deadline)

    def classify(self, signature: Signature, examples: list, deadline: Optional[float] = None,
                 abandon_at_deadline: bool = True) -> tuple:
        """``(classes [n, k] bytes or None, scores [n, k] float or None)`` for the examples."""
        outputs = self._run_examples(signature, examples, deadline, abandon_at_deadline)
        classes, scores = outputs.get(CLASSES_OUTPUT), outputs.get(SCORES_OUTPUT)
        if classes is None and scores is None:
            raise InvalidRequest(f"classify signature \"{signature.name}\" returns neither "
                                 "'classes' nor 'scores'")
        for array in (classes, scores):
            if array is not None and (array.ndim != 2 or array.shape[0] != len(examples)):
                raise InvalidRequest("classify outputs must be [examples, classes], got "
                                     f"{list(array.shape)}")
        if classes is not None and scores is not None and classes.shape != scores.shape:
            raise InvalidRequest("classify outputs 'classes' and 'scores' differ in shape")
        return classes, scores

    def regress(self, signature: Signature, examples: list, deadline: Optional[float] = None,
                abandon_at_deadline: bool = True) -> np.ndarray:
        """The regression value of each example."""
        outputs = self._run_examples(signature, examples, deadline, abandon_at_deadline)
        if REGRESS_OUTPUTS not in outputs:
            raise InvalidRequest(f"regress signature \"{signature.name}\" has no 'outputs'")
        values = np.asarray(outputs[REGRESS_OUTPUTS], dtype=np.float32)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.shape != (len(examples),):
            raise InvalidRequest(f"regress output must be [examples] or [examples, 1], got "
                                 f"{list(outputs[REGRESS_OUTPUTS].shape)}")
        return values

    @contextlib.contextmanager
    def observed(self, api: str, entrypoint: str, model_name: str):
        """Counts one request in the metrics with the status it ends with."""
        start = time.perf_counter()
        status = "OK"
        try:
            yield
        except ServingError as err:
            status = err.grpc_code
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.observe_request(model_name, api, entrypoint, status,
                                             time.perf_counter() - start)


def serialized_examples(input_proto) -> list:
    """Serialized tf.Examples of a TF Serving ``Input`` (``example_list`` or
    ``example_list_with_context``; context features are added to every example that lacks
    them, as TF Serving does)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        listing = input_proto.example_list_with_context
        serialized = []
        for example in listing.examples:
            merged = type(example)()
            merged.CopyFrom(example)
            for key, feature in listing.context.features.feature.items():
                if key not in merged.features.feature:
                    merged.features.feature[key].CopyFrom(feature)
            serialized.append(merged.SerializeToString())
        return serialized
    raise InvalidRequest("Input is empty: give example_list or example_list_with_context")
