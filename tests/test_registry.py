"""The family registry: the only list of families. A family registered at run time (the
throw-away ``brightness`` regressor under tests/toy_families) gets a config section, a pipeline
branch and a run through the whole pipeline; a composite node is wired after the families it
takes."""

import dataclasses
import json
import os

import pytest
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

import pipeline_config as pc
from pipeline.pipeline import create_pipeline
from trainer.families import registry
from trainer.families.spec import (CUSTOM, CompositeSpec, ComponentSpec, EvaluationSpec,
                                   FamilySpec, InfraProbe, examples_signature)
from toy_families.brightness.spec import SPEC as TOY_SPEC


@pytest.fixture
def toy_registered():
    registry.register(TOY_SPEC)
    yield TOY_SPEC
    registry.unregister(TOY_SPEC)


def test_the_built_in_families_in_order():
    assert registry.family_names() == ("category", "attributes", "brand", "detector",
                                       "dual_encoder")
    assert registry.get("brand").name == "brand"
    with pytest.raises(ValueError, match="unknown family 'segmenter'"):
        registry.get("segmenter")


def test_a_family_registered_once_only(toy_registered):
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(dataclasses.replace(TOY_SPEC))
    assert registry.family_names().count("brightness") == 1


def test_a_registered_family_gets_a_config_section_and_a_branch(toy_registered, tmp_path):
    config = pc.get_config("smoke", workspace=str(tmp_path))
    assert config.families[-1] == "brightness"
    config = pc.replace_nested(config, "brightness.epochs", "2")
    assert config.family("brightness").epochs == 2
    built = create_pipeline(dataclasses.replace(config, families=("category", "brightness")))
    ids = {c.id for c in built.components}
    assert {f"Brightness{step}" for step in ("Trainer", "LatestBlessedModel", "Evaluator",
                                             "InfraValidator", "Pusher",
                                             "EvaluationReport")} <= ids
    components = {c.id: c for c in built.components}
    assert components["BrightnessTrainer"].exec_properties["run_fn"] == TOY_SPEC.run_fn
    assert TOY_SPEC.transform_fragment in components["Transform"].exec_properties[
        "custom_config"]
    assert components["BrightnessInfraValidator"].exec_properties["input_kind"] == "images"


@component
def LookRecorder(category_model: InputArtifact[standard_artifacts.PushedModel],
                 brand_model: InputArtifact[standard_artifacts.PushedModel],
                 brand_blessing: InputArtifact[standard_artifacts.ModelBlessing],
                 look: OutputArtifact[standard_artifacts.Model]):
    """A stand-in composite: records which models it was given."""
    os.makedirs(look.uri, exist_ok=True)
    with open(os.path.join(look.uri, "inputs.json"), "w") as handle:
        json.dump([category_model.uri, brand_model.uri, brand_blessing.uri], handle)


def build_look(config, inputs):
    """The composite's factory: its components from the families' channels."""
    return [LookRecorder(category_model=inputs["category"]["pushed_model"],
                         brand_model=inputs["brand"]["pushed_model"],
                         brand_blessing=inputs["brand"]["blessing"]).with_id("LookComposite")]


def test_a_composite_is_wired_after_the_families_it_takes(tmp_path):
    from tfx.dsl.compiler import compiler
    look = CompositeSpec("look", ("category", "brand"), f"{__name__}.build_look")
    registry.register(look)
    try:
        config = pc.get_config("smoke", workspace=str(tmp_path))
        ir = compiler.Compiler().compile(create_pipeline(config))
        nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
        assert {"CategoryPusher", "BrandPusher", "BrandEvaluator"} <= set(
            nodes["LookComposite"].upstream_nodes)
        without = create_pipeline(dataclasses.replace(config, families=("category",)))
        assert "LookComposite" not in {c.id for c in without.components}
    finally:
        registry.unregister(look)


@component
def FixedVerdict(model: InputArtifact[standard_artifacts.Model],
                 evaluation: OutputArtifact[standard_artifacts.ModelEvaluation],
                 blessing: OutputArtifact[standard_artifacts.ModelBlessing]):
    """A stand-in custom evaluator (e.g. COCO metrics, where TFMA has none)."""
    from trainer.evaluation.reports import record_blessing
    record_blessing(blessing, True)


