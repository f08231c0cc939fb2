"""The fashion TFX pipeline: ingestion → validation gate → Transform → Trainer → Evaluator → Pusher.

Components are wired here and trainer code is named by dotted path; nothing in this module
imports model code. ``create_pipeline(config)`` returns a ``tfx.dsl.Pipeline`` that LocalDagRunner
runs (``pipeline.runner.run``) or a Kubeflow runner compiles.
"""

from __future__ import annotations

import dataclasses

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.anomaly_gate.component import AnomalyGate
from components.catalog_import.spans import split_input_pattern
from components.infra_validator.component import ServingInfraValidator
from pipeline_config import PipelineConfig
from schemas import features as F

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
CATEGORY_RUN_FN = "trainer.category.run_fn"
# Must match serving.signatures (not imported: the pipeline does not import model code).
SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
SCORES_OUTPUT = "scores"


def category_eval_config(accuracy_threshold: float) -> tfma.EvalConfig:
    """TFMA config of the category family: accuracy (blessing threshold), per-category slices."""
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=SERVING_SIGNATURE, label_key=F.CATEGORY_LABEL,
            prediction_key=SCORES_OUTPUT, preprocessing_function_names=[TRANSFORM_SIGNATURE])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[F.IMAGE_CLASS_TEXT])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            # The blessing threshold applies to the overall slice only: a plain `threshold`
            # would apply to every per-category slice and one rare category would block a push.
            tfma.MetricConfig(
                class_name="SparseCategoricalAccuracy",
                per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                    slicing_specs=[tfma.SlicingSpec()],
                    threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                        lower_bound={"value": accuracy_threshold})))]),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])])


def create_pipeline(config: PipelineConfig, enable_cache: bool = False,
                    local_metadata: bool = True) -> tfx.dsl.Pipeline:
    """Builds the pipeline described by ``config`` (no component runs here).

    ``local_metadata`` False leaves ML Metadata to the orchestrator (Kubeflow); True uses the
    SQLite store under the workspace.
    """
    example_gen = tfx.components.ImportExampleGen(
        input_base=config.catalog_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=split_input_pattern(split))
            for split in ("train", "eval")]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=F.SCHEMA_PATH)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"image_size": config.transform.image_size})
    # The gate has no output artifact; this edge makes everything after it wait for (and be
    # skipped by the failure of) the gate.
    transform.add_upstream_node(gate)

    trainer = tfx.components.Trainer(
        run_fn=CATEGORY_RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config={"category": dataclasses.asdict(config.category),
                       "image_size": config.transform.image_size},
    ).with_id("CategoryTrainer")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        eval_config=category_eval_config(config.category.accuracy_threshold),
        example_splits=["eval"],
    ).with_id("CategoryEvaluator")
    infra_validator = ServingInfraValidator(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
    ).with_id("CategoryInfraValidator")
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_dir("category"))),
    ).with_id("CategoryPusher")

    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
            if local_metadata else None),
        components=[example_gen, statistics_gen, schema_gen, example_validator, gate, transform,
                    trainer, evaluator, infra_validator, pusher],
        enable_cache=enable_cache,
        beam_pipeline_args=config.beam.args(),
    )
