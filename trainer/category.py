"""TFX Trainer ``run_fn`` for the garment-category classifier (``trainer.category.run_fn``)."""

from __future__ import annotations

from absl import logging

from pipeline_config import CategoryConfig
from schemas import features as F
from trainer import common, training
from trainer.models import efficientnet

FAMILY = "category"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the category classifier.

    ``fn_args.custom_config`` carries ``{"category": asdict(CategoryConfig), "image_size": int,
    "checkpoint_root": str}``.
    """
    job = common.prepare(fn_args, FAMILY, CategoryConfig, F.CATEGORY_LABEL,
                         vocabulary=F.CATEGORY_VOCABULARY)
    scope = training.distribution_scope()
    with scope():
        model = build_model(job.config, len(job.label_names), job.image_size)
    logging.info("category: %d classes, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    common.fit_and_export(fn_args, FAMILY, job, model,
                          common.single_label_compiler(job.config, scope), "val_accuracy")


def build_model(config: CategoryConfig, num_classes: int, image_size: int):
    """The configured classifier for ``image_size`` pixel images (call inside the scope)."""
    return common.build_with_weights(
        lambda weights: efficientnet.build_classifier(
            num_classes, weights=weights, **common.efficientnet_options(config, image_size)),
        config.weights)
