"""The pipeline's wiring, checked by compiling it to TFX IR (nothing executes). Every
expectation is derived from the family registry."""

import dataclasses

import pytest
import tensorflow_model_analysis as tfma
from tfx.dsl.compiler import compiler

import pipeline_config as pc
from pipeline.pipeline import PREPROCESSING_FN, create_pipeline, example_source
from schemas import features as F
from trainer.families import registry
from trainer.families.category.features import CATEGORY_LABEL

SPECS = registry.family_specs()
BRANCH_STEPS = ("Trainer", "LatestBlessedModel", "Evaluator", "InfraValidator", "Pusher",
                "EvaluationReport")
COMPOSITE_STEPS = ("Composer", "InfraValidator", "Pusher")


def own_examples(config, spec) -> bool:
    """Whether ``spec`` trains on examples its own source component derives from the records."""
    from tfx import v1 as tfx
    records = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples)
    return example_source(config, spec, records) is not None


def transform_of(config, spec) -> str:
    """The node a family's Trainer waits for: its Transform, or the gate when it trains on the
    records themselves."""
    if spec.transform_fragment is None:
        return "AnomalyGate"
    return spec.node_id("Transform") if own_examples(config, spec) else "Transform"


def expected_nodes(config, specs=SPECS) -> set:
    nodes = {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
             "AnomalyGate"}
    if config.drift.enabled:
        nodes.add("CatalogDriftValidator")
    if any(spec.transform_fragment and not own_examples(config, spec) for spec in specs):
        nodes.add("Transform")
    for spec in specs:
        nodes |= {spec.node_id(step) for step in BRANCH_STEPS}
        if own_examples(config, spec):
            nodes |= {spec.node_id("Examples"), spec.node_id("Transform")}
        nodes |= {spec.node_id(extra.id_suffix) for extra in spec.extra_components}
        if spec.catalog_index is not None:
            nodes.add(spec.node_id("CatalogIndexer"))
    names = {spec.name for spec in specs}
    for composite in registry.composite_specs():
        if composite.builder and set(composite.families) <= names:
            nodes |= {composite.node_id(step) for step in COMPOSITE_STEPS}
    return nodes


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return pc.get_config("smoke", workspace=str(tmp_path_factory.mktemp("ws")))


@pytest.fixture(scope="module")
def built(config):
    return create_pipeline(config)


@pytest.fixture(scope="module")
def ir(built):
    return compiler.Compiler().compile(built)


@pytest.fixture(scope="module")
def nodes(ir):
    return {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}


def test_nodes_in_topological_order(ir, config):
    ids = [node.pipeline_node.node_info.id for node in ir.nodes]
    assert set(ids) == expected_nodes(config) and len(ids) == len(set(ids))
    position = {node_id: i for i, node_id in enumerate(ids)}
    order = [("ExampleValidator", "AnomalyGate"), ("AnomalyGate", "Transform")]
    for spec in SPECS:
        node = spec.node_id
        if own_examples(config, spec):
            order += [("AnomalyGate", node("Examples")), (node("Examples"), node("Transform"))]
        order += [(transform_of(config, spec), node("Trainer")),
                  (node("Trainer"), node("Evaluator")),
                  (node("Evaluator"), node("EvaluationReport")),
                  (node("Evaluator"), node("Pusher")), (node("Trainer"), node("InfraValidator")),
                  (node("InfraValidator"), node("Pusher"))]
    for before, after in order:
        assert position[before] < position[after]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_pusher_needs_its_evaluation_and_infra_blessings(nodes, spec):
    pusher = nodes[spec.node_id("Pusher")]
    assert {spec.node_id("InfraValidator"), spec.node_id("Evaluator")} <= set(
        pusher.upstream_nodes)
    assert {"infra_blessing", "model_blessing"} <= set(pusher.inputs.inputs)


def test_gate_blocks_everything_after_validation(nodes, config):
    """The schema gate, then the drift check (which waits for it), come before anything that
    trains: a failure of either stops the run."""
    last_gate = "CatalogDriftValidator"
    assert "AnomalyGate" in nodes[last_gate].upstream_nodes
    assert {"StatisticsGen", "ImportSchemaGen", "ImportExampleGen"} <= set(
        nodes[last_gate].upstream_nodes)
    assert last_gate in nodes["Transform"].upstream_nodes
    assert "ExampleValidator" in nodes["AnomalyGate"].upstream_nodes
    for spec in SPECS:
        if own_examples(config, spec):
            assert last_gate in nodes[spec.node_id("Examples")].upstream_nodes
        if spec.transform_fragment is None:  # trains on the records: gated directly
            assert last_gate in nodes[spec.node_id("Trainer")].upstream_nodes
            assert "Transform" not in nodes[spec.node_id("Trainer")].upstream_nodes


