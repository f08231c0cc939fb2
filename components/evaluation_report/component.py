"""The EvaluationReport TFX component: a thin wrapper around
:mod:`components.evaluation_report.logic`.

It asks the family's spec (``report``) what its evaluation says — metrics per slice, failed
thresholds, sections such as per-class bars or a confusion matrix — and writes the family's HTML
report with the blessing verdict, adding the section an extra component of the family wrote
(``section``, e.g. the brand attention heat maps). It knows no family by name.
"""

from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.evaluation_report import logic
from trainer.evaluation.artifacts import ReportSection


class EvaluationReportArtifact(types.Artifact):
    """A family's evaluation report (HTML with PNG plots and ``verdict.json``)."""

    TYPE_NAME = "fashion.EvaluationReport"  # KFP v2 needs "namespace.TypeName"


@component
def EvaluationReport(
        evaluation: InputArtifact[standard_artifacts.ModelEvaluation],
        blessing: InputArtifact[standard_artifacts.ModelBlessing],
        model: InputArtifact[standard_artifacts.Model],
        report: OutputArtifact[EvaluationReportArtifact],
        family: Parameter[str],
        section: InputArtifact[ReportSection] = None,
        model_run: InputArtifact[standard_artifacts.ModelRun] = None):
    """Writes ``family``'s evaluation report (with the training curves of ``model_run``)."""
    import os
    from trainer.evaluation.reports import is_blessed
    from trainer.families import registry
    from trainer.families.spec import resolve
    spec = registry.get(family)
    summary = resolve(spec.report)(evaluation.uri, model.uri)
    path = logic.write_report(report.uri, family, model.uri, is_blessed(blessing.uri), summary,
                              spec.evaluation.blessing_metric,
                              section.uri if section is not None else None,
                              os.path.join(model_run.uri, "history.json")
                              if model_run is not None else "")
    print(f"EvaluationReport: {family}: {path}")
