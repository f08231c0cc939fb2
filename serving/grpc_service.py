"""TF Serving's gRPC API (the ``--port`` and ``--grpc_socket_path`` of ``fashion serve``).

``tensorflow.serving.PredictionService``: Predict, Classify, Regress, MultiInference and
GetModelMetadata; ``tensorflow.serving.ModelService``: GetModelStatus and
HandleReloadConfigRequest; ``grpc.health.v1.Health`` (SERVING once every model has a loaded,
warmed version). Clients use the ``tensorflow-serving-api`` stubs unchanged. Request tensors are
checked before anything is allocated: dtype against the signature, non-negative dims, an element
budget (a tighter one for strings, whose per-element cost is far above their wire size), and
value counts (``tensor_content`` bytes or typed values) that fit the declared shape; the shape
itself is TensorFlow's to judge, as in TF Serving. With a bearer token configured every call but
the health check needs ``authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import time
from concurrent import futures
from typing import Callable, Optional

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     inference_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from schemas.serving_api import CLASSIFY_METHOD, REGRESS_METHOD, SERVING_DEFAULT
from serving.errors import (InvalidRequest, ModelNotFound, RequestTooLarge, ServingError,
                            Unimplemented)
from serving.batching import Cancellation
from serving.inference import InferenceService, serialized_examples, status_response

MAX_ELEMENTS = 64 * 1024 * 1024  # per input tensor
MAX_STRING_ELEMENTS = 1024 * 1024  # per string input tensor
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val", "int64_val",
                 "bool_val", "dcomplex_val", "scomplex_val", "uint32_val", "uint64_val")


def _spec_args(model_spec) -> tuple:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


def _cancellation(context) -> Cancellation:
    """A cancellation that fires when the call ends (the client cancelled, its deadline passed,
    or the answer was sent), so a model still running for a caller who is gone is stopped."""
    cancellation = Cancellation()
    if not context.add_callback(cancellation.cancel):
        cancellation.cancel()  # the call has already ended
    return cancellation


def _deadline(context) -> Optional[float]:
    remaining = context.time_remaining()
    if remaining is None or remaining > 1e8:  # no client deadline
        return None
    return time.monotonic() + remaining


# The typed repeated field TF Serving writes each dtype's values into (TensorProto.AsProtoField).
_FIELD_OF_DTYPE = {"float32": "float_val", "float64": "double_val", "int32": "int_val",
                   "int16": "int_val", "int8": "int_val", "uint8": "int_val", "uint16": "int_val",
                   "int64": "int64_val", "bool": "bool_val", "uint32": "uint32_val",
                   "uint64": "uint64_val", "object": "string_val"}
# tensorflow.DataType numbers of those dtypes (types.proto).
_DATATYPE_OF_DTYPE = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6,
                      "object": 7, "int64": 9, "bool": 10, "uint16": 17, "uint32": 22,
                      "uint64": 23}


def tensor_proto(value) -> object:
    """The ``TensorProto`` of an output as TF Serving writes it by default: values in the
    dtype's typed repeated field (``float_val``, ``int64_val``, ``string_val``, ...), not in
    ``tensor_content``, which ``tf.make_tensor_proto`` uses for arrays of more than one
    element and clients reading ``float_val`` find empty. Dtypes without such a field here
    (half, complex) keep ``tf.make_tensor_proto``'s encoding. Built field by field: on the
    request path this is five times faster than ``tf.make_tensor_proto``."""
    from tensorflow.core.framework import tensor_pb2
    array = np.asarray(value)
    field = _FIELD_OF_DTYPE.get(array.dtype.name)
    if field is None:
        import tensorflow as tf
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=_DATATYPE_OF_DTYPE[array.dtype.name])
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


def array_from_proto(name: str, proto, dtype, max_rows: Optional[int] = None) -> np.ndarray:
    """A numpy array for request input ``name`` of signature dtype ``dtype`` (``tf.DType``).

    What protects memory is checked before anything is allocated: the dtype, non-negative dims,
    the element budget and the size of ``tensor_content``. Shapes are TensorFlow's to judge, as
    in TF Serving (a ``[3]`` tensor may feed a ``[-1, 1]`` input). Values are read as TF's
    ``Tensor::FromProto`` reads them: fewer typed values than elements repeat the last one, more
    fail with ``tensor parsing error``."""
    import tensorflow as tf
    if proto.dtype != dtype.as_datatype_enum:
        given = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "none"
        raise InvalidRequest(f"input {name!r}: expects {dtype.name}, got {given}")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise InvalidRequest(f"input {name!r}: negative dimension in {dims}")
    if max_rows is not None and dims and dims[0] > max_rows:
        raise RequestTooLarge(f"{dims[0]} rows in one request exceed --max_request_rows "
                              f"({max_rows})")
    budget = MAX_STRING_ELEMENTS if dtype == tf.string else MAX_ELEMENTS
    elements = 1
    for d in dims:
        elements *= d
        if elements > budget:
            raise InvalidRequest(f"input {name!r}: shape {dims} exceeds {budget} elements")
    if proto.tensor_content:
        if dtype == tf.string or len(proto.tensor_content) != elements * dtype.size:
            raise InvalidRequest(f"tensor parsing error: {name}")
    else:
        count = sum(len(getattr(proto, field)) for field in _VALUE_FIELDS)
        if count > elements:
            raise InvalidRequest(f"tensor parsing error: {name}")
    return tf.make_ndarray(proto)


def _fill_classifications(result, classes, scores) -> None:
    rows = (classes if classes is not None else scores).shape
    for i in range(rows[0]):
        entry = result.classifications.add()
        for j in range(rows[1]):
            item = entry.classes.add()
            if classes is not None:
                item.label = classes[i, j].decode("utf-8", "replace")
            if scores is not None:
                item.score = float(scores[i, j])


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference and GetModelMetadata."""

    def __init__(self, service: InferenceService, tensor_content: bool = False):
        self._service = service
        self._tensor_content = tensor_content  # --enable_serialization_as_tensor_content

    def _serve(self, api: str, context, model_name: str, body: Callable):
        try:
            with self._service.observed(api, "GRPC", model_name):
                return body()
        except ServingError as err:
            context.abort(getattr(grpc.StatusCode, err.grpc_code), str(err))
        except Exception as err:  # noqa: BLE001 (the server stays up; the client learns why)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")

    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        def body():
            signature = self._service.signature(*_spec_args(request.model_spec),
                                                request.model_spec.signature_name)
            self._service.check_input_names(signature, request.inputs)
            wanted = self._service.check_output_filter(signature, request.output_filter)
            dtypes = signature.inputs
            inputs = {k: array_from_proto(k, v, dtypes[k], self._service.max_rows)
                      for k, v in request.inputs.items()}
            outputs = self._service.predict(signature, inputs, _deadline(context), False,
                                            _cancellation(context))
            response = predict_pb2.PredictResponse()
            self._set_spec(response.model_spec, signature)
            for key in wanted:
                if self._tensor_content:
                    import tensorflow as tf
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
                else:
                    response.outputs[key].CopyFrom(tensor_proto(outputs[key]))
            return response
        return self._serve("predict", context, request.model_spec.name, body)

    @staticmethod
    def _set_spec(model_spec, signature) -> None:
        model_spec.name = signature.model_name
        model_spec.version.value = signature.version
        model_spec.signature_name = signature.name

    def Classify(self, request, context):  # noqa: N802
        def body():
            signature = self._service.signature(*_spec_args(request.model_spec),
                                                request.model_spec.signature_name,
                                                "classify")
            classes, scores = self._service.classify(
                signature, serialized_examples(request.input), _deadline(context), False,
                _cancellation(context))
            response = classification_pb2.ClassificationResponse()
            self._set_spec(response.model_spec, signature)
            _fill_classifications(response.result, classes, scores)
            return response
        return self._serve("classify", context, request.model_spec.name, body)

    def Regress(self, request, context):  # noqa: N802
        def body():
            signature = self._service.signature(*_spec_args(request.model_spec),
                                                request.model_spec.signature_name,
                                                "regress")
            values = self._service.regress(signature, serialized_examples(request.input),
                                           _deadline(context), False, _cancellation(context))
            response = regression_pb2.RegressionResponse()
            self._set_spec(response.model_spec, signature)
            for value in values:
                response.result.regressions.add().value = float(value)
            return response
        return self._serve("regress", context, request.model_spec.name, body)

    def MultiInference(self, request, context):  # noqa: N802
        def body():
            model_name, seen = "", set()
            for task in request.tasks:
                if not task.model_spec.name:
                    raise InvalidRequest("Found ModelSpec with an empty model name.")
                if model_name and task.model_spec.name != model_name:
                    raise InvalidRequest("All ModelSpecs in a MultiInferenceRequest must access "
                                         "the same model name.")
                model_name = task.model_spec.name
                signature_name = task.model_spec.signature_name or SERVING_DEFAULT
                if signature_name in seen:
                    raise InvalidRequest(f"Duplicate evaluation of signature: {signature_name}")
                seen.add(signature_name)
                if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                    raise Unimplemented("Unsupported signature method_name: "
                                        f"{task.method_name}")
            if not request.tasks:
                raise InvalidRequest("Found ModelSpec with an empty model name.")
            examples = serialized_examples(request.input)
            deadline, cancellation = _deadline(context), _cancellation(context)
            response = inference_pb2.MultiInferenceResponse()
            for task in request.tasks:
                api = "classify" if task.method_name == CLASSIFY_METHOD else "regress"
                try:
                    signature = self._service.signature(*_spec_args(task.model_spec),
                                                        task.model_spec.signature_name, api)
                except InvalidRequest as err:
                    if str(err).startswith("No signature was found"):
                        raise InvalidRequest("Requested signature not found in model graph: "
                                             + (task.model_spec.signature_name
                                                or SERVING_DEFAULT)) from None
                    raise
                result = response.results.add()
                self._set_spec(result.model_spec, signature)
                if api == "classify":
                    _fill_classifications(result.classification_result, *self._service.classify(
                        signature, examples, deadline, False, cancellation))
                else:
                    for value in self._service.regress(signature, examples, deadline, False,
                                                       cancellation):
                        result.regression_result.regressions.add().value = float(value)
            return response
        model_name = request.tasks[0].model_spec.name if request.tasks else ""
        return self._serve("multi_inference", context, model_name, body)

    def GetModelMetadata(self, request, context):  # noqa: N802
        def body():
            if not request.metadata_field:
                raise InvalidRequest("GetModelMetadataRequest must specify at least one "
                                     "metadata_field")
            for field in request.metadata_field:
                if field != "signature_def":
                    raise InvalidRequest(f"Metadata field {field} is not supported")
            name, version, label = _spec_args(request.model_spec)
            model = self._service.model(name)
            version, _ = model.resolve(version, label)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in model.signature_defs(version).items():
                signature_map.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = model.name
            response.model_spec.version.value = version
            response.metadata["signature_def"].Pack(signature_map)
            return response
        return self._serve("metadata", context, request.model_spec.name, body)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, service: InferenceService,
                 reload_config: Optional[Callable[[object], None]] = None):
        self._service = service
        self._reload_config = reload_config

    def GetModelStatus(self, request, context):  # noqa: N802
        model = self._service.models.get(request.model_spec.name)
        try:
            if model is None:
                raise ModelNotFound(f"Could not find any versions of model "
                                    f"{request.model_spec.name}")
            # As in TF Serving, a version label is not resolved here: without a version
            # number every version's status is returned.
            version: Optional[int] = None
            if request.model_spec.HasField("version"):
                version = request.model_spec.version.value
            statuses = model.statuses(version)
        except ModelNotFound as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        return status_response(statuses)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        if self._reload_config is None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "HandleReloadConfigRequest is off: start fashion serve with "
                          "--allow_config_reload, or with --auth_token_file so that only "
                          "token holders can reload")
        try:
            self._reload_config(request.config)
        except ServingError as err:
            context.abort(getattr(grpc.StatusCode, err.grpc_code), str(err))
        return model_management_pb2.ReloadConfigResponse()


