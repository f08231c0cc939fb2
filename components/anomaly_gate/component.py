"""The AnomalyGate TFX component: a thin wrapper around :mod:`components.anomaly_gate.logic`.

It fails (and with it the run) when ExampleValidator found anomalies, so nothing downstream of it
(Transform, Trainer, Evaluator, Pusher) runs on data that violates the curated schema.
"""

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components.anomaly_gate import logic


@component
def AnomalyGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]):
    """Stops the pipeline when ``anomalies`` holds any anomaly."""
    logic.check(anomalies.uri)
