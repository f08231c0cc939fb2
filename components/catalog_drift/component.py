"""The CatalogDriftValidator TFX component: a thin wrapper around
:mod:`components.catalog_drift.logic`.

It profiles the span ImportExampleGen just read (:mod:`~components.catalog_drift.profile`),
compares it and its StatisticsGen statistics with the accepted spans before it, writes the drift
report (into its artifact and ``<workspace>/reports/drift/span-N``, where it stays even when the
run stops) and fails, stopping everything downstream, when a check is past its threshold.
Otherwise the span joins the history the next spans are compared with.
"""

import json
import os

from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.catalog_drift import logic


class DriftReportArtifact(types.Artifact):
    """A span's drift report (``index.html``, ``drift.json``, figures) and profile."""

    TYPE_NAME = "fashion.DriftReport"  # KFP v2 needs "namespace.TypeName"


def span_of(examples) -> int:
    """The span ExampleGen read (a custom property in TFX 1.16, a property before)."""
    if examples.has_custom_property("span"):
        return int(examples.get_int_custom_property("span")
                   or examples.get_string_custom_property("span") or 0)
    return int(examples.span)


# Artifacts and the catalog are read through tf.io.gfile: on Kubeflow they live on gs://.

def _read_statistics(statistics_uri: str, split: str = "train"):
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    path = os.path.join(statistics_uri, f"Split-{split}", "FeatureStats.pb")
    with tf.io.gfile.GFile(path, "rb") as handle:
        statistics.ParseFromString(handle.read())
    return statistics


def _read_schema(schema_uri: str):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    with tf.io.gfile.GFile(os.path.join(schema_uri, "schema.pbtxt")) as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


def _conversion_summary(catalog_root: str, span: int) -> dict:
    import tensorflow as tf
    path = os.path.join(catalog_root, f"span-{span}", "summary.json")
    if not catalog_root or not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


@component
def CatalogDriftValidator(
        examples: InputArtifact[standard_artifacts.Examples],
        statistics: InputArtifact[standard_artifacts.ExampleStatistics],
        schema: InputArtifact[standard_artifacts.Schema],
        report: OutputArtifact[DriftReportArtifact],
        thresholds: Parameter[str],
        history_root: Parameter[str],
        report_root: Parameter[str],
        catalog_root: Parameter[str] = ""):
    """Stops the run when the new span drifted past a threshold (``thresholds``: a
    ``DriftConfig`` as JSON) from the accepted spans under ``history_root``."""
    from components.catalog_drift.profile import profile_span
    from schemas import features as F
    from trainer.export.records import iter_record_images
    from trainer.families.spec import resolve
    settings = json.loads(thresholds)
    span = span_of(examples)
    embed = None
    if settings["embedding_weights"].lower() != "none":
        embed = resolve(settings["embedder"])(settings["embedding_weights"],
                                              settings["embedding_size"])
    profile = profile_span(span, iter_record_images(os.path.join(examples.uri, "Split-*", "*")),
                           embed,
                           settings["max_embedded"], seed=span,
                           conversion=_conversion_summary(catalog_root, span))
    profile.save(os.path.join(report.uri, "profile.npz"))
    current_statistics = _read_statistics(statistics.uri)
    history = logic.read_history(history_root, span)
    found = logic.validate(profile, current_statistics, _read_schema(schema.uri), history,
                           settings, F.DRIFT_CATEGORICAL_FEATURES, F.DRIFT_NUMERIC_FEATURES)
    baseline = history[-1][0] if history else None
    logic.write_report(report.uri, found, profile, baseline)
    kept = logic.write_report(os.path.join(report_root, "drift", f"span-{span}"), found,
                              profile, baseline)
    report.set_int_custom_property("span", span)
    report.set_int_custom_property("passed", int(not found.failed))
    if found.failed:
        compared = (f"drifted from span-{found.baseline_span}" if found.baseline_span is not None
                    else "(the first span) failed the catalog checks")
        raise logic.DriftFound(
            f"span-{span} {compared} past its thresholds; the run stops before Transform, "
            f"Trainer and Pusher:\n  {found.causes()}\nreport: {kept}")
    logic.accept(history_root, profile, current_statistics)
    print(f"CatalogDriftValidator: span-{span}: no drift past a threshold; report {kept}")
