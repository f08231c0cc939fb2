"""TFX Trainer ``run_fn`` of the garment-category classifier."""

from __future__ import annotations

import keras

from trainer import augmentation, checks
from trainer.families.category.config import CategoryConfig
from trainer.families.category.features import CATEGORY_LABEL, CATEGORY_VOCABULARY
from trainer.families.category.model import build_classifier
from trainer.kinds import classifier
from trainer.backbones.efficientnet import builder_name
from trainer.weights import build_with_weights

FAMILY = "category"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the category classifier.

    ``fn_args.custom_config`` carries ``{"category": asdict(CategoryConfig), "stored_size": int,
    "checkpoint_root": str}``.
    """
    classifier.train_and_export(fn_args, FAMILY, CategoryConfig, CATEGORY_LABEL, build_model,
                                compiler, "val_accuracy", vocabulary=CATEGORY_VOCABULARY)


def build_model(config: CategoryConfig, num_classes: int, source_size: int) -> keras.Model:
    """The configured classifier for ``source_size`` pixel images (call inside the scope)."""
    return build_with_weights(
        lambda weights: build_classifier(
            num_classes, weights=weights,
            augment=augmentation.from_config(config.augmentation, config.seed),
            **config.trunk_options(source_size)),
        config.weights, builder_name(config.backbone))


def compiler(config: CategoryConfig, scope, num_classes: int):
    """``compile_model`` of the classifier: cross-entropy and accuracy."""
    return classifier.single_label_compiler(config, scope)


def accelerator_case(config: CategoryConfig, source_size: int,
                     num_classes: int = 14) -> checks.AcceleratorCase:
    """The classifier and its training glue on random images (accelerator check)."""
    return classifier.accelerator_case(build_model, compiler, config, source_size, num_classes)
