"""The fashion TFX pipeline: ingestion → validation gate → Transform → one branch per family.

Components are wired here from the family registry; trainer code is named by dotted path and no
model code is imported. Each family's branch is Trainer → LatestBlessedModel Resolver → its
evaluator (TFX Evaluator with the family's EvalConfig, the OfflineEvaluator running the family's
offline metrics, or its own evaluator component) →
ServingInfraValidator → Pusher (→ CatalogIndexer for an embedding family), plus its extra
components and an EvaluationReport; composite
nodes (several families' blessed models) come after the branches they take. With
``data.window_spans`` > 1, Transform and the trainers take the newest accepted spans
(:mod:`pipeline.span_window`), the evaluators the newest span.
``create_pipeline(config)`` returns a ``tfx.dsl.Pipeline`` that LocalDagRunner runs
(``pipeline.runner.run``) or a Kubeflow runner compiles.
"""

from __future__ import annotations

import dataclasses
import json

from tfx import v1 as tfx

from components.anomaly_gate.component import AnomalyGate
from components.catalog_drift.component import CatalogDriftValidator
from components.catalog_index.component import CatalogIndexer
from components.composite_model.component import ComposeModel
from components.catalog_import.spans import split_input_pattern
from components.evaluation_report.component import EvaluationReport
from components.infra_validator.component import ServingInfraValidator
from components.offline_evaluator.component import OfflineEvaluator
from pipeline_config import PipelineConfig
from schemas import features as F
from trainer.families import registry
from trainer.families.spec import OFFLINE, TFMA, FamilySpec, resolve

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"


def transform_custom_config(config: PipelineConfig, specs) -> dict:
    """The Transform's ``custom_config``: the stored image size and the Transform fragments of
    the families that train on transformed examples."""
    return {"stored_size": config.transform.stored_size,
            "fragments": [spec.transform_fragment for spec in specs
                          if spec.transform_fragment]}


def trainer_custom_config(config: PipelineConfig, spec: FamilySpec) -> dict:
    """A family Trainer's ``custom_config``: its config (``asdict``), the stored image size and
    where resumable checkpoints live."""
    return {spec.name: dataclasses.asdict(config.family(spec.name)),
            "stored_size": config.transform.stored_size,
            "checkpoint_root": config.checkpoint_root}


def family_evaluator(spec: FamilySpec, family_config, examples, model, baseline_model):
    """The evaluator node of ``spec`` (as its EvaluationSpec says) judging ``model`` on
    ``examples`` against ``baseline_model`` (a channel, or None)."""
    if spec.evaluation.kind == TFMA:
        return tfx.components.Evaluator(
            examples=examples, model=model, baseline_model=baseline_model,
            eval_config=resolve(spec.evaluation.factory)(family_config),
            example_splits=["eval"])
    if spec.evaluation.kind == OFFLINE:
        return OfflineEvaluator(examples=examples, model=model, baseline_model=baseline_model,
                                family=spec.name,
                                blessing_threshold=family_config.blessing_threshold,
                                min_improvement=family_config.min_improvement)
    return resolve(spec.evaluation.factory)(family_config, examples, model, baseline_model)


def example_source(config: PipelineConfig, spec: FamilySpec, records,
                   id_suffix: str = "Examples"):
    """The component deriving ``spec``'s own examples (its ``examples`` output) from the
    ``records`` channel, or None when the family takes the records as they are."""
    if not spec.example_source:
        return None
    source = resolve(spec.example_source)(config.family(spec.name), records)
    return source.with_id(spec.node_id(id_suffix)) if source is not None else None


def span_window(config: PipelineConfig, example_gen, last_gate):
    """The resolver of the newest ``config.data.window_spans`` accepted spans that
    ``example_gen`` ingested, in this run and before (:mod:`pipeline.span_window`), or None when
    the window is the newest span alone. It runs after ``last_gate``."""
    if config.data.window_spans == 1:
        return None
    from pipeline.span_window import EXAMPLES_KEY, AcceptedSpanWindow
    # A channel named by producer reaches every run's artifacts; example_gen.outputs would
    # reach this run's only.
    every_span = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                 producer_component_id=example_gen.id, output_key="examples")
    window = tfx.dsl.Resolver(
        strategy_class=AcceptedSpanWindow,
        config={"num_spans": config.data.window_spans, "gate_node_id": last_gate.id,
                "pipeline_name": config.name},
        **{EXAMPLES_KEY: every_span}).with_id("SpanWindow")
    window.add_upstream_node(last_gate)
    return window


