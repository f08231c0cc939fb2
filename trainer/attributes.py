"""TFX Trainer ``run_fn`` for the multi-label attribute tagger (``trainer.attributes.run_fn``)."""

from __future__ import annotations

import keras
from absl import logging

from pipeline_config import AttributesConfig
from schemas import features as F
from trainer import common, training
from trainer.models import attributes

FAMILY = "attributes"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the tagger; its signatures add ``tags`` (0/1 per attribute,
    at the configured threshold, at most one per exclusive family).

    ``fn_args.custom_config`` carries ``{"attributes": asdict(AttributesConfig),
    "image_size": int, "checkpoint_root": str}``.
    """
    job = common.prepare(fn_args, FAMILY, AttributesConfig, F.ATTRIBUTE_LABELS,
                         label_names=F.ATTRIBUTE_VOCABULARY)
    config = job.config
    groups = attributes.exclusive_groups(job.label_names, config.exclusive_families)
    scope = training.distribution_scope()
    with scope():
        model = build_model(config, len(job.label_names), job.image_size)
    logging.info("attributes: %d attributes, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    common.fit_and_export(
        fn_args, FAMILY, job, model, compiler(config, scope), "val_macro_f1",
        extra_outputs=lambda scores: {"tags": attributes.decode(scores, groups,
                                                                config.threshold)})


def build_model(config: AttributesConfig, num_attributes: int, image_size: int):
    """The configured tagger for ``image_size`` pixel images (call inside the scope)."""
    return common.build_with_weights(
        lambda weights: attributes.build_attribute_tagger(
            num_attributes, weights=weights, **common.efficientnet_options(config, image_size)),
        config.weights)


def compiler(config: AttributesConfig, scope):
    """``compile_model`` for the tagger: BCE or soft-F1, exact match, binary accuracy, macro
    and micro F1 at the configured threshold, inside the distribution ``scope``."""
    def compile_model(model):
        with scope():
            model.compile(
                optimizer=common.optimizer(config.optimizer, config.learning_rate),
                loss=(attributes.soft_f1_loss if config.loss == "soft_f1"
                      else keras.losses.BinaryCrossentropy()),
                metrics=[attributes.ExactMatch(config.threshold, name="exact_match"),
                         keras.metrics.BinaryAccuracy(threshold=config.threshold,
                                                      name="binary_accuracy"),
                         keras.metrics.F1Score(average="macro", threshold=config.threshold,
                                               name="macro_f1"),
                         keras.metrics.F1Score(average="micro", threshold=config.threshold,
                                               name="micro_f1")])
    return compile_model
