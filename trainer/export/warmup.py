"""TF Serving warm-up requests (``assets.extra/tf_serving_warmup_requests``): a TFRecord of
``PredictionLog`` protos that a server replays before it reports a version AVAILABLE, so the
first real request does not pay for tracing. Families build the logs that fit their signatures
with :func:`predict_log`, :func:`classify_log` and :func:`regress_log`;
:func:`write_warmup_requests` writes them."""

from __future__ import annotations

from typing import Mapping, Sequence

from schemas.serving_api import MAX_WARMUP_RECORDS, warmup_path


def predict_log(model_name: str, signature: str, inputs: Mapping[str, object]):
    """A ``PredictionLog`` calling ``signature`` with ``inputs`` (name → array-like)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))


def _examples_log(kind: str, model_name: str, signature: str, examples: Sequence):
    from tensorflow_serving.apis import (classification_pb2, prediction_log_pb2,
                                         regression_pb2)
    request = (classification_pb2.ClassificationRequest() if kind == "classify"
               else regression_pb2.RegressionRequest())
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for example in examples:
        request.input.example_list.examples.add().CopyFrom(example)
    if kind == "classify":
        return prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=request))
    return prediction_log_pb2.PredictionLog(
        regress_log=prediction_log_pb2.RegressLog(request=request))


def classify_log(model_name: str, signature: str, examples: Sequence):
    """A ``PredictionLog`` calling the classify signature ``signature`` on ``tf.Example``s."""
    return _examples_log("classify", model_name, signature, examples)


def regress_log(model_name: str, signature: str, examples: Sequence):
    """A ``PredictionLog`` calling the regress signature ``signature`` on ``tf.Example``s."""
    return _examples_log("regress", model_name, signature, examples)


def write_warmup_requests(export_dir: str, logs: Sequence) -> str:
    """Writes ``logs`` as ``export_dir``'s warm-up requests; returns the file's path."""
    import tensorflow as tf
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(logs)} warm-up records; TF Serving reads at most "
                         f"{MAX_WARMUP_RECORDS}")
    path = warmup_path(export_dir)
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path