def family_branch(config: PipelineConfig, spec: FamilySpec, examples, schema_gen,
                  transform, training_examples=None) -> tuple[list, dict]:
    """The nodes of ``spec``'s branch (trained on the ``training_examples`` channel, by default
    ``examples``; evaluated on ``examples``), and the channels a composite node may take from
    it."""
    transformed = spec.transform_fragment is not None
    # The family's latest blessed model (its own trainer's and evaluator's artifacts only: the
    # families share the pipeline context): the baseline of the change threshold, and where a
    # warm-started Trainer starts.
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                              producer_component_id=spec.node_id("Trainer"),
                              output_key="model"),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id=spec.node_id("Evaluator"),
                                       output_key="blessing"),
    ).with_id(spec.node_id("LatestBlessedModel"))
    warm = config.family(spec.name).warm_start
    if warm and not spec.warm_start:
        raise ValueError(f"{spec.name}.warm_start: the {spec.name} trainer cannot start from a "
                         "blessed model (its spec does not declare warm_start)")
    trainer = tfx.components.Trainer(
        run_fn=spec.run_fn,
        examples=(transform.outputs["transformed_examples"] if transformed
                  else training_examples or examples),
        transform_graph=transform.outputs["transform_graph"] if transformed else None,
        schema=schema_gen.outputs["schema"],
        base_model=baseline.outputs["model"] if warm else None,
        custom_config=trainer_custom_config(config, spec),
    ).with_id(spec.node_id("Trainer"))
    model = trainer.outputs["model"]
    evaluator = family_evaluator(spec, config.family(spec.name), examples, model,
                           baseline.outputs["model"]).with_id(spec.node_id("Evaluator"))
    probe = spec.infra_probe
    infra_validator = ServingInfraValidator(
        model=model, examples=examples, signature_name=probe.signature,
        input_name=probe.input_name, input_kind=probe.input_kind, check=probe.check,
    ).with_id(spec.node_id("InfraValidator"))
    pusher = tfx.components.Pusher(
        model=model, model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_dir(spec.name))),
    ).with_id(spec.node_id("Pusher"))
    nodes = [trainer, baseline, evaluator, infra_validator, pusher]
    if spec.catalog_index is not None:
        index = spec.catalog_index
        nodes.append(CatalogIndexer(
            examples=examples, pushed_model=pusher.outputs["pushed_model"],
            signature=index.signature, input_name=index.input_name, output=index.output,
            kind=getattr(config.family(spec.name), "index_kind", index.kind),
            options=json.dumps(dict(index.options)),
        ).with_id(spec.node_id("CatalogIndexer")))
    section = None
    for extra in spec.extra_components:
        node = resolve(extra.factory)(model=model, examples=examples).with_id(
            spec.node_id(extra.id_suffix))
        nodes.append(node)
        if extra.report_section:
            section = node.outputs["report"]
    nodes.append(EvaluationReport(
        evaluation=evaluator.outputs["evaluation"], blessing=evaluator.outputs["blessing"],
        model=model, family=spec.name, section=section,
        model_run=trainer.outputs["model_run"],
    ).with_id(spec.node_id("EvaluationReport")))
    channels = {"model": model, "blessing": evaluator.outputs["blessing"],
                "pushed_model": pusher.outputs["pushed_model"], "examples": examples,
                "pusher": pusher}
    return nodes, channels


def composite_nodes(config: PipelineConfig, composite, inputs: dict) -> list:
    """A builder composite's nodes: ComposeModel after the Pushers of the families it takes
    (``inputs``: their branch channels), a ServingInfraValidator and a Pusher to the serving
    folder named after it."""
    first = inputs[composite.families[0]]
    compose = ComposeModel(
        examples=first["examples"], composite=composite.name, builder=composite.builder,
        model_dirs=json.dumps({family: config.serving_model_dir(family)
                               for family in composite.families}),
    ).with_id(composite.node_id("Composer"))
    for family in composite.families:
        compose.add_upstream_node(inputs[family]["pusher"])
    probe = composite.infra_probe
    infra_validator = ServingInfraValidator(
        model=compose.outputs["model"], examples=first["examples"],
        signature_name=probe.signature, input_name=probe.input_name,
        input_kind=probe.input_kind, check=probe.check,
    ).with_id(composite.node_id("InfraValidator"))
    pusher = tfx.components.Pusher(
        model=compose.outputs["model"], infra_blessing=infra_validator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_dir(composite.name))),
    ).with_id(composite.node_id("Pusher"))
    return [compose, infra_validator, pusher]


def _transform(config: PipelineConfig, examples, schema_gen, specs, node_id: str):
    return tfx.components.Transform(
        examples=examples, schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=transform_custom_config(config, specs)).with_id(node_id)


def _read_span(config: PipelineConfig) -> tuple:
    """``(ImportExampleGen of the latest span, its StatisticsGen, ImportSchemaGen)``."""
    example_gen = tfx.components.ImportExampleGen(
        input_base=config.catalog_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=split_input_pattern(split))
            for split in ("train", "eval")]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    return example_gen, statistics_gen, tfx.components.ImportSchemaGen(schema_file=F.SCHEMA_PATH)


