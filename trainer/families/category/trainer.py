"""TFX Trainer ``run_fn`` of the garment-category classifier."""

from __future__ import annotations

import keras
from absl import logging

from trainer import augmentation, checks, training
from trainer.families.category.config import CategoryConfig
from trainer.families.category.features import CATEGORY_LABEL, CATEGORY_VOCABULARY
from trainer.families.category.model import build_classifier
from trainer.kinds import classifier
from trainer.weights import build_with_weights

FAMILY = "category"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the category classifier.

    ``fn_args.custom_config`` carries ``{"category": asdict(CategoryConfig), "stored_size": int,
    "checkpoint_root": str}``.
    """
    job = classifier.prepare(fn_args, FAMILY, CategoryConfig, CATEGORY_LABEL,
                             vocabulary=CATEGORY_VOCABULARY)
    scope = training.distribution_scope()
    with scope():
        model = build_model(job.config, len(job.label_names), job.stored_size)
    logging.info("category: %d classes, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    classifier.fit_and_export(fn_args, FAMILY, job, model, compiler(job.config, scope),
                              "val_accuracy")


def build_model(config: CategoryConfig, num_classes: int, source_size: int) -> keras.Model:
    """The configured classifier for ``source_size`` pixel images (call inside the scope)."""
    return build_with_weights(
        lambda weights: build_classifier(
            num_classes, weights=weights,
            augment=augmentation.from_config(config.augmentation, config.seed),
            **config.trunk_options(source_size)),
        config.weights)


def compiler(config: CategoryConfig, scope):
    """``compile_model`` of the classifier: cross-entropy and accuracy."""
    return classifier.single_label_compiler(config, scope)


def accelerator_case(config: CategoryConfig, source_size: int,
                     num_classes: int = 14) -> checks.AcceleratorCase:
    """The classifier and its training glue on random images (accelerator check)."""
    scope = training.distribution_scope()
    with scope():
        model = build_model(config, num_classes, source_size)
    return checks.AcceleratorCase(model, compiler(config, scope),
                                  checks.single_label_batches(num_classes, source_size))
