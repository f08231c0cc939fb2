"""The attribute family's spec (see trainer.families.spec)."""

from trainer.families.attributes.config import PRESETS, AttributesConfig
from trainer.families.spec import TFMA, EvaluationSpec, FamilySpec
from trainer.kinds.classifier_spec import SIGNATURES

_HERE = "trainer.families.attributes"

SPEC = FamilySpec(
    name="attributes",
    config_class=AttributesConfig,
    presets=PRESETS,
    run_fn=f"{_HERE}.trainer.run_fn",
    transform_fragment=f"{_HERE}.transform.transform_fn",
    evaluation=EvaluationSpec(TFMA, f"{_HERE}.evaluation.eval_config",
                              blessing_metric="micro_f1_score"),
    signatures=SIGNATURES,
    offline_evaluator=f"{_HERE}.evaluation.evaluate",
    quality_metric="micro_f1",
    baseline_metric="frequent_tags_micro_f1",
    report=f"{_HERE}.evaluation.report",
    headline_metrics=("micro_f1_score", "frequent_tags_micro_f1", "macro_f1_score",
                      "micro_binary_accuracy", "exact_match", "example_count"),
    accelerator_case=f"{_HERE}.trainer.accelerator_case",
    benchmark_cases=f"{_HERE}.benchmark.cases",
    warm_start=True,
)
