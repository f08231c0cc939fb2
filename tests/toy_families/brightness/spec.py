"""The brightness family's spec."""

from schemas.serving_api import REGRESS_METHOD, SERVING_DEFAULT, SERVING_IMAGES
from trainer.families.spec import (EXAMPLES, TFMA, EvaluationSpec, FamilySpec, InfraProbe,
                                   SignatureSpec, examples_signature, images_signature)
from toy_families.brightness.config import PRESETS, BrightnessConfig

_HERE = "toy_families.brightness"
REGRESS = "regress"

SPEC = FamilySpec(
    name="brightness",
    config_class=BrightnessConfig,
    presets=PRESETS,
    run_fn=f"{_HERE}.trainer.run_fn",
    transform_fragment=f"{_HERE}.transform.transform_fn",
    evaluation=EvaluationSpec(TFMA, f"{_HERE}.evaluation.eval_config",
                              blessing_metric="squared_pearson_correlation"),
    signatures=(examples_signature(SERVING_DEFAULT), images_signature(SERVING_IMAGES),
                SignatureSpec(REGRESS, "inputs", EXAMPLES, REGRESS_METHOD)),
    infra_probe=InfraProbe(signature=SERVING_IMAGES, input_name="images", input_kind="images"),
    offline_evaluator=f"{_HERE}.evaluation.evaluate",
    quality_metric="r2",
    baseline_metric="mean_predictor_r2",
    report=f"{_HERE}.evaluation.report",
    headline_metrics=("squared_pearson_correlation",),
)
