"""Masked multi-label metrics for TFMA: per attribute and micro-averaged, over known entries.

TFMA's own binarised metrics would score an unknown entry (-1 in ``attribute_labels``: the record
does not annotate that attribute's family) as a negative. :class:`MaskedMultiLabelMetrics`
reads the labels as written by the family's Transform fragment and counts only known entries.
Its keys: ``micro_f1_score`` (the metric's name: the blessing threshold applies to it),
``micro_binary_accuracy``, ``exact_match``, ``frequent_tags_micro_f1`` (the baseline: always
predicting the k most frequent tags, best k), and per attribute (sub key ``classId:i``)
``precision``, ``recall``, ``f1_score`` (NaN where undefined) and ``binary_accuracy``.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from trainer.evaluation.metrics import frequent_tags_baseline_from_counts

MICRO_F1 = "micro_f1_score"
PER_CLASS = ("precision", "recall", "f1_score", "binary_accuracy")


class MaskedMultiLabelMetrics(metric_types.Metric):
    """Precision, recall, F1 and binary accuracy over the known entries of multi-label rows."""

    def __init__(self, name: str = MICRO_F1, threshold: float = 0.5, num_labels: int = 0):
        super().__init__(_computations, name=name, threshold=threshold, num_labels=num_labels)


def _keys(name, model_name, output_name, example_weighted, num_labels) -> dict:
    def key(metric, class_id=None):
        return metric_types.MetricKey(
            name=metric, model_name=model_name, output_name=output_name,
            sub_key=None if class_id is None else metric_types.SubKey(class_id=class_id),
            example_weighted=example_weighted)
    keys = {"micro_f1": key(name), "micro_binary_accuracy": key("micro_binary_accuracy"),
            "exact_match": key("exact_match"),
            "frequent_tags_micro_f1": key("frequent_tags_micro_f1")}
    for i in range(num_labels):
        for metric in PER_CLASS:
            keys[(metric, i)] = key(metric, i)
    return keys


def _computations(name: str = MICRO_F1, threshold: float = 0.5, num_labels: int = 0,
                  eval_config=None, model_names=None, output_names=None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = _keys(name, model_name, output_name, example_weighted, num_labels)
            computations.append(metric_types.MetricComputation(
                keys=list(keys.values()), preprocessors=None,
                combiner=_Combiner(keys, eval_config, model_name, output_name, threshold,
                                   example_weighted)))
    return computations


class _Accumulator:
    __slots__ = ("tp", "fp", "fn", "tn", "exact", "examples")

    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = None
        self.exact = 0.0
        self.examples = 0.0

    def add_counts(self, tp, fp, fn, tn):
        if self.tp is None:
            self.tp, self.fp, self.fn, self.tn = tp, fp, fn, tn
        else:
            self.tp, self.fp = self.tp + tp, self.fp + fp
            self.fn, self.tn = self.fn + fn, self.tn + tn


class _Combiner(beam.CombineFn):
    def __init__(self, keys: dict, eval_config, model_name: str, output_name: str,
                 threshold: float, example_weighted: bool):
        self._keys, self._eval_config = keys, eval_config
        self._model_name, self._output_name = model_name, output_name
        self._threshold, self._example_weighted = threshold, example_weighted

    def create_accumulator(self) -> _Accumulator:
        return _Accumulator()

    def add_input(self, accumulator: _Accumulator,
                  element: metric_types.StandardMetricInputs) -> _Accumulator:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._model_name,
                output_name=self._output_name, example_weighted=self._example_weighted,
                flatten=False, squeeze=False, allow_none=True):
            weight = float(metric_util.safe_to_scalar(weight))
            label = np.asarray(label, np.float64).reshape(-1)
            known = label >= 0
            if weight == 0 or not known.any():
                continue
            truth = label > 0.5
            predicted = np.asarray(prediction, np.float64).reshape(-1) >= self._threshold
            accumulator.add_counts(*(weight * (mask & known).astype(np.float64) for mask in (
                truth & predicted, ~truth & predicted, truth & ~predicted,
                ~truth & ~predicted)))
            accumulator.exact += weight * float(np.all((truth == predicted) | ~known))
            accumulator.examples += weight
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_Accumulator]) -> _Accumulator:
        merged = _Accumulator()
        for accumulator in accumulators:
            if accumulator.tp is not None:
                merged.add_counts(accumulator.tp, accumulator.fp, accumulator.fn,
                                  accumulator.tn)
            merged.exact += accumulator.exact
            merged.examples += accumulator.examples
        return merged

    def extract_output(self, accumulator: _Accumulator) -> Dict[metric_types.MetricKey, float]:
        output = {}
        if accumulator.tp is None:
            return {key: float("nan") for key in self._keys.values()}
        tp, fp, fn, tn = accumulator.tp, accumulator.fp, accumulator.fn, accumulator.tn
        output[self._keys["micro_f1"]] = _ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())
        output[self._keys["micro_binary_accuracy"]] = _ratio(tp.sum() + tn.sum(),
                                                             (tp + fp + fn + tn).sum())
        output[self._keys["exact_match"]] = _ratio(accumulator.exact, accumulator.examples)
        # What always predicting the most frequent tags reaches on the same examples.
        output[self._keys["frequent_tags_micro_f1"]] = frequent_tags_baseline_from_counts(
            tp + fn, tp + fp + fn + tn)["frequent_tags_micro_f1"]
        for i in range(len(tp)):
            values = {"precision": _ratio(tp[i], tp[i] + fp[i]),
                      "recall": _ratio(tp[i], tp[i] + fn[i]),
                      "f1_score": _ratio(2 * tp[i], 2 * tp[i] + fp[i] + fn[i]),
                      "binary_accuracy": _ratio(tp[i] + tn[i], tp[i] + fp[i] + fn[i] + tn[i])}
            for metric, value in values.items():
                key = self._keys.get((metric, i))
                if key is not None:
                    output[key] = value
        return output


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def config_json(threshold: float, num_labels: int, name: Optional[str] = None) -> str:
    """The MetricConfig ``config`` of :class:`MaskedMultiLabelMetrics`."""
    import json
    return json.dumps({"threshold": threshold, "num_labels": num_labels,
                       **({"name": name} if name else {})})
