"""TF Serving's gRPC API through the tensorflow-serving-api stubs, including bad requests."""

import grpc
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,  # noqa: E402
                                     get_model_status_pb2, inference_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from serving.grpc_service import MAX_ELEMENTS, MAX_STRING_ELEMENTS  # noqa: E402
from serving.errors import InvalidRequest  # noqa: E402
from serving.grpc_service import array_from_proto, make_grpc_server  # noqa: E402
from serving.inference import InferenceService  # noqa: E402


@pytest.fixture(scope="module")
def stubs(toy_models):
    server, port, _ = make_grpc_server(InferenceService(toy_models), ["127.0.0.1:0"])
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


def test_outputs_fill_the_typed_fields_as_tf_serving_does(stubs):
    """Clients read ``float_val`` and friends: TF Serving writes values there by default, not
    in ``tensor_content`` (which ``tf.make_tensor_proto`` uses for more than one element)."""
    prediction, _ = stubs
    response = prediction.Predict(_request(x=np.array([1.0, 2.5], np.float32)), timeout=10)
    y = response.outputs["y"]
    assert list(y.float_val) == [2.0, 5.0] and not y.tensor_content
    assert [d.size for d in y.tensor_shape.dim] == [2]
    from serving.grpc_service import tensor_proto
    for array, field in ((np.arange(6, dtype=np.int64).reshape(2, 3), "int64_val"),
                         (np.array([1, -2], np.int32), "int_val"),
                         (np.array([0.5, 1.5]), "double_val"),
                         (np.array([True, False]), "bool_val"),
                         (np.array([b"a", b"bc"], object), "string_val")):
        proto = tensor_proto(array)
        assert len(getattr(proto, field)) == array.size and not proto.tensor_content, field
        np.testing.assert_array_equal(tf.make_ndarray(proto), array)


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
        (_request(signature="nope", x=nan), grpc.StatusCode.FAILED_PRECONDITION),
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
    huge = tf.make_tensor_proto(np.array([[1.0]], np.float32))
    huge.ClearField("tensor_content")
    huge.tensor_shape.dim[1].size = MAX_ELEMENTS * 1000                       # no allocation
    cases.append((_request(x=huge), grpc.StatusCode.INVALID_ARGUMENT))
    overflow = tf.make_tensor_proto(np.array([[[1.0]]], np.float32))
    overflow.ClearField("tensor_content")
    overflow.tensor_shape.dim[1].size = 2 ** 62
    overflow.tensor_shape.dim[2].size = 2 ** 62                               # int64 overflow
    cases.append((_request(x=overflow), grpc.StatusCode.INVALID_ARGUMENT))
    rows = tf.make_tensor_proto(np.array([1.0], np.float32))
    rows.ClearField("tensor_content")
    rows.tensor_shape.dim[0].size = 10 ** 6                # more rows than --max_request_rows
    cases.append((_request(x=rows), grpc.StatusCode.RESOURCE_EXHAUSTED))

    for request, code in cases:
        got, details = _code(prediction.Predict, request)
        assert got == code, (request, details)


def test_string_amplification_is_refused_before_decoding():
    # A million empty strings cost ~2 MB on the wire but ~100 MB as Python/TF objects.
    amplified = tf.make_tensor_proto(np.array([b""], object))
    amplified.string_val.extend([b""] * MAX_STRING_ELEMENTS)
    amplified.tensor_shape.dim[0].size = MAX_STRING_ELEMENTS + 1
    with pytest.raises(InvalidRequest, match=f"exceeds {MAX_STRING_ELEMENTS} elements"):
        array_from_proto("data", amplified, tf.string)


def test_client_deadline_of_one_millisecond(stubs):
    prediction, _ = stubs
    big = np.ones([1, 2_000_000], np.float32)
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
    assert set(signatures.signature_def) == {"serving_default", "measure", "classify",
                                             "regress", "slow", "calls",
                                             "__saved_model_init_op"}  # as TF Serving lists
    assert response.model_spec.version.value == 3 and not response.model_spec.signature_name
    request.metadata_field[:] = ["other"]
    assert _code(prediction.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Metadata field other is not supported")
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "toy"
    (status,) = models.GetModelStatus(status_request, timeout=10).model_version_status
    assert (status.version, status.state, status.status.error_code) == (3, 30, 0)
    status_request.model_spec.name = "missing"
    assert _code(models.GetModelStatus, status_request)[0] == grpc.StatusCode.NOT_FOUND


def _examples(request, *values, context=None):
    listing = (request.input.example_list_with_context if context is not None
               else request.input.example_list)
    for value in values:
        listing.examples.add().features.feature["x"].float_list.value.append(value)
    if context is not None:
        listing.context.features.feature["shop"].bytes_list.value.append(context)
    return request


def test_classify_regress_and_multi_inference(stubs):
    prediction, _ = stubs
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "classify"
    response = prediction.Classify(_examples(request, 2.0, 5.0, context=b"s1"), timeout=10)
    assert response.model_spec.version.value == 3
    rows = [[(c.label, round(c.score, 5)) for c in row.classes]
            for row in response.result.classifications]
    assert rows == [[("low", 0.8), ("high", 0.2)], [("low", 0.5), ("high", 0.5)]]

    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "toy"
    request.model_spec.signature_name = "regress"
    response = prediction.Regress(_examples(request, 1.0, 2.0), timeout=10)
    assert [r.value for r in response.result.regressions] == [3.0, 6.0]

    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify", "tensorflow/serving/classify"),
                              ("regress", "tensorflow/serving/regress")):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = "toy"
        task.model_spec.signature_name = signature
    response = prediction.MultiInference(_examples(request, 4.0), timeout=10)
    classify, regress = response.results
    assert round(classify.classification_result.classifications[0].classes[1].score, 5) == 0.4
    assert regress.regression_result.regressions[0].value == 12.0


