"""The brand family's spec (see trainer.families.spec)."""

from trainer.families.brand.config import PRESETS, BrandConfig
from trainer.families.spec import TFMA, ComponentSpec, EvaluationSpec, FamilySpec, images_signature
from trainer.kinds.classifier_spec import SIGNATURES

_HERE = "trainer.families.brand"
ATTENTION = "attention"  # the signature: encoded images → scores and the attention map
ATTENTION_OUTPUT = "attention"  # its [batch, H/8, W/8] map output (sums to 1 per image)

SPEC = FamilySpec(
    name="brand",
    config_class=BrandConfig,
    presets=PRESETS,
    run_fn=f"{_HERE}.trainer.run_fn",
    transform_fragment=f"{_HERE}.transform.transform_fn",
    evaluation=EvaluationSpec(TFMA, f"{_HERE}.evaluation.eval_config",
                              blessing_metric="sparse_categorical_accuracy"),
    signatures=SIGNATURES + (images_signature(ATTENTION),),
    offline_evaluator=f"{_HERE}.evaluation.evaluate",
    quality_metric="accuracy",
    baseline_metric="majority_class_accuracy",
    report=f"{_HERE}.evaluation.report",
    headline_metrics=("sparse_categorical_accuracy", "majority_class_accuracy", "top_3_accuracy",
                      "example_count"),
    extra_components=(ComponentSpec("AttentionReport",
                                    f"{_HERE}.attention_report.attention_report",
                                    report_section=True),),
    accelerator_case=f"{_HERE}.trainer.accelerator_case",
    benchmark_cases=f"{_HERE}.benchmark.cases",
    warm_start=True,
)
