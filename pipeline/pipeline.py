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
from components.attention_report.component import BrandAttentionReport
from components.catalog_import.spans import split_input_pattern
from components.evaluation_report.component import EvaluationReport
from components.infra_validator.component import ServingInfraValidator
from pipeline_config import PipelineConfig
from schemas import features as F

PREPROCESSING_FN = "trainer.preprocessing.preprocessing_fn"
CATEGORY_RUN_FN = "trainer.category.run_fn"
RUN_FNS = {"category": CATEGORY_RUN_FN, "attributes": "trainer.attributes.run_fn",
           "brand": "trainer.brand.run_fn"}
# Must match serving.signatures (not imported: the pipeline does not import model code).
SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
SCORES_OUTPUT = "scores"


def _model_spec(label_key: str) -> tfma.ModelSpec:
    # Weighting by the label's presence leaves unlabelled eval examples out of every metric
    # but ExampleCount (WeightedExampleCount counts the labelled ones).
    return tfma.ModelSpec(signature_name=SERVING_SIGNATURE, label_key=label_key,
                          example_weight_key=F.LABEL_WEIGHT_FEATURES[label_key],
                          prediction_key=SCORES_OUTPUT,
                          preprocessing_function_names=[TRANSFORM_SIGNATURE])


def _blessing_threshold(value: float, min_improvement: float) -> tfma.MetricThreshold:
    """At least ``value``, and (when a blessed baseline exists) at least ``min_improvement``
    above the baseline's value: a worse retrained model is not blessed, so not pushed. On the
    first run there is no baseline and TFMA drops the change part (rubber stamp)."""
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": min_improvement - 1e-10}))


def _overall_only(threshold: tfma.MetricThreshold) -> list:
    # The blessing threshold applies to the overall slice only: a plain `threshold` would apply
    # to every per-class slice and one rare class would block a push.
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                         threshold=threshold)]


def single_label_eval_config(label_key: str, slice_feature: str, accuracy_threshold: float,
                             min_improvement: float = 0.0,
                             extra_slices: tuple = ()) -> tfma.EvalConfig:
    """TFMA config of a single-label family: accuracy (blessing threshold), top-3 and top-5,
    per-class slices on the raw label feature (and ``extra_slices`` features, raw or
    transformed), confusion matrix."""
    return tfma.EvalConfig(
        model_specs=[_model_spec(label_key)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[slice_feature])] + [
            tfma.SlicingSpec(feature_keys=[feature]) for feature in extra_slices],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="WeightedExampleCount"),
            *[tfma.MetricConfig(class_name="SparseTopKCategoricalAccuracy",
                                config=f'{{"k": {k}, "name": "top_{k}_accuracy"}}')
              for k in (3, 5)],
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              per_slice_thresholds=_overall_only(_blessing_threshold(
                                  accuracy_threshold, min_improvement))),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])])


def category_eval_config(accuracy_threshold: float,
                         min_improvement: float = 0.0) -> tfma.EvalConfig:
    """TFMA config of the category family."""
    return single_label_eval_config(F.CATEGORY_LABEL, F.IMAGE_CLASS_TEXT, accuracy_threshold,
                                    min_improvement, extra_slices=(F.SUPER_CATEGORY_FEATURE,))


def attributes_eval_config(micro_f1_threshold: float, threshold: float,
                           min_improvement: float = 0.0) -> tfma.EvalConfig:
    """TFMA config of the attribute tagger: per-attribute binary accuracy, precision, recall and
    F1 (one result per attribute id), and micro-averaged F1 and binary accuracy over all
    attributes; micro F1 blesses (a macro threshold would fail on attributes absent from the
    eval split, whose F1 is undefined)."""
    config = f'{{"thresholds": [{threshold}]}}'
    accuracy_config = f'{{"threshold": {threshold}}}'
    return tfma.EvalConfig(
        model_specs=[_model_spec(F.ATTRIBUTE_LABELS)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"),
                                      tfma.MetricConfig(class_name="WeightedExampleCount")]),
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name="BinaryAccuracy", config=accuracy_config),
                         tfma.MetricConfig(class_name="Precision", config=config),
                         tfma.MetricConfig(class_name="Recall", config=config),
                         tfma.MetricConfig(class_name="F1Score", config=config)],
                binarize=tfma.BinarizationOptions(
                    class_ids={"values": list(range(len(F.ATTRIBUTE_VOCABULARY)))})),
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name="BinaryAccuracy", config=accuracy_config),
                         tfma.MetricConfig(
                             class_name="F1Score", config=config,
                             threshold=_blessing_threshold(micro_f1_threshold,
                                                           min_improvement))],
                aggregate=tfma.AggregationOptions(micro_average=True)),
        ])


def brand_eval_config(accuracy_threshold: float, min_improvement: float = 0.0) -> tfma.EvalConfig:
    """TFMA config of the brand family."""
    return single_label_eval_config(F.BRAND_LABEL, F.BRAND, accuracy_threshold,
                                    min_improvement)


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

    eval_configs = {
        "category": category_eval_config(config.category.accuracy_threshold,
                                         config.category.min_improvement),
        "attributes": attributes_eval_config(config.attributes.micro_f1_threshold,
                                             config.attributes.threshold,
                                             config.attributes.min_improvement),
        "brand": brand_eval_config(config.brand.accuracy_threshold,
                                   config.brand.min_improvement),
    }
    branches = []
    for family in config.families:
        prefix = family.capitalize()
        trainer = tfx.components.Trainer(
            run_fn=RUN_FNS[family],
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            custom_config={family: dataclasses.asdict(getattr(config, family)),
                           "image_size": config.transform.image_size,
                           "checkpoint_root": config.checkpoint_root},
        ).with_id(f"{prefix}Trainer")
        # The family's latest blessed model (its own trainer's and evaluator's artifacts only:
        # the families share the pipeline context) is the baseline of the change threshold.
        baseline = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                                  producer_component_id=f"{prefix}Trainer",
                                  output_key="model"),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                           producer_component_id=f"{prefix}Evaluator",
                                           output_key="blessing"),
        ).with_id(f"{prefix}LatestBlessedModel")
        evaluator = tfx.components.Evaluator(
            examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
            baseline_model=baseline.outputs["model"],
            eval_config=eval_configs[family], example_splits=["eval"],
        ).with_id(f"{prefix}Evaluator")
        infra_validator = ServingInfraValidator(
            model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
        ).with_id(f"{prefix}InfraValidator")
        pusher = tfx.components.Pusher(
            model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
            infra_blessing=infra_validator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(
                    base_directory=config.serving_model_dir(family))),
        ).with_id(f"{prefix}Pusher")
        branches += [trainer, baseline, evaluator, infra_validator, pusher]
        attention = None
        if family == "brand":
            attention = BrandAttentionReport(
                model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
            ).with_id("BrandAttentionReport")
            branches.append(attention)
        branches.append(EvaluationReport(
            evaluation=evaluator.outputs["evaluation"], blessing=evaluator.outputs["blessing"],
            model=trainer.outputs["model"], family=family,
            class_feature=F.SINGLE_LABEL_FEATURES.get(family, ""),
            attention=attention.outputs["report"] if attention is not None else None,
        ).with_id(f"{prefix}EvaluationReport"))

    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
            if local_metadata else None),
        components=[example_gen, statistics_gen, schema_gen, example_validator, gate, transform,
                    *branches],
        enable_cache=enable_cache,
        beam_pipeline_args=config.beam.args(),
    )
