"""Past pipeline runs, read from ML Metadata: what ``fashion runs`` prints.

Each TFX run is a ``pipeline_run`` context; its executions carry their node (a ``node``
context named ``<pipeline>.<node id>``), state and times, and their input and output artifacts
(events). From them: the span(s) a run read, when it started and ended, each component's
seconds, and per family the evaluation, the blessing and the version pushed (read through the
family registry, so nothing here names a family).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from trainer.families import registry
from trainer.families.spec import resolve


def _store(metadata_path: str):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    if not os.path.isfile(metadata_path):
        raise FileNotFoundError(f"no ML Metadata store at {metadata_path} (has a pipeline run "
                                "in this workspace?)")
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    connection.sqlite.connection_mode = \
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def _property(artifact, name: str):
    if name in artifact.custom_properties:
        value = artifact.custom_properties[name]
        return value.int_value if value.HasField("int_value") else value.string_value
    if name in artifact.properties:
        value = artifact.properties[name]
        return value.int_value if value.HasField("int_value") else value.string_value
    return None


@dataclasses.dataclass
class Step:
    """One execution of a run: its node, state, seconds and artifacts."""

    node: str
    state: str
    seconds: float
    inputs: dict  # key -> [(type, uri, span)]
    outputs: dict
    kind: str = ""  # the execution's type (a component class, or TFX's Resolver)


def _steps(store, run_context) -> list:
    from ml_metadata.proto import metadata_store_pb2
    executions = store.get_executions_by_context(run_context.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list({e.artifact_id
                                                                   for e in events}))}
    types = {t.id: t.name for t in store.get_artifact_types()}
    kinds = {t.id: t.name for t in store.get_execution_types()}
    node_type = store.get_context_type("node").id
    steps = []
    for execution in executions:
        node = next((c.name.split(".", 1)[1] for c in store.get_contexts_by_execution(
            execution.id) if c.type_id == node_type), str(execution.id))
        inputs, outputs = {}, {}
        for event in (e for e in events if e.execution_id == execution.id):
            artifact = artifacts.get(event.artifact_id)
            if artifact is None:
                continue
            key = event.path.steps[0].key if event.path.steps else ""
            side = inputs if event.type in (metadata_store_pb2.Event.INPUT,
                                            metadata_store_pb2.Event.DECLARED_INPUT) \
                else outputs
            side.setdefault(key, []).append((types.get(artifact.type_id, "?"), artifact.uri,
                                             _property(artifact, "span"), artifact))
        steps.append(Step(
            node=node,
            state=metadata_store_pb2.Execution.State.Name(execution.last_known_state),
            seconds=round((execution.last_update_time_since_epoch
                           - execution.create_time_since_epoch) / 1000, 1),
            inputs=inputs, outputs=outputs, kind=kinds.get(execution.type_id, "")))
    return steps


def _family_result(steps: dict, spec, with_metrics: bool) -> dict:
    evaluator, pusher = steps.get(spec.node_id("Evaluator")), steps.get(spec.node_id("Pusher"))
    result = {"blessed": None, "pushed_version": None}
    if evaluator is not None and evaluator.outputs.get("blessing"):
        result["blessed"] = bool(_property(evaluator.outputs["blessing"][0][3], "blessed"))
    if pusher is not None and pusher.outputs.get("pushed_model"):
        pushed = pusher.outputs["pushed_model"][0][3]
        if _property(pushed, "pushed"):
            result["pushed_version"] = _property(pushed, "pushed_version")
    if with_metrics and evaluator is not None and evaluator.state == "COMPLETE":
        trainer = steps.get(spec.node_id("Trainer"))
        evaluation = evaluator.outputs.get("evaluation")
        if trainer is not None and evaluation and trainer.outputs.get("model"):
            try:
                summary = resolve(spec.report)(evaluation[0][1], trainer.outputs["model"][0][1])
                overall = summary.slices.get("overall", {})
                result["metrics"] = {k: overall[k] for k in spec.headline_metrics
                                     if k in overall}
            except Exception as err:  # noqa: BLE001 (a missing or pruned artifact)
                result["metrics_error"] = f"{type(err).__name__}: {err}"
    return result


def list_runs(metadata_path: str, limit: Optional[int] = None, metrics: bool = True) -> list:
    """The pipeline runs of a workspace's store, newest first: id, spans ingested and read (a
    training window reads earlier ones), start and end
    (ms since the epoch), seconds, state counts, each component's seconds and per family the
    metrics, blessing and pushed version."""
    store = _store(metadata_path)
    contexts = sorted(store.get_contexts_by_type("pipeline_run"),
                      key=lambda c: c.create_time_since_epoch, reverse=True)
    runs = []
    for context in contexts[:limit]:
        steps = {step.node: step for step in _steps(store, context)}
        executions = store.get_executions_by_context(context.id)
        start = min((e.create_time_since_epoch for e in executions), default=0)
        end = max((e.last_update_time_since_epoch for e in executions), default=0)
        # a resolver's outputs are earlier runs' artifacts, not spans this run ingested
        spans = sorted({span for step in steps.values() if not step.kind.endswith(".Resolver")
                        for entries in step.outputs.values()
                        for kind, _, span, _ in entries if kind == "Examples" and span})
        # every span a step read: with a training window (data.window_spans), earlier ones too
        read = sorted({span for step in steps.values() for entries in step.inputs.values()
                       for kind, _, span, _ in entries if kind == "Examples" and span})
        states = {}
        for step in steps.values():
            states[step.state] = states.get(step.state, 0) + 1
        families = {spec.name: _family_result(steps, spec, metrics)
                    for spec in registry.family_specs() if spec.node_id("Trainer") in steps}
        runs.append({"id": context.name, "spans": spans,
                     "spans_read": sorted(set(read) | set(spans)),
                     "start_ms": start, "end_ms": end,
                     "seconds": round((end - start) / 1000, 1), "states": states,
                     "component_seconds": {n: s.seconds for n, s in steps.items()},
                     "failed": sorted(n for n, s in steps.items() if s.state == "FAILED"),
                     "families": families})
    return runs


def lineage(metadata_path: str, run_id: str) -> list:
    """Every execution of run ``run_id`` in order: node, state, seconds, and its input and
    output artifacts (type, uri, span)."""
    store = _store(metadata_path)
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    if context is None:
        known = [c.name for c in store.get_contexts_by_type("pipeline_run")]
        raise KeyError(f"no run {run_id!r}; runs: {', '.join(known[-5:]) or 'none'}")
    return [{"node": step.node, "state": step.state, "seconds": step.seconds,
             "inputs": {k: [(kind, uri, span) for kind, uri, span, _ in v]
                        for k, v in step.inputs.items()},
             "outputs": {k: [(kind, uri, span) for kind, uri, span, _ in v]
                         for k, v in step.outputs.items()}}
            for step in _steps(store, context)]
