"""Training on a rolling window of the newest K accepted catalog spans.

``AcceptedSpanWindow`` is a TFX resolver strategy over ImportExampleGen's Examples artifacts
(every span ever ingested, from ML Metadata). It returns the span this run ingested and the
newest K - 1 earlier spans that passed the gates in their own runs: a span that drifted or
violated the schema stopped its run and never becomes training data, here as in the drift
history. TFX's canned ``rolling_range`` would take those rejected spans too.

A span counts as accepted when, in the pipeline run that ingested it (its producing execution's
``pipeline_run`` context), the gate node (the drift check, or the anomaly gate without it)
completed. When a span was ingested more than once, the newest accepted ingestion is used.

Kubeflow's V2 compiler accepts only TFX's Latest/LatestBlessed strategies, so a window is
refused there (``pipeline.kubeflow``); on Kubeflow each run trains on its newest span.
"""

from __future__ import annotations

import logging

from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.components.common import resolver

EXAMPLES_KEY = "examples"
_PASSED = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def _span(artifact) -> int:
    return artifact.get_int_custom_property("span")


class AcceptedSpanWindow(resolver.ResolverStrategy):
    """The newest ``num_spans`` accepted spans of the ``examples`` channel, oldest first
    (the current run's span always among them: the gates it waits for passed, or it would not
    train)."""

    def __init__(self, num_spans: int, gate_node_id: str, pipeline_name: str):
        if num_spans < 1:
            raise ValueError(f"num_spans must be >= 1, not {num_spans}")
        self._num_spans = num_spans
        self._gate_node_id = gate_node_id
        self._pipeline_name = pipeline_name

    @staticmethod
    def _runs(store, execution_id: int) -> set:
        """The ids of the pipeline_run contexts of an execution."""
        run_type = store.get_context_type("pipeline_run").id
        return {context.id for context in store.get_contexts_by_execution(execution_id)
                if context.type_id == run_type}

    def _accepted_runs(self, store) -> set:
        """The ids of the pipeline_run contexts in which the gate node passed."""
        gate = store.get_context_by_type_and_name(
            "node", f"{self._pipeline_name}.{self._gate_node_id}")
        if gate is None:
            return set()
        return {run for execution in store.get_executions_by_context(gate.id)
                if execution.last_known_state in _PASSED
                for run in self._runs(store, execution.id)}

    def _runs_of(self, store, artifact_ids) -> dict:
        """artifact id → the pipeline_run context ids of the execution that produced it."""
        return {event.artifact_id: self._runs(store, event.execution_id)
                for event in store.get_events_by_artifact_ids(artifact_ids)
                if event.type == metadata_store_pb2.Event.OUTPUT}

    def window(self, store, artifacts: list) -> list:
        """The window of ``artifacts`` (ImportExampleGen's outputs), oldest span first."""
        if not artifacts:
            return []
        current = max(artifacts, key=lambda a: a.id)
        accepted_runs = self._accepted_runs(store)
        runs = self._runs_of(store, [a.id for a in artifacts])
        by_span = {_span(current): current}
        for artifact in sorted(artifacts, key=lambda a: a.id):
            span = _span(artifact)
            if span < _span(current) and runs.get(artifact.id, set()) & accepted_runs:
                by_span[span] = artifact  # the newest accepted ingestion of the span
        chosen = [by_span[span] for span in sorted(by_span)[-self._num_spans:]]
        rejected = sorted({_span(a) for a in artifacts} - set(by_span))
        logging.info("span window: training on spans %s%s", [_span(a) for a in chosen],
                     f" (never accepted: {rejected})" if rejected else "")
        return chosen

    def resolve_artifacts(self, store, input_dict):
        """TFX's entry point: ``{"examples": window}``, or None (downstream nodes skip) when
        nothing was ingested."""
        chosen = self.window(store, list(input_dict.get(EXAMPLES_KEY, [])))
        return {EXAMPLES_KEY: chosen} if chosen else None
