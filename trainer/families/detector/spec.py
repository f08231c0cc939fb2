"""The detector family's spec (see trainer.families.spec)."""

from schemas.serving_api import SERVING_DEFAULT
from trainer.families.detector.config import PRESETS, DetectorConfig
from trainer.families.spec import (EXAMPLES, IMAGES, OFFLINE, EvaluationSpec, FamilySpec,
                                   InfraProbe, SignatureSpec)

_HERE = "trainer.families.detector"
TF_EXAMPLE = "tf_example"  # the signature on serialized tf.Examples
INPUT_NAME = "inputs"  # Model Garden's input name, on both signatures

SPEC = FamilySpec(
    name="detector",
    config_class=DetectorConfig,
    presets=PRESETS,
    run_fn=f"{_HERE}.trainer.run_fn",
    transform_fragment=None,  # raw ExampleGen records: see trainer.families.detector.trainer
    evaluation=EvaluationSpec(OFFLINE, "", blessing_metric="mAP"),
    signatures=(SignatureSpec(SERVING_DEFAULT, INPUT_NAME, IMAGES),
                SignatureSpec(TF_EXAMPLE, INPUT_NAME, EXAMPLES)),
    infra_probe=InfraProbe(signature=SERVING_DEFAULT, input_name=INPUT_NAME, input_kind=IMAGES,
                           check=f"{_HERE}.export.check_detections"),
    offline_evaluator=f"{_HERE}.evaluation.evaluate",
    quality_metric="mAP",
    baseline_metric="prior_boxes_mAP",
    report=f"{_HERE}.evaluation.report",
    headline_metrics=("mAP", "prior_boxes_mAP", "mAP_50", "mAP_75", "AR_100", "examples"),
    warm_start=True,  # Model Garden's init_checkpoint: see trainer.families.detector.trainer
)
