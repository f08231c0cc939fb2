"""TF Serving's gRPC API over :mod:`serving.model_manager` (the ``--port`` of ``fashion serve``).

Implemented: ``tensorflow.serving.PredictionService`` ``Predict`` and ``GetModelMetadata`` and
``tensorflow.serving.ModelService`` ``GetModelStatus``, through the ``tensorflow-serving-api``
stubs, so TF Serving clients work unchanged. Request tensors are checked before anything is
allocated: dtype against the signature, non-negative dims, an element budget, and value counts
(``tensor_content`` bytes or typed values) that match the declared shape.
"""

from __future__ import annotations

from concurrent import futures
from typing import Optional

import grpc
import numpy as np
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving.model_manager import ModelNotFound

MAX_ELEMENTS = 64 * 1024 * 1024  # per input tensor
_ERROR_CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "NOT_FOUND": 5}
_STATES = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}
_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val", "int64_val",
                 "bool_val", "dcomplex_val", "scomplex_val", "uint32_val", "uint64_val")


class InvalidRequest(ValueError):
    """Answered with INVALID_ARGUMENT."""


def _resolve(models: dict, model_spec):
    model = models.get(model_spec.name)
    if model is None:
        raise ModelNotFound(f"Servable not found for request: Latest({model_spec.name})")
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label or None
    return model, *model.resolve(version, label)


def tensor_from_proto(name: str, proto, spec):
    """Validated ``tf.Tensor`` for request input ``name`` against signature input ``spec``."""
    import tensorflow as tf
    if proto.dtype != spec.dtype.as_datatype_enum:
        raise InvalidRequest(f"input {name!r}: expects {spec.dtype.name}, got "
                             f"{tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else 'none'}")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise InvalidRequest(f"input {name!r}: negative dimension in {dims}")
    elements = 1
    for d in dims:
        elements *= d
        if elements > MAX_ELEMENTS:
            raise InvalidRequest(f"input {name!r}: shape {dims} exceeds {MAX_ELEMENTS} elements")
    if proto.tensor_content:
        expected = elements * spec.dtype.size
        if spec.dtype == tf.string or len(proto.tensor_content) != expected:
            raise InvalidRequest(f"input {name!r}: tensor_content has "
                                 f"{len(proto.tensor_content)} bytes, shape {dims} needs "
                                 f"{expected}")
    else:
        count = sum(len(getattr(proto, field)) for field in _VALUE_FIELDS)
        if count != elements:
            raise InvalidRequest(f"input {name!r}: {count} values for shape {dims} "
                                 f"({elements} elements)")
    if not spec.shape.is_compatible_with(dims):
        raise InvalidRequest(f"input {name!r}: shape {dims} does not match "
                             f"{spec.shape.as_list()}")
    if elements == 0:
        raise InvalidRequest(f"input {name!r} is empty")
    return tf.constant(tf.make_ndarray(proto), dtype=spec.dtype)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata."""

    def __init__(self, models: dict):
        self._models = models

    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        import tensorflow as tf
        try:
            model, version, servable = _resolve(self._models, request.model_spec)
            signature_name = request.model_spec.signature_name or "serving_default"
            if signature_name not in servable.signatures:
                raise InvalidRequest(f"Serving signature name: \"{signature_name}\" not found "
                                     "in signature def")
            function = servable.signatures[signature_name]
            specs = function.structured_input_signature[1]
            unknown = sorted(set(request.inputs) - set(specs))
            missing = sorted(set(specs) - set(request.inputs))
            if unknown or missing:
                raise InvalidRequest(f"unknown inputs {unknown}, missing inputs {missing}")
            tensors = {k: tensor_from_proto(k, v, specs[k]) for k, v in request.inputs.items()}
            try:
                outputs = function(**tensors)
            except (tf.errors.InvalidArgumentError, ValueError) as err:
                raise InvalidRequest(getattr(err, "message", str(err)).splitlines()[0]) from None
        except ModelNotFound as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        except InvalidRequest as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature_name
        for key in request.output_filter or outputs:
            if key not in outputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown output {key!r}")
            response.outputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(outputs[key])))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "metadata_field must be exactly ['signature_def']")
        try:
            model, version, _ = _resolve(self._models, request.model_spec)
        except ModelNotFound as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in model.signature_defs(version).items():
            signature_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus."""

    def __init__(self, models: dict):
        self._models = models

    def GetModelStatus(self, request, context):  # noqa: N802
        model = self._models.get(request.model_spec.name)
        try:
            if model is None:
                raise ModelNotFound(f"Could not find any versions of model "
                                    f"{request.model_spec.name}")
            version: Optional[int] = None
            if request.model_spec.HasField("version"):
                version = request.model_spec.version.value
            elif request.model_spec.version_label:
                version, _ = model.resolve(label=request.model_spec.version_label)
            statuses = model.statuses(version)
        except ModelNotFound as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = _STATES[status.state]
            entry.status.error_code = _ERROR_CODES.get(status.error_code, 2)
            entry.status.error_message = status.error_message
        return response


def make_grpc_server(models: dict, host: str = "127.0.0.1", port: int = 8500,
                     max_workers: int = 16) -> tuple[grpc.Server, int]:
    """A gRPC server (not yet started) serving ``models`` and the port it bound."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(models), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(models), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    return server, bound
