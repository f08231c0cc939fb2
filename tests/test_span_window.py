"""Training on a rolling window of spans: the resolver keeps the newest accepted spans (never a
span whose run a gate stopped), and a pipeline run trains on the window while its evaluators
judge the newest span."""

import json
import os

import pytest

import pipeline_config as pc
from pipeline.span_window import AcceptedSpanWindow

GATE = "CatalogDriftValidator"


class _Store:
    """A real in-memory ML Metadata store, filled as TFX fills it: each run a pipeline_run
    context holding an ImportExampleGen execution (its output an Examples artifact of one span)
    and, when the run got that far, the gate's execution."""

    def __init__(self):
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2 as pb
        self.pb = pb
        connection = pb.ConnectionConfig()
        connection.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(connection)
        self.types = {name: self.store.put_context_type(pb.ContextType(name=name))
                      for name in ("pipeline_run", "node")}
        self.execution_type = self.store.put_execution_type(pb.ExecutionType(name="Component"))
        examples = pb.ArtifactType(name="Examples")
        examples.properties["span"] = pb.INT
        self.artifact_type = self.store.put_artifact_type(examples)
        self.nodes = {}
        self.runs = 0

    def _node(self, name):
        if name not in self.nodes:
            [self.nodes[name]] = self.store.put_contexts([self.pb.Context(
                type_id=self.types["node"], name=f"fashion.{name}")])
        return self.nodes[name]

    def _execution(self, node, run, state, output=None):
        execution = self.pb.Execution(type_id=self.execution_type, last_known_state=state)
        pairs = [] if output is None else [(output, self.pb.Event(type=self.pb.Event.OUTPUT))]
        execution_id, artifact_ids, _ = self.store.put_execution(execution, pairs, [])
        self.store.put_attributions_and_associations(
            [], [self.pb.Association(context_id=context_id, execution_id=execution_id)
                 for context_id in (run, self._node(node))])
        return artifact_ids

    def ingest(self, span: int, gate: str):
        """A run ingesting ``span``; ``gate`` is COMPLETE, FAILED or None (never ran).
        Returns the TFX Artifact of the ingested span."""
        from tfx.types import standard_artifacts
        self.runs += 1
        [run] = self.store.put_contexts([self.pb.Context(type_id=self.types["pipeline_run"],
                                                         name=f"run-{self.runs}")])
        mlmd_artifact = self.pb.Artifact(type_id=self.artifact_type,
                                         uri=f"/examples/{self.runs}")
        mlmd_artifact.custom_properties["span"].int_value = span
        [artifact_id] = self._execution("ImportExampleGen", run, self.pb.Execution.COMPLETE,
                                        mlmd_artifact)
        if gate is not None:
            self._execution(GATE, run, getattr(self.pb.Execution, gate))
        [stored] = self.store.get_artifacts_by_id([artifact_id])
        artifact = standard_artifacts.Examples()
        artifact.set_mlmd_artifact(stored)
        return artifact


def _spans(artifacts):
    return [a.get_int_custom_property("span") for a in artifacts]


def test_the_window_holds_the_newest_accepted_spans_and_never_a_rejected_one():
    store = _Store()
    artifacts = [store.ingest(1, "COMPLETE"), store.ingest(2, "FAILED"),
                 store.ingest(3, None),  # the schema gate stopped it before the drift check
                 store.ingest(4, "COMPLETE"), store.ingest(5, "COMPLETE")]
    current = store.ingest(6, None)  # this run: its gate passed before anything trains
    artifacts.append(current)
    window = AcceptedSpanWindow(num_spans=3, gate_node_id=GATE, pipeline_name="fashion")
    assert _spans(window.window(store.store, artifacts)) == [4, 5, 6]
    wide = AcceptedSpanWindow(num_spans=10, gate_node_id=GATE, pipeline_name="fashion")
    chosen = wide.window(store.store, artifacts)
    assert _spans(chosen) == [1, 4, 5, 6] and chosen[-1].id == current.id
    one = AcceptedSpanWindow(num_spans=1, gate_node_id=GATE, pipeline_name="fashion")
    assert [a.id for a in one.window(store.store, artifacts)] == [current.id]
    assert wide.resolve_artifacts(store.store, {"examples": []}) is None


def test_a_span_ingested_again_counts_once_at_its_newest_accepted_ingestion():
    store = _Store()
    first = store.ingest(1, "COMPLETE")
    rejected = store.ingest(2, "FAILED")
    again = store.ingest(2, "COMPLETE")  # thresholds changed, the span re-run and accepted
    rerun = store.ingest(1, "FAILED")  # span 1 once more, stopped this time
    current = store.ingest(3, None)
    window = AcceptedSpanWindow(num_spans=5, gate_node_id=GATE, pipeline_name="fashion")
    chosen = window.window(store.store, [first, rejected, again, rerun, current])
    assert [a.id for a in chosen] == [first.id, again.id, current.id]


def test_window_spans_is_validated_and_refused_by_the_kubeflow_compiler(tmp_path):
    with pytest.raises(pc.ConfigError, match="window_spans"):
        pc.DataConfig(window_spans=0)
    with pytest.raises(ValueError, match="num_spans"):
        AcceptedSpanWindow(num_spans=0, gate_node_id=GATE, pipeline_name="fashion")
    from pipeline.kubeflow import compile_pipeline
    config = pc.replace_nested(pc.get_config("smoke", workspace=str(tmp_path)),
                               "data.window_spans", "3")
    with pytest.raises(ValueError, match="window of several spans runs only under "
                                         "LocalDagRunner"):
        compile_pipeline(config, "example.com/fashion:1", str(tmp_path / "spec.json"))


