"""TFMA (r² blesses), report and offline metrics of the brightness regressor."""

import numpy as np

from schemas import features as F
from schemas.serving_api import EXAMPLES_INPUT, SERVING_DEFAULT, latest_version
from trainer.evaluation import reports
from toy_families.brightness.transform import BRIGHTNESS


def eval_config(config):
    import tensorflow_model_analysis as tfma

    from trainer.evaluation import tfma_config
    return tfma.EvalConfig(
        model_specs=[tfma_config.model_spec(BRIGHTNESS, prediction_key=BRIGHTNESS)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            *tfma_config.counts(),
            tfma.MetricConfig(class_name="MeanAbsoluteError"),
            tfma.MetricConfig(class_name="SquaredPearsonCorrelation",
                              threshold=tfma_config.blessing_threshold(
                                  config.blessing_threshold, config.min_improvement))])])


def report(evaluation_uri, model_uri):
    summary, _ = reports.read_tfma(evaluation_uri)
    return summary


def evaluate(model_dir, data_pattern, batch_size=64, progress=None):
    import tensorflow as tf

    from trainer.export.records import record_dataset
    export_dir = latest_version(model_dir)
    serve = tf.saved_model.load(export_dir).signatures[SERVING_DEFAULT]
    predicted, truth = [], []
    for batch in record_dataset(data_pattern).batch(batch_size):
        predicted.append(serve(**{EXAMPLES_INPUT: batch})[BRIGHTNESS].numpy())
        images = tf.io.parse_example(batch, {F.IMAGE_ENCODED: tf.io.FixedLenFeature([],
                                                                                    tf.string)})
        truth += [float(np.asarray(tf.io.decode_image(b, channels=3)).mean() / 255.0)
                  for b in images[F.IMAGE_ENCODED].numpy()]
    predicted, truth = np.concatenate(predicted), np.array(truth)
    residual = ((truth - predicted) ** 2).sum()
    total = ((truth - truth.mean()) ** 2).sum()
    return {"model": export_dir, "examples": len(truth),
            "mae": float(np.abs(truth - predicted).mean()),
            "r2": float(1 - residual / total) if total else 0.0, "mean_predictor_r2": 0.0}
