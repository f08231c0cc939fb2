"""Replays TF Serving warm-up records (``assets.extra/tf_serving_warmup_requests``) at load.

Like TF Serving, a version is reported AVAILABLE only after its warm-up requests ran, so the
first real request does not pay for tracing; a record that fails makes the load fail. At most
``MAX_WARMUP_RECORDS`` records are read (TF Serving's limit).
"""

from __future__ import annotations

from schemas.serving_api import CLASSIFY_INPUTS, MAX_WARMUP_RECORDS, SERVING_DEFAULT, warmup_path
from serving.inference import serialized_examples


def _requests(log):
    """``(signature name, kwargs)`` for each request in one ``PredictionLog``."""
    import tensorflow as tf
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        yield request.model_spec.signature_name, {
            k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    elif kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        yield request.model_spec.signature_name, {
            CLASSIFY_INPUTS: serialized_examples(request.input)}
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
        examples = serialized_examples(request.input)
        for task in request.tasks:
            yield task.model_spec.signature_name, {CLASSIFY_INPUTS: examples}
    else:
        raise ValueError(f"unsupported warm-up record type {kind!r}")


def replay_warmup(servable, export_dir: str, iterations: int = 1) -> int:
    """Runs every warm-up request of ``export_dir`` on ``servable`` (each ``iterations`` times,
    TF Serving's ``--num_request_iterations_for_warmup``); returns the number of records."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    path = warmup_path(export_dir)
    if not tf.io.gfile.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ValueError(f"{path} has more than {MAX_WARMUP_RECORDS} warm-up records")
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for signature_name, inputs in _requests(log):
            name = signature_name or SERVING_DEFAULT
            if name not in servable.signatures:
                raise ValueError(f"warm-up record {count} names unknown signature {name!r}")
            for _ in range(max(1, iterations)):
                servable.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    return count


def load_servable(export_dir: str, warmup: bool = True, tags: tuple = ("serve",),
                  warmup_iterations: int = 1):
    """Loads a SavedModel as TF Serving would and, unless ``warmup`` is off, replays its
    warm-up records.

    TensorFlow Text's ops are registered first (``tensorflow_model_server`` links them in).
    ``tf.saved_model.load`` is tried first; a SavedModel it cannot rebuild (TF1 graphs with
    reference variables or contradictory placeholder shapes) is loaded with TF1's session-based
    loader instead (``serving.session_bundle``), as TF Serving loads every model. When both fail
    the error names both attempts."""
    import tensorflow as tf

    from schemas.serving_api import register_text_ops
    from serving.session_bundle import load_session_bundle
    register_text_ops()
    try:
        servable = tf.saved_model.load(export_dir, tags=list(tags))
    except Exception as tf2_error:  # noqa: BLE001 (any failure: try the TF1 loader)
        try:
            servable = load_session_bundle(export_dir, tuple(tags))
        except Exception as tf1_error:  # noqa: BLE001
            raise RuntimeError(f"cannot load {export_dir}: tf.saved_model.load: "
                               f"{type(tf2_error).__name__}: {tf2_error}; TF1 session loader: "
                               f"{type(tf1_error).__name__}: {tf1_error}") from tf1_error
    if warmup:
        replay_warmup(servable, export_dir, warmup_iterations)
    return servable
