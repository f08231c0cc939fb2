"""TFX Trainer ``run_fn`` for the garment-category classifier (``trainer.category.run_fn``)."""

from __future__ import annotations

import keras
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
    config, aug = job.config, job.config.augmentation
    scope = training.distribution_scope()
    with scope():
        model = common.build_with_weights(
            lambda weights: efficientnet.build_classifier(
                len(job.label_names), variant=config.backbone, image_size=job.image_size,
                input_size=config.input_size, weights=weights, dropout=config.dropout,
                batchnorm_momentum=config.batchnorm_momentum,
                augment=efficientnet.augmentation(aug.flip, aug.rotation, aug.zoom,
                                                  aug.translation, seed=config.seed)),
            config.weights)

    def compile_model(m):
        with scope():
            m.compile(optimizer=common.optimizer(config.optimizer, config.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    logging.info("category: %d classes, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    common.fit_and_export(fn_args, FAMILY, job, model, compile_model, "val_accuracy")
