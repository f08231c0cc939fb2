"""TFX Trainer ``run_fn`` for the VGG16 spatial-attention brand classifier
(``trainer.brand.run_fn``)."""

from __future__ import annotations

from absl import logging

from pipeline_config import BrandConfig
from schemas import features as F
from trainer import common, training
from trainer.models import brand_attention

FAMILY = "brand"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the brand classifier with its ``attention`` signature.

    ``fn_args.custom_config`` carries ``{"brand": asdict(BrandConfig), "image_size": int,
    "checkpoint_root": str}``.
    """
    job = common.prepare(fn_args, FAMILY, BrandConfig, F.BRAND_LABEL,
                         vocabulary=F.BRAND_VOCABULARY)
    config = job.config
    scope = training.distribution_scope()
    with scope():
        model = build_model(config, len(job.label_names), job.image_size)
    logging.info("brand: %d brands, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    common.fit_and_export(fn_args, FAMILY, job, model,
                          common.single_label_compiler(config, scope), "val_accuracy",
                          attention_model=brand_attention.attention_model(model))


def build_model(config: BrandConfig, num_brands: int, source_size: int):
    """The configured classifier for ``source_size`` pixel images, run at
    ``config.image_size`` (call inside the scope)."""
    return common.build_with_weights(
        lambda weights: brand_attention.build_brand_classifier(
            num_brands, image_size=config.image_size, source_size=source_size,
            weights=weights, dropout=config.dropout, seed=config.seed,
            augment=brand_attention.augmentation(config.augmentation.translation,
                                                 seed=config.seed)),
        config.weights)
