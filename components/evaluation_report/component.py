"""The EvaluationReport TFX component: a thin wrapper around
:mod:`components.evaluation_report.logic`.

It reads a family's TFMA evaluation, its blessing and the model's class names and writes the
family's HTML report (metrics, per-class bars, confusion matrix; attention heat maps for brand).
"""

import os

from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.attention_report.component import AttentionReport
from components.evaluation_report import logic


class EvaluationReportArtifact(types.Artifact):
    """A family's evaluation report (HTML with PNG plots)."""

    TYPE_NAME = "fashion.EvaluationReport"  # KFP v2 needs "namespace.TypeName"


def _class_names(model_uri: str) -> list:
    path = os.path.join(model_uri, "Format-Serving", "assets.extra", "class_names.txt")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return handle.read().split()


@component
def EvaluationReport(
        evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
        blessing: InputArtifact[standard_artifacts.ModelBlessing],
        model: InputArtifact[standard_artifacts.Model],
        report: OutputArtifact[EvaluationReportArtifact],
        family: Parameter[str],
        class_feature: Parameter[str] = "",
        attention: InputArtifact[AttentionReport] = None):  # brand only
    """Writes ``family``'s evaluation report; ``class_feature`` names the per-class slices."""
    import tensorflow_model_analysis as tfma
    class_names = _class_names(model.uri)
    result = tfma.load_eval_result(evaluation.uri)
    overall, per_class = {}, {}
    for slice_key, metrics in result.slicing_metrics:
        values = logic.flatten_metrics(metrics, class_names)
        if not slice_key:
            overall = values
        elif class_feature and slice_key[0][0] == class_feature:
            accuracy = values.get("sparse_categorical_accuracy")
            if accuracy is not None:
                per_class[str(slice_key[0][1])] = accuracy
    if not per_class:  # multi-label: per-attribute F1 from the overall slice
        per_class = {k[len("f1_score["):-1]: v for k, v in overall.items()
                     if k.startswith("f1_score[") and v == v}
    confusion = None
    for slice_key, plots in result.plots or []:
        matrices = (((plots or {}).get("") or {}).get("") or {}).get(
            "multiClassConfusionMatrixAtThresholds")
        if not slice_key and matrices and class_names:
            confusion = logic.confusion_matrix(matrices["matrices"][0].get("entries", []),
                                               class_names)
    failures = []
    validation = tfma.load_validation_result(evaluation.uri)
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            kind = "change vs the blessed baseline" if failure.metric_key.is_diff else "value"
            failures.append(f"{failure.metric_key.name} ({kind}) "
                            f"{failure.metric_value.double_value.value:.4f} fails "
                            f"{str(failure.metric_threshold).strip()}")
    path = logic.write_report(
        report.uri, family, model.uri, bool(blessing.get_int_custom_property("blessed")),
        failures, {k: v for k, v in overall.items() if "[" not in k}, per_class,
        "accuracy" if class_feature else "F1", confusion, class_names,
        attention.uri if attention is not None else None)
    print(f"EvaluationReport: {family}: {path}")