def test_without_the_drift_check_the_schema_gate_guards_training(config):
    from pipeline.pipeline import create_pipeline
    plain = create_pipeline(dataclasses.replace(config, drift=pc.DriftConfig(enabled=False)))
    ids = {c.id: c for c in plain.components}
    assert "CatalogDriftValidator" not in ids
    assert "AnomalyGate" in {n.id for n in ids["Transform"].upstream_nodes}


def test_a_warm_started_trainer_takes_the_latest_blessed_model(config, monkeypatch):
    from pipeline.pipeline import create_pipeline
    warm = pc.replace_nested(config, "category.warm_start", "true")
    ir = compiler.Compiler().compile(create_pipeline(warm))
    trainer = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}["CategoryTrainer"]
    assert "base_model" in trainer.inputs.inputs
    assert "CategoryLatestBlessedModel" in trainer.upstream_nodes
    cold = {n.pipeline_node.node_info.id: n.pipeline_node
            for n in compiler.Compiler().compile(create_pipeline(config)).nodes}
    assert "base_model" not in cold["CategoryTrainer"].inputs.inputs
    for family in ("detector", "dual_encoder"):  # Model Garden's and the two-tower trainers
        warm = pc.replace_nested(config, f"{family}.warm_start", "true")
        node = {n.id: n for n in create_pipeline(warm).components}[
            registry.get(family).node_id("Trainer")]
        assert "base_model" in node.inputs
    # a family whose trainer cannot start from a blessed model says so
    undeclared = dataclasses.replace(registry.get("detector"), warm_start=False)
    monkeypatch.setattr(registry, "get", lambda name, real=registry.get: (
        undeclared if name == "detector" else real(name)))
    with pytest.raises(ValueError, match="detector.warm_start"):
        create_pipeline(pc.replace_nested(config, "detector.warm_start", "true"))


def test_category_trains_and_is_evaluated_on_garment_crops(nodes, built, config):
    """By default the category branch takes ObjectCrops' per-garment examples: its own
    Transform, Trainer, Evaluator and infra validator read them; other families the records."""
    category = registry.get("category")
    crops = category.node_id("Examples")
    for step in ("Transform", "Evaluator", "InfraValidator"):
        assert crops in nodes[category.node_id(step)].upstream_nodes, step
    transform = {c.id: c for c in built.components}[category.node_id("Transform")]
    assert transform.exec_properties["custom_config"].count("trainer.families.") == 1
    photos = dataclasses.replace(config, family_configs={
        **config.family_configs, "category": dataclasses.replace(config.family("category"),
                                                                 examples="photos")})
    assert not own_examples(photos, category)
    assert crops not in {c.id for c in create_pipeline(photos).components}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_branch_is_configured_from_its_spec_and_config(built, config, spec):
    components = {c.id: c for c in built.components}
    trainer = components[spec.node_id("Trainer")]
    assert trainer.exec_properties["run_fn"] == spec.run_fn
    custom = trainer.exec_properties["custom_config"]
    assert f'"{spec.name}": ' in custom and config.checkpoint_root in custom
    assert f'"epochs": {config.family(spec.name).epochs}' in custom
    assert config.serving_model_dir(spec.name) in str(
        components[spec.node_id("Pusher")].exec_properties["push_destination"])
    validator = components[spec.node_id("InfraValidator")].exec_properties
    assert (validator["signature_name"], validator["input_kind"]) == (
        spec.infra_probe.signature, spec.infra_probe.input_kind)
    assert components[spec.node_id("EvaluationReport")].exec_properties["family"] == spec.name


def test_transform_runs_every_trained_familys_fragment(built, config):
    components = {c.id: c for c in built.components}
    for spec in [s for s in SPECS if s.transform_fragment]:
        transform = components[transform_of(config, spec)]
        assert transform.exec_properties["preprocessing_fn"] == PREPROCESSING_FN
        assert spec.transform_fragment in transform.exec_properties["custom_config"]
    custom = components["Transform"].exec_properties["custom_config"]
    assert f'"stored_size": {config.transform.stored_size}' in custom
    assert built.beam_pipeline_args == config.beam.args()


