"""TF Serving's gRPC API through the tensorflow-serving-api stubs, including bad requests."""

import grpc
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,  # noqa: E402
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving.grpc_service import MAX_ELEMENTS, make_grpc_server  # noqa: E402


@pytest.fixture(scope="module")
def stubs(toy_models):
    server, port = make_grpc_server(toy_models, port=0)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()
    server.stop(grace=None)


def _request(name="toy", signature="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value if not isinstance(value, (list, np.ndarray))
                                     else tf.make_tensor_proto(value))
    return request


def test_predict(stubs):
    prediction, _ = stubs
    response = prediction.Predict(_request(x=np.array([1.0, 2.5], np.float32)), timeout=10)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.0, 5.0]
    assert response.model_spec.version.value == 3
    assert response.model_spec.signature_name == "serving_default"
    request = _request(signature="measure", data=np.array([b"ab", b"\xff"], object),
                       weight=np.array([1.0, 2.0], np.float32))
    request.model_spec.version_label = "stable"
    outputs = prediction.Predict(request, timeout=10).outputs
    assert tf.make_ndarray(outputs["length"]).tolist() == [2, 1]


def _code(stub_call, request):
    with pytest.raises(grpc.RpcError) as err:
        stub_call(request, timeout=10)
    return err.value.code(), err.value.details()


def test_bad_requests_get_clear_statuses(stubs):
    prediction, _ = stubs
    nan = tf.make_tensor_proto(np.array([1.0], np.float32))
    cases = [
        (_request(name="nope", x=nan), grpc.StatusCode.NOT_FOUND),
        (_request(x=tf.make_tensor_proto(np.array([1], np.int32))),
         grpc.StatusCode.INVALID_ARGUMENT),                                   # wrong dtype
        (_request(z=nan), grpc.StatusCode.INVALID_ARGUMENT),                  # unknown alias
        (_request(signature="measure", data=np.array([b"a"], object)),
         grpc.StatusCode.INVALID_ARGUMENT),                                   # missing input
        (_request(x=np.zeros([0], np.float32)), grpc.StatusCode.INVALID_ARGUMENT),  # empty
        (_request(signature="nope", x=nan), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    version = _request(x=nan)
    version.model_spec.version.value = 9
    cases.append((version, grpc.StatusCode.NOT_FOUND))
    mismatch = tf.make_tensor_proto(np.array([1.0, 2.0], np.float32))
    mismatch.tensor_shape.dim[0].size = 3                                     # content vs shape
    cases.append((_request(x=mismatch), grpc.StatusCode.INVALID_ARGUMENT))
    negative = tf.make_tensor_proto(np.array([1.0], np.float32))
    negative.tensor_shape.dim[0].size = -4
    cases.append((_request(x=negative), grpc.StatusCode.INVALID_ARGUMENT))
    huge = tf.make_tensor_proto(np.array([1.0], np.float32))
    huge.ClearField("tensor_content")
    huge.tensor_shape.dim[0].size = MAX_ELEMENTS * 1000                       # no allocation
    cases.append((_request(x=huge), grpc.StatusCode.INVALID_ARGUMENT))
    for request, code in cases:
        got, details = _code(prediction.Predict, request)
        assert got == code, (request, details)


def test_client_deadline_of_one_millisecond(stubs):
    prediction, _ = stubs
    big = np.ones([2_000_000], np.float32)
    with pytest.raises(grpc.RpcError) as err:
        prediction.Predict(_request(x=big), timeout=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_metadata_and_status(stubs):
    prediction, models = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "toy"
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "measure"}
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "toy"
    (status,) = models.GetModelStatus(status_request, timeout=10).model_version_status
    assert (status.version, status.state, status.status.error_code) == (3, 30, 0)
    status_request.model_spec.name = "missing"
    assert _code(models.GetModelStatus, status_request)[0] == grpc.StatusCode.NOT_FOUND
