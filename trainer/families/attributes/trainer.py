"""TFX Trainer ``run_fn`` of the multi-label attribute tagger."""

from __future__ import annotations

from schemas import features as F
from schemas.serving_api import TAGS_OUTPUT
from trainer import augmentation, checks, training
from trainer.families.attributes import model as tagger
from trainer.families.attributes.config import AttributesConfig
from trainer.families.attributes.features import ATTRIBUTE_LABELS, UNKNOWN
from trainer.kinds import classifier
from trainer.backbones.efficientnet import builder_name
from trainer.weights import build_with_weights

FAMILY = "attributes"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the tagger; its signatures add ``tags`` (0/1 per attribute,
    at the configured threshold, at most one per exclusive family).

    ``fn_args.custom_config`` carries ``{"attributes": asdict(AttributesConfig),
    "stored_size": int, "checkpoint_root": str}``.
    """
    classifier.train_and_export(fn_args, FAMILY, AttributesConfig, ATTRIBUTE_LABELS,
                                build_model, compiler, "val_macro_f1", export=export,
                                label_names=F.ATTRIBUTE_VOCABULARY)


def export(export_dir: str, model, job: classifier.TrainingJob, model_name: str,
           warmup_images) -> str:
    """The classifier export plus ``tags``: decoded at the configured threshold, at most one
    per exclusive attribute family."""
    groups = tagger.exclusive_groups(job.label_names, job.config.exclusive_families)
    return classifier.export_classifier(
        export_dir, model, job, model_name, warmup_images,
        extra_outputs=lambda scores: {TAGS_OUTPUT: tagger.decode(scores, groups,
                                                                 job.config.threshold)})


def build_model(config: AttributesConfig, num_attributes: int, source_size: int):
    """The configured tagger for ``source_size`` pixel images (call inside the scope)."""
    return build_with_weights(
        lambda weights: tagger.build_attribute_tagger(
            num_attributes, weights=weights,
            augment=augmentation.from_config(config.augmentation, config.seed),
            **config.trunk_options(source_size)),
        config.weights, builder_name(config.backbone))


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
    return classifier.accelerator_case(build_model, compiler, config, source_size,
                                       num_attributes,
                                       partial_label_batches(num_attributes, source_size),
                                       probabilities_sum_to_one=False)