def test_the_category_evaluation_slices_per_category_and_super_category(built):
    eval_config = str({c.id: c for c in built.components}["CategoryEvaluator"]
                      .exec_properties["eval_config"])
    assert "SparseCategoricalAccuracy" in eval_config and F.IMAGE_CLASS_TEXT in eval_config
    assert "super_category" in eval_config and "top_5_accuracy" in eval_config


def test_families_can_be_chosen(config):
    only = create_pipeline(dataclasses.replace(config, families=("brand",)))
    brand = registry.get("brand")
    assert {c.id for c in only.components} == expected_nodes(config, [brand])


@pytest.mark.parametrize("spec", [s for s in SPECS if s.evaluation.kind == "tfma"],
                         ids=lambda s: s.name)
def test_unlabelled_examples_carry_no_weight_in_evaluation(spec):
    from trainer.families.spec import resolve
    eval_config = resolve(spec.evaluation.factory)(spec.preset("smoke"))
    (model_spec,) = eval_config.model_specs
    assert model_spec.example_weight_key == F.label_weight_feature(model_spec.label_key)
    assert "WeightedExampleCount" in str(eval_config.metrics_specs)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.evaluation.kind == "tfma"],
                         ids=lambda s: s.name)
def test_the_blessing_metric_carries_the_thresholds_on_the_overall_slice(spec):
    from trainer.families.spec import resolve
    family_config = dataclasses.replace(spec.preset("smoke"), blessing_threshold=0.42,
                                        min_improvement=0.01)
    eval_config = resolve(spec.evaluation.factory)(family_config)
    from tensorflow_model_analysis.metrics import metric_specs
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(eval_config.metrics_specs,
                                                                  eval_config)
    keys = [k for k in thresholds if k.name == spec.evaluation.blessing_metric]
    value = [t for k in keys if not k.is_diff for _, t in thresholds[k]]
    change = [t for k in keys if k.is_diff for _, t in thresholds[k]]
    assert [t.lower_bound.value for t in value] == [0.42]
    assert [t.absolute.value for t in change] == [pytest.approx(0.01, abs=1e-9)]
    assert change[0].direction == tfma.MetricDirection.HIGHER_IS_BETTER
    slices = [s for k in keys for s, _ in thresholds[k]]
    assert all(s is None or not list(s.feature_keys) for s in slices)  # never per class


def test_the_category_label_is_weighted_by_its_presence():
    from trainer.families.category.evaluation import eval_config
    (spec,) = eval_config(registry.get("category").preset("smoke")).model_specs
    assert spec.label_key == CATEGORY_LABEL
    assert spec.example_weight_key == "category_label_weight"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_evaluator_compares_with_its_own_latest_blessed_model(nodes, spec):
    evaluator = nodes[spec.node_id("Evaluator")]
    assert spec.node_id("LatestBlessedModel") in evaluator.upstream_nodes
    assert "baseline_model" in evaluator.inputs.inputs
    resolver_inputs = str(nodes[spec.node_id("LatestBlessedModel")].inputs)
    assert spec.node_id("Trainer") in resolver_inputs
    assert spec.node_id("Evaluator") in resolver_inputs
    others = [s for s in SPECS if s is not spec]
    assert not any(other.node_id("Trainer") in resolver_inputs for other in others)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.extra_components],
                         ids=lambda s: s.name)
def test_a_report_section_component_feeds_the_familys_report(nodes, spec):
    (extra,) = [e for e in spec.extra_components if e.report_section]
    report = nodes[spec.node_id("EvaluationReport")]
    assert spec.node_id(extra.id_suffix) in report.upstream_nodes
    assert "section" in report.inputs.inputs
    for other in SPECS:
        if not any(e.report_section for e in other.extra_components):
            assert "section" not in nodes[other.node_id("EvaluationReport")].inputs.inputs


def test_kubeflow_compilation_writes_a_pipeline_spec(tmp_path):
    import json

    from pipeline.kubeflow import compile_pipeline
    config = pc.get_config("full", workspace="gs://example-bucket/fashion")
    assert config.pipeline_root == "gs://example-bucket/fashion/pipeline_root"
    path = compile_pipeline(config, "registry.example/fashion:1", str(tmp_path / "spec.json"))
    text = json.dumps(json.load(open(path)))
    for node in expected_nodes(config):
        assert node in text, node
    assert "registry.example/fashion:1" in text
    assert "gs://example-bucket/fashion/pipeline_root" in text
    assert "metadata.sqlite" not in text


