"""The request path shared by the REST and gRPC front ends of ``fashion serve``.

It follows ``tensorflow_model_server``'s code (``predict_util.cc``, ``classifier.cc``,
``regressor.cc``): signatures are described by the version's ``SignatureDef`` protos; Predict
checks input names and dtypes and leaves shapes to TensorFlow; Classify and Regress take any
signature shaped like TF Serving's (one ``inputs`` tensor of serialized ``tf.Example`` protos,
``classes``/``scores`` or ``outputs``), and check the method name only with
``--enable_signature_method_name_check``. Error texts are TF Serving's. Every call goes through
the :class:`~serving.batching.Runner` (admission control, batching, deadlines) and is counted in
the metrics with its final status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Optional

import numpy as np

from schemas.features import MAX_GIF_FRAMES, MAX_IMAGE_PIXELS
from schemas.image_headers import declared_decode_cost
from schemas.serving_api import (CLASSES_OUTPUT, CLASSIFY_INPUTS, CLASSIFY_METHOD,
                                 PREDICT_METHOD, REGRESS_METHOD, REGRESS_OUTPUTS,
                                 SCORES_OUTPUT, SERVING_DEFAULT)
from serving.batching import Runner
from serving.errors import (FailedPrecondition, Internal, InvalidRequest, ModelNotFound,
                            RequestTooLarge, ServingError)

DEFAULT_MAX_ROWS = 256
# About 80 12-megapixel photos: several seconds of decoding on one core.
DEFAULT_MAX_PIXELS = 1_000_000_000

# How each API words an unknown signature name (gRPC Predict, REST predict, Classify/Regress).
_MISSING_SIGNATURE = {
    "predict": (FailedPrecondition, 'Serving signature key "{}" not found.'),
    "rest_predict": (InvalidRequest, 'Serving signature name: "{}" not found in signature def'),
    "classify": (InvalidRequest, "No signature was found with the name: {}"),
    "regress": (InvalidRequest, "No signature was found with the name: {}"),
}


@dataclasses.dataclass(frozen=True)
class Signature:
    """One resolved signature of one loaded model version."""

    model_name: str
    version: int
    name: str
    function: object
    definition: object  # its SignatureDef proto

    @property
    def method_name(self) -> str:
        return self.definition.method_name

    @property
    def inputs(self) -> dict:
        """Input alias -> ``tf.DType``."""
        import tensorflow as tf
        return {alias: tf.dtypes.as_dtype(info.dtype)
                for alias, info in self.definition.inputs.items()}

    @property
    def outputs(self) -> list:
        return sorted(self.definition.outputs)

    @property
    def key(self) -> tuple:
        return (self.model_name, self.version, self.name)


def _debug_string(message) -> str:
    from google.protobuf import text_format
    return text_format.MessageToString(message)


def _shape_string(array: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in array.shape) + "]"


class InferenceService:
    """Resolves models and signatures and runs Predict / Classify / Regress on them.

    ``method_name_check`` is TF Serving's ``--enable_signature_method_name_check`` (off by
    default, so plain ``tf.saved_model.save`` exports, every signature marked predict, can be
    classified and regressed)."""

    def __init__(self, models: dict, runner: Optional[Runner] = None, metrics=None,
                 method_name_check: bool = False, max_rows: int = DEFAULT_MAX_ROWS,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.models = models
        self.runner = runner or Runner()
        self.metrics = metrics
        self.method_name_check = method_name_check
        self.max_rows = max_rows
        self.max_pixels = max_pixels

    def check_rows(self, rows: int) -> None:
        """RequestTooLarge for a request of more than ``max_rows`` rows (examples, or dimension
        0 of an input): without batching nothing else bounds what one request makes a model
        do (4,096 tiny images in a 2.8 MB message took 66 s and 9 GB)."""
        if rows > self.max_rows:
            raise RequestTooLarge(f"{rows} rows in one request exceed --max_request_rows "
                                  f"({self.max_rows})")

    def check_decode_cost(self, inputs: dict) -> None:
        """Checks what the images of one request declare in their headers (string values that
        are JPEG/PNG/GIF/BMP bytes, or serialized tf.Examples holding such bytes), before the
        request is queued: an image above ``MAX_IMAGE_PIXELS`` (all GIF frames together) or
        ``MAX_GIF_FRAMES`` is InvalidRequest, as the served graph would answer (a decompression
        bomb); all of them together above ``max_pixels`` is RequestTooLarge."""
        pixels = 0
        for array in inputs.values():
            if getattr(array, "dtype", None) != object:
                continue
            for value in np.ravel(array):
                for image_pixels, frames in _declared_images(value):
                    if image_pixels > MAX_IMAGE_PIXELS or frames > MAX_GIF_FRAMES:
                        raise InvalidRequest(
                            f"image too large: it declares {image_pixels} pixels in {frames} "
                            f"frame(s) to decode, more than {MAX_IMAGE_PIXELS} pixels or "
                            f"{MAX_GIF_FRAMES} frames (decompression bomb?)")
                    pixels += image_pixels
                if pixels > self.max_pixels:
                    raise RequestTooLarge(
                        f"the images of one request declare more than {self.max_pixels} "
                        "pixels to decode (--max_request_pixels)")

    def model(self, name: str):
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"Servable not found for request: Latest({name})")
        return model

    def signature(self, name: str, version: Optional[int] = None, label: Optional[str] = None,
                  signature_name: str = "", api: str = "predict") -> Signature:
        """The signature a request names, checked for ``api`` (``predict``, ``rest_predict``,
        ``classify`` or ``regress``) as TF Serving checks it."""
        model = self.model(name)
        version, servable = model.resolve(version, label)
        signature_name = signature_name or SERVING_DEFAULT
        definitions = model.signature_defs(version)
        if signature_name not in definitions or signature_name not in servable.signatures:
            error, text = _MISSING_SIGNATURE[api]
            raise error(text.format(signature_name))
        signature = Signature(name, version, signature_name, servable.signatures[signature_name],
                              definitions[signature_name])
        if api in ("predict", "rest_predict"):
            self._check_predict_method(signature)
        elif api == "classify":
            self._check_classify(signature)
        else:
            self._check_regress(signature)
        return signature

    def _check_predict_method(self, signature: Signature) -> None:
        if self.method_name_check and signature.method_name not in (
                PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise Internal("Expected prediction signature method_name to be one of "
                           f"{{{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: "
                           f"{signature.method_name}")

    def _check_example_signature(self, definition, method: str, noun: str) -> None:
        """The checks Classify and Regress share (``PreProcessClassification`` /
        ``PreProcessRegression``): the method name when asked, one ``inputs`` tensor."""
        if self.method_name_check and definition.method_name != method:
            raise InvalidRequest(f"Expected {noun} signature method_name to be {method}. Was: "
                                 f"{definition.method_name}")
        if len(definition.inputs) != 1:
            raise InvalidRequest("Expected one input Tensor.")

    def _check_classify(self, signature: Signature) -> None:
        definition = signature.definition
        self._check_example_signature(definition, CLASSIFY_METHOD, "classification")
        if len(definition.outputs) not in (1, 2):
            raise InvalidRequest("Expected one or two output Tensors, found "
                                 f"{len(definition.outputs)}")
        if CLASSIFY_INPUTS not in definition.inputs:
            raise InvalidRequest("No classification inputs found in SignatureDef: "
                                 + _debug_string(definition))
        if CLASSES_OUTPUT not in definition.outputs and SCORES_OUTPUT not in definition.outputs:
            raise InvalidRequest("Expected classification signature outputs to contain at least "
                                 f'one of "{CLASSES_OUTPUT}" or "{SCORES_OUTPUT}". Signature '
                                 "was: " + _debug_string(definition))

    def _check_regress(self, signature: Signature) -> None:
        definition = signature.definition
        self._check_example_signature(definition, REGRESS_METHOD, "regression")
        if len(definition.outputs) != 1:
            raise InvalidRequest("Expected one output Tensor.")
        if CLASSIFY_INPUTS not in definition.inputs:
            raise InvalidRequest("No regression inputs found in SignatureDef: "
                                 + _debug_string(definition))
        if REGRESS_OUTPUTS not in definition.outputs:
            raise InvalidRequest("No regression outputs found in SignatureDef: "
                                 + _debug_string(definition))

    @staticmethod
    def check_input_names(signature: Signature, names) -> None:
        """TF Serving's input checks: the count (``VerifyRequestInputsSize``), then each name
        (``input tensor alias not found in signature``)."""
        expected = sorted(signature.definition.inputs)
        given = sorted(names)
        if len(given) > len(expected) or (len(given) < len(expected)
                                          and not signature.definition.defaults):
            extra = sorted(set(given) - set(expected))
            missing = sorted(set(expected) - set(given))
            raise InvalidRequest(
                f"input size does not match signature: {len(given)}!={len(expected)} "
                f"len({{{','.join(given)}}}) != len({{{','.join(expected)}}}). Sent extra: "
                f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
        for alias in names:
            if alias not in signature.definition.inputs:
                raise InvalidRequest(f"input tensor alias not found in signature: {alias}. "
                                     f"Inputs expected to be in the set {{{','.join(expected)}}}.")

    @staticmethod
    def check_output_filter(signature: Signature, output_filter) -> list:
        """The outputs a request asks for (all of them without a filter), checked as TF Serving
        checks ``output_filter``."""
        seen: list = []
        for alias in output_filter:
            if alias not in signature.definition.outputs:
                raise InvalidRequest(f"output tensor alias not found in signature: {alias} "
                                     "Outputs expected to be in the set "
                                     f"{{{','.join(signature.outputs)}}}.")
            if alias in seen:
                raise InvalidRequest(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return seen or signature.outputs

    def predict(self, signature: Signature, inputs: dict, deadline: Optional[float] = None,
                abandon_at_deadline: bool = True, cancellation=None) -> dict:
        """Runs ``signature`` on validated numpy ``inputs``; returns numpy outputs.

        ``deadline``, ``abandon_at_deadline`` and ``cancellation``: see
        :meth:`serving.batching.Runner.run`.
        """
        self.check_input_names(signature, inputs)
        for array in inputs.values():
            if np.ndim(array):
                self.check_rows(np.shape(array)[0])
        self.check_decode_cost(inputs)
        return self.runner.run(signature.key, signature.function, inputs, deadline,
                               abandon_at_deadline, cancellation)

    def _run_examples(self, signature: Signature, examples: list, deadline,
                      abandon_at_deadline: bool = True, cancellation=None) -> dict:
        if not examples:
            raise InvalidRequest("Input is empty.")
        self.check_rows(len(examples))
        return self.predict(signature, {CLASSIFY_INPUTS: np.array(examples, dtype=object)},
                            deadline, abandon_at_deadline, cancellation)

    def classify(self, signature: Signature, examples: list, deadline: Optional[float] = None,
                 abandon_at_deadline: bool = True,
                 cancellation=None) -> tuple:
        """``(classes [n, k] bytes or None, scores [n, k] float or None)`` for the examples,
        checked as ``PostProcessClassificationResult`` checks them."""
        outputs = self._run_examples(signature, examples, deadline, abandon_at_deadline,
                                     cancellation)
        classes, scores = outputs.get(CLASSES_OUTPUT), outputs.get(SCORES_OUTPUT)
        for array, dtype, expected in ((classes, "DT_STRING", np.dtype(object)),
                                       (scores, "DT_FLOAT", np.dtype(np.float32))):
            if array is None:
                continue
            label = "classes" if dtype == "DT_STRING" else "scores"
            if array.ndim != 2:
                raise InvalidRequest("Expected Tensor shape: [batch_size num_classes] but got "
                                     + _shape_string(array))
            if array.dtype != expected:
                raise InvalidRequest(f"Expected {label} Tensor of {dtype}. Got: "
                                     f"DT_{array.dtype.name.upper()}")
            if array.shape[0] != len(examples):
                raise InvalidRequest(f"Expected {label} output batch size of {len(examples)}. "
                                     f"Got: {array.shape[0]}")
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise InvalidRequest("Tensors class and score should match in dim_size(1). Got "
                                 f"{classes.shape[1]} vs. {scores.shape[1]}")
        return classes, scores

    def regress(self, signature: Signature, examples: list, deadline: Optional[float] = None,
                abandon_at_deadline: bool = True,
                cancellation=None) -> np.ndarray:
        """The regression value of each example."""
        outputs = self._run_examples(signature, examples, deadline, abandon_at_deadline,
                                     cancellation)
        values = np.asarray(outputs[REGRESS_OUTPUTS])
        if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
            raise InvalidRequest("Expected output Tensor shape to be either [batch_size] or "
                                 f"[batch_size, 1] but got {_shape_string(values)}")
        if values.shape[0] != len(examples):
            raise InvalidRequest("Input batch size did not match output batch size: "
                                 f"{len(examples)} vs. {values.shape[0]}")
        return values.reshape(-1).astype(np.float32)

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


def _declared_images(value) -> list:
    """``(pixels, frames)`` of each image in one string value: the value itself, or the bytes
    features of the tf.Example it serializes (which always starts with field 1, 0x0A; no image
    format does)."""
    if not isinstance(value, bytes):
        return []
    cost = declared_decode_cost(value)
    if cost is not None:
        return [cost]
    if not value.startswith(b"\n"):
        return []
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2
    try:
        example = example_pb2.Example.FromString(value)
    except DecodeError:
        return []
    return [cost for feature in example.features.feature.values()
            for item in feature.bytes_list.value
            if (cost := declared_decode_cost(item)) is not None]


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
    raise InvalidRequest("Input is empty.")


# tensorflow.serving.ModelVersionStatus.State numbers of the model manager's state names.
_STATE_NUMBERS = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def status_response(statuses) -> object:
    """The ``GetModelStatusResponse`` of a model's version statuses (gRPC and REST)."""
    from tensorflow.core.protobuf import error_codes_pb2
    from tensorflow_serving.apis import get_model_status_pb2
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = _STATE_NUMBERS[status.state]
        entry.status.error_code = error_codes_pb2.Code.Value(status.error_code) \
            if status.error_code in error_codes_pb2.Code.keys() else error_codes_pb2.UNKNOWN
        entry.status.error_message = status.error_message
    return response