def custom_evaluator(config, examples, model, baseline_model):
    """The custom evaluator's factory (the spec's ``evaluation.factory``)."""
    return FixedVerdict(model=model)


def test_a_custom_evaluator_blesses_for_the_pusher(tmp_path):
    from tfx.dsl.compiler import compiler
    custom = dataclasses.replace(TOY_SPEC, name="custom_brightness", evaluation=EvaluationSpec(
        CUSTOM, f"{__name__}.custom_evaluator", "r2"))
    registry.register(custom)
    try:
        config = pc.get_config("smoke", workspace=str(tmp_path), families=("custom_brightness",))
        ir = compiler.Compiler().compile(create_pipeline(config))
        nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
        assert "CustomBrightnessEvaluator" in nodes["CustomBrightnessPusher"].upstream_nodes
        assert "CustomBrightnessEvaluator" in nodes[
            "CustomBrightnessEvaluationReport"].upstream_nodes
    finally:
        registry.unregister(custom)


def test_record_blessing_writes_what_the_pusher_and_the_summary_read(tmp_path):
    from trainer.evaluation.reports import is_blessed, record_blessing
    for blessed in (True, False):
        artifact = standard_artifacts.ModelBlessing()
        artifact.uri = str(tmp_path / str(blessed))
        record_blessing(artifact, blessed)
        assert artifact.get_int_custom_property("blessed") == int(blessed)
        assert is_blessed(artifact.uri) is blessed


def _spec(**changes):
    fields = dict(name="toy", config_class=pc.TrainingConfig,
                  presets={p: pc.TrainingConfig for p in pc.PROFILES}, run_fn="m.run_fn",
                  transform_fragment=None, evaluation=EvaluationSpec("tfma", "m.f", "metric"),
                  signatures=(examples_signature("serving_default"),),
                  offline_evaluator="m.evaluate", quality_metric="q", baseline_metric="b",
                  report="m.report")
    fields.update(changes)
    return FamilySpec(**fields)


@pytest.mark.parametrize("changes,match", [
    ({"name": "Dual-Encoder"}, "lower-case identifier"),
    ({"presets": {"smoke": pc.TrainingConfig}}, "no preset"),
    ({"infra_probe": InfraProbe(signature="missing")}, "not among its signatures"),
    ({"extra_components": (ComponentSpec("A", "m.a", True), ComponentSpec("B", "m.b", True))},
     "at most one"),
])
def test_specs_are_validated(changes, match):
    with pytest.raises(ValueError, match=match):
        _spec(**changes)
    with pytest.raises(ValueError, match="evaluation kind"):
        EvaluationSpec("mystery", "m.f", "metric")


def test_node_ids_follow_the_family_name():
    assert _spec(name="dual_encoder").node_id("Trainer") == "DualEncoderTrainer"


@pytest.mark.e2e
def test_the_registered_family_runs_through_the_whole_pipeline(toy_registered, tmp_path):
    """Registering is enough: the toy family trains, is evaluated by TFMA, infra-validated,
    pushed and reported like a built-in family, in-process."""
    import learnable_catalog
    from pipeline import runner
    catalog = tmp_path / "catalog"
    learnable_catalog.write(str(catalog), count=120)
    config = pc.get_config("smoke", workspace=str(tmp_path), families=("brightness",))
    config = pc.replace_nested(config, "data.catalog_root", str(catalog))
    config = pc.replace_nested(config, "brightness.epochs", "3")
    config = pc.replace_nested(config, "brightness.steps_per_epoch", "60")
    # The learnable catalog's images are near-identical rectangles by design: the drift
    # check would rightly call half of them near duplicates.
    config = pc.replace_nested(config, "drift.enabled", "false")
    summary = runner.run(config, log=lambda message: None)
    assert summary["pushed_models"]["brightness"]
    assert summary["infra_validation"]["brightness"]["blessed"]
    evaluation = summary["evaluation"]["brightness"]
    assert evaluation["blessed"] and evaluation["blessing_metric"] == \
        "squared_pearson_correlation"
    assert evaluation["slices"]["overall"]["squared_pearson_correlation"] > 0.5
    from components.evaluation_report.logic import read_verdict
    report = os.path.dirname(summary["reports"]["brightness_evaluation"])
    assert read_verdict(report)["verdict"] == "BLESSED"
    assert "brightness" in open(summary["models_config"]).read()
