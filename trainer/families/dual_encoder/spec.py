"""The dual encoder family's spec (see trainer.families.spec)."""

from schemas.serving_api import (EMBED_TEXT, EMBEDDING_OUTPUT, EXAMPLES_INPUT, IMAGES_INPUT,
                                 SERVING_DEFAULT, SERVING_IMAGES, TEXT_INPUT)
from trainer.families.dual_encoder.config import PRESETS, DualEncoderConfig
from trainer.families.spec import (EXAMPLES, IMAGES, OFFLINE, TEXTS, CatalogIndexSpec,
                                   EvaluationSpec, FamilySpec, InfraProbe, SignatureSpec)

_HERE = "trainer.families.dual_encoder"

SPEC = FamilySpec(
    name="dual_encoder",
    config_class=DualEncoderConfig,
    presets=PRESETS,
    run_fn=f"{_HERE}.trainer.run_fn",
    transform_fragment=f"{_HERE}.transform.transform_fn",
    evaluation=EvaluationSpec(OFFLINE, "", blessing_metric="text_to_image_recall_at_5"),
    signatures=(SignatureSpec(SERVING_DEFAULT, EXAMPLES_INPUT, EXAMPLES),
                SignatureSpec(SERVING_IMAGES, IMAGES_INPUT, IMAGES),
                SignatureSpec(EMBED_TEXT, TEXT_INPUT, TEXTS)),
    infra_probe=InfraProbe(signature=SERVING_IMAGES, input_name=IMAGES_INPUT, input_kind=IMAGES),
    offline_evaluator=f"{_HERE}.evaluation.evaluate",
    quality_metric="zero_shot_accuracy",
    baseline_metric="majority_class_accuracy",
    report=f"{_HERE}.evaluation.report",
    headline_metrics=("zero_shot_accuracy", "majority_class_accuracy", "zero_shot_macro_f1",
                      "text_to_image_recall_at_5", "chance_recall_at_5",
                      "image_to_text_recall_at_5", "text_to_image_mrr", "examples"),
    # HNSW: 32 neighbours per node, a search beam of 128 (recall against exact search is
    # measured at every build and kept in the index's manifest).
    catalog_index=CatalogIndexSpec(SERVING_DEFAULT, EXAMPLES_INPUT, EMBEDDING_OUTPUT, "hnsw",
                                   (("hnsw_neighbours", 32), ("ef_search", 128))),
    warm_start=True,  # both towers, the logit scale and the vocabulary: see its trainer
)
