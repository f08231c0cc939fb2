"""TFX Trainer ``run_fn`` of the multi-label attribute tagger."""

from __future__ import annotations

from absl import logging

from schemas import features as F
from trainer import augmentation, checks, training
from trainer.families.attributes import model as tagger
from trainer.families.attributes.config import AttributesConfig
from trainer.families.attributes.features import ATTRIBUTE_LABELS, UNKNOWN
from trainer.kinds import classifier
from trainer.weights import build_with_weights

FAMILY = "attributes"
TAGS_OUTPUT = "tags"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the tagger; its signatures add ``tags`` (0/1 per attribute,
    at the configured threshold, at most one per exclusive family).

    ``fn_args.custom_config`` carries ``{"attributes": asdict(AttributesConfig),
    "stored_size": int, "checkpoint_root": str}``.
    """
    job = classifier.prepare(fn_args, FAMILY, AttributesConfig, ATTRIBUTE_LABELS,
                             label_names=F.ATTRIBUTE_VOCABULARY)
    config = job.config
    groups = tagger.exclusive_groups(job.label_names, config.exclusive_families)
    scope = training.distribution_scope()
    with scope():
        model = build_model(config, len(job.label_names), job.stored_size)
    logging.info("attributes: %d attributes, %d training examples, %d steps/epoch",
                 len(job.label_names), job.train_examples, job.steps_per_epoch)

    def export(export_dir, model, job, model_name, warmup_images):
        return classifier.export_classifier(
            export_dir, model, job, model_name, warmup_images,
            extra_outputs=lambda scores: {TAGS_OUTPUT: tagger.decode(scores, groups,
                                                                     config.threshold)})
    classifier.fit_and_export(fn_args, FAMILY, job, model,
                              compiler(config, scope, len(job.label_names)), "val_macro_f1",
                              export=export)


def build_model(config: AttributesConfig, num_attributes: int, source_size: int):
    """The configured tagger for ``source_size`` pixel images (call inside the scope)."""
    return build_with_weights(
        lambda weights: tagger.build_attribute_tagger(
            num_attributes, weights=weights,
            augment=augmentation.from_config(config.augmentation, config.seed),
            **config.trunk_options(source_size)),
        config.weights)


def compiler(config: AttributesConfig, scope, num_attributes: int):
    """``compile_model`` for the tagger: masked BCE or soft-F1; masked exact match, binary
    accuracy, macro and micro F1 at the configured threshold, inside the distribution
    ``scope``."""
    def compile_model(model):
        with scope():
            model.compile(
                optimizer=training.optimizer(config.optimizer, config.learning_rate),
                loss=(tagger.soft_f1_loss if config.loss == "soft_f1"
                      else tagger.masked_binary_crossentropy),
                metrics=[tagger.ExactMatch(config.threshold, name="exact_match"),
                         tagger.MaskedBinaryAccuracy(num_attributes, config.threshold,
                                                     name="binary_accuracy"),
                         tagger.MaskedF1Score(num_attributes, "macro", config.threshold,
                                              name="macro_f1"),
                         tagger.MaskedF1Score(num_attributes, "micro", config.threshold,
                                              name="micro_f1")])
    return compile_model


def partial_label_batches(num_attributes: int, source_size: int, unknown_share: float = 0.3):
    """``batch(rng, rows)`` of random images and attribute rows, some entries unknown."""
    def batch(rng, rows):
        labels = (rng.random((rows, num_attributes)) < 0.1).astype("float32")
        labels[rng.random((rows, num_attributes)) < unknown_share] = UNKNOWN
        return checks.random_images(rng, rows, source_size), labels
    return batch


def accelerator_case(config: AttributesConfig, source_size: int,
                     num_attributes: int = 60) -> checks.AcceleratorCase:
    """The tagger and its training glue on random images with partial labels."""
    scope = training.distribution_scope()
    with scope():
        model = build_model(config, num_attributes, source_size)
    return checks.AcceleratorCase(model, compiler(config, scope, num_attributes),
                                  partial_label_batches(num_attributes, source_size),
                                  probabilities_sum_to_one=False)