def test_the_window_feeds_transform_and_trainers_and_the_evaluators_get_the_newest_span(
        tmp_path):
    from pipeline.pipeline import create_pipeline
    config = pc.get_config("smoke", workspace=str(tmp_path),
                           families=("category", "attributes", "detector"))
    plain = {c.id: c for c in create_pipeline(config).components}
    assert "SpanWindow" not in plain and "CategoryNewestExamples" not in plain
    config = pc.replace_nested(config, "data.window_spans", "4")
    nodes = {c.id: c for c in create_pipeline(config).components}
    window = nodes["SpanWindow"]
    assert window.exec_properties["source_uri"]["num_spans"] == 4
    assert window.exec_properties["source_uri"]["gate_node_id"] == GATE

    def producer(node, key):
        return nodes[node].inputs[key].producer_component_id

    assert producer("Transform", "examples") == "SpanWindow"
    assert producer("CategoryExamples", "records") == "SpanWindow"
    assert producer("CategoryNewestExamples", "records") == "ImportExampleGen"
    assert producer("CategoryTransform", "examples") == "CategoryExamples"
    assert producer("DetectorTrainer", "examples") == "SpanWindow"
    assert producer("AttributesTrainer", "examples") == "Transform"
    for family, source in (("Category", "CategoryNewestExamples"),
                           ("Attributes", "ImportExampleGen"), ("Detector", "ImportExampleGen")):
        assert producer(f"{family}Evaluator", "examples") == source, family
        assert producer(f"{family}InfraValidator", "examples") == source, family


def _examples_spans(store, artifact_ids):
    return sorted(a.custom_properties["span"].int_value
                  for a in store.get_artifacts_by_id(artifact_ids))


@pytest.mark.e2e
def test_three_spans_with_a_rejected_one_train_on_the_accepted_window(tmp_path):
    """Span 1, span 2 (violates the schema: the run stops), span 3, with a window of three
    spans: the third run's Transform, crops and trainers take spans 1 and 3, its evaluators
    span 3 alone."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from components.catalog_import.records import to_example
    from components.catalog_import.spans import SpanWriter
    from components.synthetic_catalog import generator
    from pipeline import runner
    from components.anomaly_gate.logic import AnomaliesFound
    from schemas import features as F
    catalog = tmp_path / "catalog"
    config = pc.get_config("smoke", workspace=str(tmp_path), families=("category", "attributes"))
    config = pc.replace_nested(config, "data.catalog_root", str(catalog))
    config = pc.replace_nested(config, "data.window_spans", "3")
    for family in config.families:
        config = pc.replace_nested(config, f"{family}.min_improvement", "-1.0")

    def write_span(seed, bad=False):
        with SpanWriter(str(catalog), num_shards=2) as writer:
            for record in generator.generate(seed, 60, 96):
                example = to_example(record)
                if bad:
                    example.features.feature[F.IMAGE_CLASS_TEXT].bytes_list.value[0] = \
                        b"spacesuit"
                writer.add_serialized(record.source_id, example.SerializeToString(), True)

    write_span(1)
    runner.run(config, log=lambda message: None)
    write_span(2, bad=True)
    with pytest.raises(AnomaliesFound):
        runner.run(config, log=lambda message: None)
    write_span(3)
    summary = runner.run(config, log=lambda message: None)
    assert summary["pushed_models"]["category"] and summary["pushed_models"]["attributes"]

    connection = pb.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    store = metadata_store.MetadataStore(connection)

    def inputs_of_last(node):
        context = store.get_context_by_type_and_name("node", f"fashion.{node}")
        execution = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
        found = {}
        for event in store.get_events_by_execution_ids([execution.id]):
            if event.type == pb.Event.INPUT:
                key = event.path.steps[0].key
                found.setdefault(key, []).append(event.artifact_id)
        return found

    assert _examples_spans(store, inputs_of_last("Transform")["examples"]) == [1, 3]
    assert _examples_spans(store, inputs_of_last("CategoryExamples")["records"]) == [1, 3]
    assert _examples_spans(store, inputs_of_last("CategoryNewestExamples")["records"]) == [3]
    assert _examples_spans(store, inputs_of_last("AttributesEvaluator")["examples"]) == [3]
    # Transform wrote one transformed artifact per span of the window; the trainer took both
    assert len(inputs_of_last("AttributesTrainer")["examples"]) == 2
    newest_crops = inputs_of_last("CategoryEvaluator")["examples"]
    [crops] = store.get_artifacts_by_id(newest_crops)
    assert "CategoryNewestExamples" in crops.uri
    window_crops = store.get_artifacts_by_id(inputs_of_last("CategoryTransform")["examples"])
    counted = {uri: json.load(open(os.path.join(uri, "crops.json")))["train"]["crops"]
               for uri in (crops.uri, window_crops[0].uri)}
    # the window's crops: span 3's and span 1's, so more than span 3's alone
    assert counted[window_crops[0].uri] > counted[crops.uri] > 0
    from pipeline.runs import list_runs
    newest = list_runs(config.metadata_path, metrics=False)[0]
    assert newest["spans"] == [3] and newest["spans_read"] == [1, 3]
