"""The category family's spec (see trainer.families.spec)."""

from trainer.families.category.config import PRESETS, CategoryConfig
from trainer.families.spec import TFMA, EvaluationSpec, FamilySpec
from trainer.kinds.classifier_spec import SIGNATURES

_HERE = "trainer.families.category"

SPEC = FamilySpec(
    name="category",
    config_class=CategoryConfig,
    presets=PRESETS,
    run_fn=f"{_HERE}.trainer.run_fn",
    transform_fragment=f"{_HERE}.transform.transform_fn",
    evaluation=EvaluationSpec(TFMA, f"{_HERE}.evaluation.eval_config",
                              blessing_metric="sparse_categorical_accuracy"),
    signatures=SIGNATURES,
    offline_evaluator=f"{_HERE}.evaluation.evaluate",
    quality_metric="accuracy",
    baseline_metric="majority_class_accuracy",
    report=f"{_HERE}.evaluation.report",
    headline_metrics=("sparse_categorical_accuracy", "majority_class_accuracy", "top_3_accuracy",
                      "example_count"),
    accelerator_case=f"{_HERE}.trainer.accelerator_case",
    benchmark_cases=f"{_HERE}.benchmark.cases",
    example_source=f"{_HERE}.examples.example_source",
    warm_start=True,
)
