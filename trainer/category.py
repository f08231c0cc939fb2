"""TFX Trainer ``run_fn`` for the garment-category classifier (``trainer.category.run_fn``)."""

from __future__ import annotations

import json
import math
import os

import keras
import tensorflow_transform as tft
from absl import logging

from pipeline_config import CategoryConfig
from schemas import features as F
from serving import signatures
from trainer import common, input_pipeline
from trainer.models import efficientnet

FAMILY = "category"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the category classifier.

    ``fn_args.custom_config`` carries ``{"category": asdict(CategoryConfig), "image_size": int}``.
    """
    config = CategoryConfig.from_dict(fn_args.custom_config[FAMILY])
    image_size = int(fn_args.custom_config["image_size"])
    common.seed_everything(config.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    class_names = [c.decode() if isinstance(c, bytes) else c
                   for c in tft_output.vocabulary_by_name(F.CATEGORY_VOCABULARY)]
    feature_spec = tft_output.transformed_feature_spec()

    counts = input_pipeline.count_labelled(fn_args.train_files, feature_spec, F.CATEGORY_LABEL)
    train_examples = sum(counts.values())
    if train_examples == 0:
        raise ValueError("no labelled training examples (image/class/text) in the train split")
    steps_per_epoch = config.steps_per_epoch or max(1, math.ceil(train_examples /
                                                                 config.batch_size))
    train = input_pipeline.labelled_images(fn_args.train_files, feature_spec, F.CATEGORY_LABEL,
                                           image_size, config.batch_size, training=True,
                                           seed=config.seed)
    evaluation = input_pipeline.labelled_images(fn_args.eval_files, feature_spec,
                                                F.CATEGORY_LABEL, image_size,
                                                config.batch_size, training=False)
    if config.eval_steps:
        evaluation = evaluation.take(config.eval_steps)

    aug = config.augmentation
    model = common.build_with_weights(
        lambda weights: efficientnet.build_classifier(
            len(class_names), variant=config.backbone, image_size=image_size,
            input_size=config.input_size, weights=weights, dropout=config.dropout,
            batchnorm_momentum=config.batchnorm_momentum,
            augment=efficientnet.augmentation(aug.flip, aug.rotation, aug.zoom, aug.translation,
                                              seed=config.seed)),
        config.weights)
    model.compile(optimizer=common.optimizer(config.optimizer, config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    logging.info("category: %d classes, %d training examples, %d steps/epoch", len(class_names),
                 train_examples, steps_per_epoch)
    history = model.fit(
        train, epochs=config.epochs, steps_per_epoch=steps_per_epoch, validation_data=evaluation,
        callbacks=[keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.early_stopping_patience,
            start_from_epoch=config.early_stopping_start_epoch, restore_best_weights=True)],
        verbose=2)

    warmup = input_pipeline.sample_images(fn_args.eval_files, feature_spec, count=3)
    signatures.export_classifier(fn_args.serving_model_dir, model, tft_output, class_names,
                                 image_size, warmup_images=warmup, model_name=FAMILY)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with open(os.path.join(fn_args.model_run_dir, "history.json"), "w") as handle:
        json.dump({k: [float(v) for v in values] for k, values in history.history.items()},
                  handle, indent=2)
