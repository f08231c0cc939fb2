"""What a family's evaluation says, read from its evaluator's output: the run summary and the
evaluation report are drawn from it (no plotting here, no family knowledge).

A family's spec names ``report(evaluation_uri, model_uri) -> EvaluationSummary``; TFMA-evaluated
families build theirs with :func:`read_tfma` and add :class:`Section` objects (bar charts,
matrices, HTML) of their own.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

BLESSED = "BLESSED"
NOT_BLESSED = "NOT_BLESSED"
# What ``components.offline_evaluator`` writes into its ModelEvaluation artifact.
OFFLINE_METRICS_FILE = "metrics.json"


@dataclasses.dataclass
class Section:
    """One part of a report: a bar chart (``bars``: name → value in 0..1), a matrix
    (``matrix`` rows true, columns predicted, named by ``names``) or an HTML fragment."""

    title: str
    bars: Optional[dict] = None
    matrix: Optional[np.ndarray] = None
    names: Sequence[str] = ()
    html: str = ""


@dataclasses.dataclass
class EvaluationSummary:
    """Metrics per slice (``slices["overall"]`` is the whole eval split), the thresholds that
    failed, and the report sections."""

    slices: dict
    failures: list = dataclasses.field(default_factory=list)
    sections: list = dataclasses.field(default_factory=list)

    @property
    def overall(self) -> dict:
        return self.slices.get("overall", {})


def metric_name(metric: str, sub_key: str = "", class_names: Sequence[str] = ()) -> str:
    """A readable name for a TFMA metric: ``micro_f1_score``, ``f1_score[pattern:solid]``."""
    if "\n_" in metric:  # TFMA names aggregates after their options: "micro_average: true\n_x"
        options, _, base = metric.partition("\n_")
        metric = f"{options.split('_average')[0]}_{base}"
    if not sub_key:
        return metric
    if sub_key.startswith("classId:") and class_names:
        index = int(sub_key.split(":", 1)[1])
        if index < len(class_names):
            sub_key = class_names[index]
    return f"{metric}[{sub_key}]"


def flatten_metrics(metrics: dict, class_names: Sequence[str] = ()) -> dict:
    """``{name: value}`` of one slice of ``tfma.load_eval_result(...).slicing_metrics``, plus
    ``macro_f1_score`` (the mean of the defined per-class F1) when per-class F1 exists."""
    values, per_class_f1 = {}, []
    for sub_key, named in metrics.get("", {}).items():
        for metric, value in named.items():
            if "doubleValue" in value:
                number = float(value["doubleValue"])
                values[metric_name(metric, sub_key, class_names)] = round(number, 4)
                if sub_key and metric == "f1_score" and number == number:
                    per_class_f1.append(number)
    if per_class_f1:
        values["macro_f1_score"] = round(sum(per_class_f1) / len(per_class_f1), 4)
    return values


def record_blessing(blessing, blessed: bool, model=None, baseline_model=None) -> None:
    """Records a verdict on a ModelBlessing artifact as TFX's Evaluator does: the ``blessed``
    custom property the Pusher checks, the ids of the ``model`` judged (and of the
    ``baseline_model``) that ``LatestBlessedModelStrategy`` matches models by, and a BLESSED or
    NOT_BLESSED file (for a custom evaluator component)."""
    blessing.set_int_custom_property("blessed", int(blessed))
    for key, artifact in (("current_model", model), ("baseline_model", baseline_model)):
        if artifact is not None:
            blessing.set_string_custom_property(key, artifact.uri)
            blessing.set_int_custom_property(f"{key}_id", artifact.id)
    os.makedirs(blessing.uri, exist_ok=True)
    with open(os.path.join(blessing.uri, BLESSED if blessed else NOT_BLESSED), "w"):
        pass


def is_blessed(blessing_uri: str) -> bool:
    """The verdict a ModelBlessing artifact's folder records (TFX writes BLESSED or
    NOT_BLESSED)."""
    return os.path.exists(os.path.join(blessing_uri, BLESSED))


def read_offline_evaluation(evaluation_uri: str) -> EvaluationSummary:
    """The summary (no sections) of an evaluation ``components.offline_evaluator`` wrote: the
    candidate's numeric metrics as the overall slice and the thresholds it failed."""
    import json
    with open(os.path.join(evaluation_uri, OFFLINE_METRICS_FILE), encoding="utf-8") as handle:
        written = json.load(handle)
    overall = {k: round(float(v), 4) for k, v in written["candidate"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return EvaluationSummary({"overall": overall}, list(written.get("failures", [])))


def read_tfma(evaluation_uri: str, class_names: Sequence[str] = ()) -> tuple:
    """``(EvaluationSummary without sections, tfma EvalResult)`` of a TFMA evaluation."""
    import tensorflow_model_analysis as tfma
    result = tfma.load_eval_result(evaluation_uri)
    slices = {}
    for slice_key, metrics in result.slicing_metrics:
        name = ", ".join(f"{k}={v}" for k, v in slice_key) or "overall"
        slices[name] = flatten_metrics(metrics, class_names)
    failures = []
    validation = tfma.load_validation_result(evaluation_uri)
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            kind = "change vs the blessed baseline" if failure.metric_key.is_diff else "value"
            failures.append(f"{failure.metric_key.name} ({kind}) "
                            f"{failure.metric_value.double_value.value:.4f} fails "
                            f"{str(failure.metric_threshold).strip()}")
    return EvaluationSummary(slices, failures), result


def tfma_confusion_matrix(result, class_names: Sequence[str]) -> Optional[np.ndarray]:
    """The overall slice's multi-class confusion matrix of a TFMA EvalResult, if computed."""
    for slice_key, plots in result.plots or []:
        matrices = (((plots or {}).get("") or {}).get("") or {}).get(
            "multiClassConfusionMatrixAtThresholds")
        if not slice_key and matrices and class_names:
            return confusion_matrix(matrices["matrices"][0].get("entries", []), class_names)
    return None


def confusion_matrix(entries: Sequence[dict], names: Sequence[str]) -> np.ndarray:
    """A dense matrix from TFMA ``multiClassConfusionMatrixAtThresholds`` entries."""
    matrix = np.zeros((len(names), len(names)))
    for entry in entries:
        actual, predicted = int(entry.get("actualClassId", 0)), int(
            entry.get("predictedClassId", 0))
        if 0 <= actual < len(names) and 0 <= predicted < len(names):
            matrix[actual, predicted] += float(entry.get("numWeightedExamples", 0.0))
    return matrix