class _BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call but the health check without ``authorization: Bearer <token>``."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()
        self._deny = grpc.unary_unary_rpc_method_handler(
            lambda request, context: context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                                   "missing or wrong bearer token"))

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(handler_call_details)
        given = dict(handler_call_details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(handler_call_details)
        return self._deny


class HealthReporter:
    """Keeps ``grpc.health.v1`` statuses in line with the models' loaded versions."""

    def __init__(self, servicer: health.HealthServicer):
        self._servicer = servicer

    def update(self, models: dict) -> None:
        ready = {name: bool(model.loaded_versions()) for name, model in models.items()}
        everything = bool(ready) and all(ready.values())
        for name, up in ready.items():
            self._servicer.set(name, health_pb2.HealthCheckResponse.SERVING if up else
                               health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", PREDICTION_SERVICE):
            self._servicer.set(name, health_pb2.HealthCheckResponse.SERVING if everything else
                               health_pb2.HealthCheckResponse.NOT_SERVING)

    def shutting_down(self) -> None:
        self._servicer.enter_graceful_shutdown()


def make_grpc_server(service: InferenceService, addresses: list[str], *, max_workers: int = 16,
                     options: tuple = (), credentials=None, token: Optional[str] = None,
                     reload_config: Optional[Callable] = None, tensor_content: bool = False):
    """A gRPC server (not yet started): ``(server, bound TCP port or None, HealthReporter)``.

    ``addresses`` are ``host:port`` or ``unix:/path`` strings; ``credentials`` (from
    ``grpc.ssl_server_credentials``) make the TCP port TLS; ``tensor_content`` answers Predict
    outputs in ``tensor_content`` (``--enable_serialization_as_tensor_content``).
    """
    interceptors = [_BearerTokenInterceptor(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                    thread_name_prefix="fashion-grpc"),
                         interceptors=interceptors, options=list(options))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(service, tensor_content), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(service, reload_config), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reporter = HealthReporter(health_servicer)
    reporter.update(service.models)
    tcp_port = None
    for address in addresses:
        if credentials is not None and not address.startswith("unix:"):
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {address}")
        if not address.startswith("unix:"):
            tcp_port = bound
    return server, tcp_port, reporter
