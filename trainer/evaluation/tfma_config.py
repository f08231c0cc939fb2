"""TFMA EvalConfig pieces every TFMA-evaluated family shares (tfma only; no model code)."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from schemas import features as F
from schemas.serving_api import SCORES_OUTPUT, SERVING_DEFAULT, TRANSFORM_FEATURES


def model_spec(label_key: str, prediction_key: str = SCORES_OUTPUT,
               signature: str = SERVING_DEFAULT) -> tfma.ModelSpec:
    """The candidate as TFMA calls it: ``signature`` on the eval examples, labels from the
    exported Transform graph, weighted by the label's presence so unlabelled eval examples
    count in no metric but ExampleCount (WeightedExampleCount counts the labelled ones)."""
    return tfma.ModelSpec(signature_name=signature, label_key=label_key,
                          example_weight_key=F.label_weight_feature(label_key),
                          prediction_key=prediction_key,
                          preprocessing_function_names=[TRANSFORM_FEATURES])


def blessing_threshold(value: float, min_improvement: float = 0.0) -> tfma.MetricThreshold:
    """At least ``value``, and (when a blessed baseline exists) at least ``min_improvement``
    above the baseline's value: a worse retrained model is not blessed, so not pushed. On the
    first run there is no baseline and TFMA drops the change part (rubber stamp)."""
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": min_improvement - 1e-10}))


def overall_only(threshold: tfma.MetricThreshold) -> list:
    """``threshold`` on the overall slice only: a plain ``threshold`` would apply to every
    slice, and one rare class's slice would block a push."""
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                         threshold=threshold)]


def counts() -> list:
    """ExampleCount and WeightedExampleCount (the labelled examples)."""
    return [tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="WeightedExampleCount")]