def test_the_kubeflow_spec_is_validated_beyond_compiling(tmp_path):
    """compile_pipeline loads its spec back with the KFP SDK and checks every task (it raises
    on a problem); a spec damaged after compiling is reported task by task."""
    import json

    from pipeline.kubeflow import compile_pipeline, validate_spec
    config = pc.get_config("smoke", workspace="gs://example-bucket/fashion")
    path = compile_pipeline(config, "registry.example/fashion:1", str(tmp_path / "spec.json"))
    assert validate_spec(path, "registry.example/fashion:1") == []
    job = json.load(open(path))
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    tasks["CatalogDriftValidator"]["inputs"]["artifacts"]["statistics"]["taskOutputArtifact"][
        "producerTask"] = "StatsGen"
    del tasks["Transform"]["inputs"]["artifacts"]["schema"]
    container = job["pipelineSpec"]["deploymentSpec"]["executors"]["AnomalyGate_executor"][
        "container"]
    container["image"] = "other:2"
    container["args"][container["args"].index("--executor_class_path") + 1] = "components.x.E"
    json.dump(job, open(tmp_path / "bad.json", "w"))
    assert sorted(validate_spec(str(tmp_path / "bad.json"), "registry.example/fashion:1")) == [
        "AnomalyGate: executor class 'components.x.E' cannot be imported",
        "AnomalyGate: image 'other:2', not 'registry.example/fashion:1'",
        "CatalogDriftValidator.statistics: from a task that does not exist: StatsGen",
        "Transform: required input 'schema' is not given"]
    assert validate_spec(str(tmp_path / "bad.json"), "other:2")  # the rest stays wrong


def test_the_container_image_installs_the_lock_and_every_package():
    """The Dockerfile (not built here: no Docker) matches the project: Python 3.10, the locked
    dependencies, every top-level package and module the pipeline's executors import."""
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[1]
    dockerfile = (root / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.10", dockerfile, re.M)
    assert "pip install -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    copied = {word for line in dockerfile.splitlines() if line.startswith("COPY ")
              for word in line.split()[1:-1]}
    pyproject = (root / "pyproject.toml").read_text()
    packages = re.search(r"include = \[(.*?)\]", pyproject).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert package in copied, package
    for module in re.search(r"py-modules = \[(.*?)\]", pyproject).group(1).split(","):
        assert f"{module.strip().strip(chr(34))}.py" in copied, module


@pytest.mark.parametrize("composite", [c for c in registry.composite_specs() if c.builder],
                         ids=lambda c: c.name)
def test_a_composite_is_composed_after_its_families_pushers_and_pushed_if_served(
        nodes, built, config, composite):
    composer = nodes[composite.node_id("Composer")]
    for family in composite.families:
        assert registry.get(family).node_id("Pusher") in composer.upstream_nodes
    pusher = nodes[composite.node_id("Pusher")]
    assert composite.node_id("InfraValidator") in pusher.upstream_nodes
    assert set(pusher.inputs.inputs) == {"model", "infra_blessing"}
    components = {c.id: c for c in built.components}
    assert config.serving_model_dir(composite.name) in str(
        components[composite.node_id("Pusher")].exec_properties["push_destination"])
    assert components[composite.node_id("Composer")].exec_properties["builder"] == \
        composite.builder
    without = create_pipeline(dataclasses.replace(config, families=composite.families[1:]))
    assert composite.node_id("Composer") not in {c.id for c in without.components}


@pytest.mark.parametrize("spec", [s for s in SPECS if s.catalog_index is not None],
                         ids=lambda s: s.name)
def test_an_embedding_family_indexes_what_its_pusher_pushed(nodes, built, spec):
    indexer = nodes[spec.node_id("CatalogIndexer")]
    assert spec.node_id("Pusher") in indexer.upstream_nodes
    assert {"pushed_model", "examples"} <= set(indexer.inputs.inputs)
    component = {c.id: c for c in built.components}[spec.node_id("CatalogIndexer")]
    assert component.exec_properties["signature"] == spec.catalog_index.signature
    flat = create_pipeline(pc.replace_nested(pc.get_config("smoke", workspace="/tmp/w"),
                                             f"{spec.name}.index_kind", "flat"))
    assert {c.id: c for c in flat.components}[spec.node_id("CatalogIndexer")].exec_properties[
        "kind"] == "flat"
