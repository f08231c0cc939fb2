"""The pipeline's wiring, checked by compiling it to TFX IR (nothing executes)."""

import dataclasses

import pytest
import tensorflow_model_analysis as tfma
from tfx.dsl.compiler import compiler

import pipeline_config as pc
from pipeline.pipeline import CATEGORY_RUN_FN, PREPROCESSING_FN, create_pipeline
from schemas import features as F

FAMILY_PREFIXES = ["Category", "Attributes", "Brand"]
EXPECTED_NODES = ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                  "AnomalyGate", "Transform"] + [
    f"{family}{step}" for family in FAMILY_PREFIXES
    for step in ("Trainer", "LatestBlessedModel", "Evaluator", "InfraValidator", "Pusher",
                 "EvaluationReport")] + ["BrandAttentionReport"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return pc.get_config("smoke", workspace=str(tmp_path_factory.mktemp("ws")))


@pytest.fixture(scope="module")
def built(config):
    return create_pipeline(config)


@pytest.fixture(scope="module")
def ir(built):
    return compiler.Compiler().compile(built)


def test_nodes_in_topological_order(ir):
    ids = [node.pipeline_node.node_info.id for node in ir.nodes]
    assert sorted(ids) == sorted(EXPECTED_NODES)
    position = {node_id: i for i, node_id in enumerate(ids)}
    order = [("ExampleValidator", "AnomalyGate"), ("AnomalyGate", "Transform")]
    for family in FAMILY_PREFIXES:
        order += [("Transform", f"{family}Trainer"), (f"{family}Trainer", f"{family}Evaluator"),
                  (f"{family}Evaluator", f"{family}EvaluationReport"),
                  (f"{family}Evaluator", f"{family}Pusher"),
                  (f"{family}Trainer", f"{family}InfraValidator"),
                  (f"{family}InfraValidator", f"{family}Pusher")]
    for before, after in order:
        assert position[before] < position[after]


@pytest.mark.parametrize("family", FAMILY_PREFIXES)
def test_each_pusher_needs_its_evaluation_and_infra_blessings(ir, family):
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    pusher = nodes[f"{family}Pusher"]
    assert {f"{family}InfraValidator", f"{family}Evaluator"} <= set(pusher.upstream_nodes)
    assert {"infra_blessing", "model_blessing"} <= set(pusher.inputs.inputs)


def test_gate_blocks_everything_after_validation(ir):
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    assert "AnomalyGate" in nodes["Transform"].upstream_nodes
    assert "ExampleValidator" in nodes["AnomalyGate"].upstream_nodes
    assert "CategoryEvaluator" in nodes["CategoryPusher"].upstream_nodes


def test_components_are_configured_from_config(built, config):
    components = {c.id: c for c in built.components}
    trainer = components["CategoryTrainer"]
    assert trainer.exec_properties["run_fn"] == CATEGORY_RUN_FN
    assert components["Transform"].exec_properties["preprocessing_fn"] == PREPROCESSING_FN
    assert '"epochs": 1' in trainer.exec_properties["custom_config"]
    assert config.serving_model_dir("category") in str(
        components["CategoryPusher"].exec_properties["push_destination"])
    assert built.beam_pipeline_args == config.beam.args()
    eval_config = str(components["CategoryEvaluator"].exec_properties["eval_config"])
    assert "SparseCategoricalAccuracy" in eval_config and "image/class/text" in eval_config
    assert "super_category" in eval_config and "top_5_accuracy" in eval_config
    assert components["BrandTrainer"].exec_properties["run_fn"] == "trainer.brand.run_fn"
    assert "fashion/brand" in str(components["BrandEvaluator"].exec_properties["eval_config"])
    assert components["AttributesTrainer"].exec_properties["run_fn"] == \
        "trainer.attributes.run_fn"
    assert "attribute_labels" in str(
        components["AttributesEvaluator"].exec_properties["eval_config"])
    assert config.checkpoint_root in trainer.exec_properties["custom_config"]


def test_families_can_be_chosen(config):
    only = create_pipeline(dataclasses.replace(config, families=("brand",)))
    assert {c.id for c in only.components if "Brand" in c.id} and not any(
        "Category" in c.id or "Attributes" in c.id for c in only.components)


def test_pipeline_module_does_not_import_model_code():
    import ast
    import pathlib
    for path in pathlib.Path(__file__).resolve().parents[1].joinpath("pipeline").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not {m for m in imported if m.startswith(("trainer", "keras", "serving"))}, path


def test_unlabelled_examples_carry_no_weight_in_evaluation():
    from pipeline.pipeline import (attributes_eval_config, brand_eval_config,
                                   category_eval_config)
    for config, label in ((category_eval_config(0.1), F.CATEGORY_LABEL),
                          (brand_eval_config(0.1), F.BRAND_LABEL),
                          (attributes_eval_config(0.1, 0.5), F.ATTRIBUTE_LABELS)):
        (spec,) = config.model_specs
        assert spec.label_key == label
        assert spec.example_weight_key == F.LABEL_WEIGHT_FEATURES[label]
        assert "WeightedExampleCount" in str(config.metrics_specs)


def test_blessing_threshold_applies_to_the_overall_slice_only():
    from pipeline.pipeline import category_eval_config
    config = category_eval_config(0.42)
    metrics = {m.class_name: m for spec in config.metrics_specs for m in spec.metrics}
    accuracy = metrics["SparseCategoricalAccuracy"]
    assert not accuracy.HasField("threshold")
    (per_slice,) = accuracy.per_slice_thresholds
    assert [s.feature_keys for s in per_slice.slicing_specs] == [[]]
    assert per_slice.threshold.value_threshold.lower_bound.value == 0.42
    # ...and must not be worse than the latest blessed model (change threshold vs baseline).
    change = per_slice.threshold.change_threshold
    assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert change.absolute.value == pytest.approx(0.0, abs=1e-9)
    # Per-category slices are still computed (for reports), just not gated.
    assert any(list(s.feature_keys) == ["image/class/text"] for s in config.slicing_specs)


@pytest.mark.parametrize("family", FAMILY_PREFIXES)
def test_each_evaluator_compares_with_its_own_latest_blessed_model(ir, family):
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    evaluator = nodes[f"{family}Evaluator"]
    assert f"{family}LatestBlessedModel" in evaluator.upstream_nodes
    assert "baseline_model" in evaluator.inputs.inputs
    resolver_inputs = str(nodes[f"{family}LatestBlessedModel"].inputs)
    assert f"{family}Trainer" in resolver_inputs and f"{family}Evaluator" in resolver_inputs
    others = [f for f in FAMILY_PREFIXES if f != family]
    assert not any(f"{other}Trainer" in resolver_inputs for other in others)


def test_the_brand_report_shows_the_attention_heatmaps(ir):
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    assert "BrandAttentionReport" in nodes["BrandEvaluationReport"].upstream_nodes
    assert "attention" in nodes["BrandEvaluationReport"].inputs.inputs
    assert "attention" not in nodes["CategoryEvaluationReport"].inputs.inputs


def test_kubeflow_compilation_writes_a_pipeline_spec(tmp_path):
    import json

    from pipeline.kubeflow import compile_pipeline
    config = pc.get_config("full", workspace="gs://example-bucket/fashion")
    assert config.pipeline_root == "gs://example-bucket/fashion/pipeline_root"
    path = compile_pipeline(config, "registry.example/fashion:1", str(tmp_path / "spec.json"))
    spec = json.load(open(path))
    text = json.dumps(spec)
    for node in EXPECTED_NODES:
        assert node in text, node
    assert "registry.example/fashion:1" in text
    assert "gs://example-bucket/fashion/pipeline_root" in text
    assert "metadata.sqlite" not in text