def test_classify_and_regress_bad_requests(stubs):
    prediction, _ = stubs
    predict_signature = classification_pb2.ClassificationRequest()
    predict_signature.model_spec.name = "toy"              # serving_default: x -> y
    code, details = _code(prediction.Classify, _examples(predict_signature, 1.0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("No classification inputs found in SignatureDef: ")
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = "toy"
    empty.model_spec.signature_name = "classify"
    assert _code(prediction.Classify, empty) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                 "Input is empty.")
    wrong = regression_pb2.RegressionRequest()
    wrong.model_spec.name = "toy"
    wrong.model_spec.signature_name = "classify"
    assert _code(prediction.Regress, _examples(wrong, 1.0)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Expected one output Tensor.")
    mixed = inference_pb2.MultiInferenceRequest()
    for name in ("toy", "other"):
        task = mixed.tasks.add(method_name="tensorflow/serving/classify")
        task.model_spec.name = name
    assert _code(prediction.MultiInference, _examples(mixed, 1.0)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
    predict_task = inference_pb2.MultiInferenceRequest()
    task = predict_task.tasks.add(method_name="tensorflow/serving/predict")
    task.model_spec.name = "toy"
    assert _code(prediction.MultiInference, _examples(predict_task, 1.0)) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict")


def test_oversized_message_is_resource_exhausted(toy_models):
    server, port, _ = make_grpc_server(InferenceService(toy_models), ["127.0.0.1:0"],
                                       options=[("grpc.max_receive_message_length", 4096)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            code, _ = _code(stub.Predict, _request(x=np.ones([4096], np.float32)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            small = stub.Predict(_request(x=np.ones([4], np.float32)), timeout=10)
            assert tf.make_ndarray(small.outputs["y"]).tolist() == [2.0] * 4
    finally:
        server.stop(grace=None)


def test_images_in_examples_count_against_the_request_pixel_budget(toy_models):
    """The pixels a request's images declare (read from headers, here inside tf.Examples) are
    bounded per request (--max_request_pixels), before the request is queued."""
    import struct
    header = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + struct.pack(">II", 6000, 5000)  # 30 MP
    server, port, _ = make_grpc_server(InferenceService(toy_models, max_pixels=50_000_000),
                                       ["127.0.0.1:0"])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name, request.model_spec.signature_name = "toy", "classify"
            _examples(request, 2.0, 5.0)
            for example in request.input.example_list.examples:
                example.features.feature["image/encoded"].bytes_list.value.append(header)
            code, details = _code(stub.Classify, request)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max_request_pixels" in details
            del request.input.example_list.examples[1]  # one image: 30 MP, within the budget
            response = stub.Classify(request, timeout=10)
            assert len(response.result.classifications) == 1
            code, details = _code(stub.Predict, _request(  # the same bytes sent as a tensor
                signature="measure", data=np.array([header, header], object),
                weight=np.ones([2], np.float32)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop(grace=None)


def test_health_and_bearer_token(toy_models):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    server, port, _ = make_grpc_server(InferenceService(toy_models), ["127.0.0.1:0"],
                                       token="s3cret")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "toy", "tensorflow.serving.PredictionService"):
                answer = health.Check(health_pb2.HealthCheckRequest(service=service),
                                      timeout=10)   # no token needed for health
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = _request(x=np.ones([1], np.float32))
            assert _code(stub.Predict, request)[0] == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(request, timeout=10, metadata=[("authorization", "Bearer nope")])
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answer = stub.Predict(request, timeout=10,
                                  metadata=[("authorization", "Bearer s3cret")])
            assert tf.make_ndarray(answer.outputs["y"]).tolist() == [2.0]
    finally:
        server.stop(grace=None)


def test_overload_is_resource_exhausted(toy_models):
    from serving.batching import Runner
    runner = Runner(max_concurrent=1)
    server, port, _ = make_grpc_server(InferenceService(toy_models, runner), ["127.0.0.1:0"])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with runner._admitted():  # one request already in flight
                code, details = _code(stub.Predict, _request(x=np.ones([1], np.float32)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "in flight" in details
            assert stub.Predict(_request(x=np.ones([1], np.float32)), timeout=10).outputs["y"]
    finally:
        server.stop(grace=None)
