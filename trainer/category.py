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
        model = common.build_with_weights(
            lambda weights: efficientnet.build_classifier(
                len(job.label_names), weights=weights,
                **common.efficientnet_options(job.config, job.image_size)),
            job.config.weights)
    logging.info("category: %d classes, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    common.fit_and_export(fn_args, FAMILY, job, model,
                          common.single_label_compiler(job.config, scope), "val_accuracy")