def ingestion_nodes(config: PipelineConfig) -> tuple:
    """The nodes every run starts with: ImportExampleGen (the latest span) → StatisticsGen,
    ImportSchemaGen → ExampleValidator → AnomalyGate → CatalogDriftValidator (when
    ``config.drift.enabled``). Returns ``(nodes, example_gen, schema_gen, last_gate)``: whatever
    trains must wait for ``last_gate``."""
    example_gen, statistics_gen, schema_gen = _read_span(config)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    nodes = [example_gen, statistics_gen, schema_gen, example_validator, gate]
    if not config.drift.enabled:
        return nodes, example_gen, schema_gen, gate
    drift = CatalogDriftValidator(
        examples=example_gen.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        thresholds=json.dumps(dataclasses.asdict(config.drift)),
        history_root=config.drift_history_root, report_root=config.reports_root,
        catalog_root=config.catalog_root)
    drift.add_upstream_node(gate)  # a span that violates the schema is not profiled
    return nodes + [drift], example_gen, schema_gen, drift


def _pipeline(config: PipelineConfig, components: list, enable_cache: bool,
              local_metadata: bool) -> tfx.dsl.Pipeline:
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
            if local_metadata else None),
        components=components,
        enable_cache=enable_cache,
        beam_pipeline_args=config.beam.args(),
    )


def create_validation_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    """Only the :func:`ingestion_nodes`: validates the latest span (schema, drift) and, when it
    passes, adds it to the drift history; trains nothing."""
    return _pipeline(config, ingestion_nodes(config)[0], False, True)


def create_preprocessing_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    """ImportExampleGen → StatisticsGen, ImportSchemaGen → Transform (with the fragments of the
    trained families that take the records): the Beam-heavy part of a run, without the gates
    and the trainers (to compare or time Beam settings)."""
    example_gen, statistics_gen, schema_gen = _read_span(config)
    specs = [spec for spec in (registry.get(name) for name in config.families)
             if spec.transform_fragment and not spec.example_source]
    transform = _transform(config, example_gen.outputs["examples"], schema_gen, specs,
                           "Transform")
    return _pipeline(config, [example_gen, statistics_gen, schema_gen, transform], False, True)


def create_pipeline(config: PipelineConfig, enable_cache: bool = False,
                    local_metadata: bool = True) -> tfx.dsl.Pipeline:
    """Builds the pipeline described by ``config`` (no component runs here).

    ``local_metadata`` False leaves ML Metadata to the orchestrator (Kubeflow); True uses the
    SQLite store under the workspace.
    """
    specs = [registry.get(name) for name in config.families]
    components, example_gen, schema_gen, last_gate = ingestion_nodes(config)

    records = example_gen.outputs["examples"]
    # Trainers and Transform's analysis see the span window; evaluators, infra validators
    # and indexers the newest span alone (the catalog as it is now).
    window = span_window(config, example_gen, last_gate)
    training_records = records
    if window is not None:
        components.append(window)
        training_records = window.outputs["examples"]
    sources = {spec.name: example_source(config, spec, training_records) for spec in specs}
    on_records = [spec for spec in specs if sources[spec.name] is None]
    transform = None
    if any(spec.transform_fragment for spec in on_records):
        transform = _transform(config, training_records, schema_gen, on_records, "Transform")
        components.append(transform)
        # The gates have no artifact that Transform takes; this edge makes everything after
        # them wait for (and be skipped by the failure of) the last gate, which waits for the
        # first.
        transform.add_upstream_node(last_gate)
    channels = {}
    for spec in specs:
        source, family_transform = sources[spec.name], transform
        examples, training_examples = records, training_records
        if source is not None:
            source.add_upstream_node(last_gate)
            examples = training_examples = source.outputs["examples"]
            components.append(source)
            if window is not None:  # the newest span's own examples, to evaluate on
                newest = example_source(config, spec, records, "NewestExamples")
                newest.add_upstream_node(last_gate)
                examples = newest.outputs["examples"]
                components.append(newest)
            if spec.transform_fragment:
                family_transform = _transform(config, training_examples, schema_gen, [spec],
                                              spec.node_id("Transform"))
                components.append(family_transform)
        nodes, channels[spec.name] = family_branch(config, spec, examples, schema_gen,
                                                   family_transform, training_examples)
        if spec.transform_fragment is None:  # trains on raw examples: gated directly
            nodes[0].add_upstream_node(last_gate)
        components += nodes
    for composite in registry.composite_specs():
        if set(composite.families) <= set(config.families):
            inputs = {name: channels[name] for name in composite.families}
            components += (resolve(composite.factory)(config, inputs) if composite.factory
                           else composite_nodes(config, composite, inputs))

    return _pipeline(config, components, enable_cache, local_metadata)
