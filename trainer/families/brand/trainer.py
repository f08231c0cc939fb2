"""TFX Trainer ``run_fn`` of the VGG16 spatial-attention brand classifier, and its export: the
classifier signatures plus ``attention`` (encoded images → ``scores`` and the spatial attention
map)."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from schemas.serving_api import IMAGES_INPUT, SCORES_OUTPUT
from trainer import augmentation, checks
from trainer.export import warmup
from trainer.families.brand.config import BrandConfig
from trainer.families.brand.features import BRAND_LABEL, BRAND_VOCABULARY
from trainer.families.brand.model import BUILDER, attention_model, build_brand_classifier
from trainer.families.brand.spec import ATTENTION, ATTENTION_OUTPUT
from trainer.kinds import classifier
from trainer.weights import build_with_weights

FAMILY = "brand"


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the brand classifier with its ``attention`` signature.

    ``fn_args.custom_config`` carries ``{"brand": asdict(BrandConfig), "stored_size": int,
    "checkpoint_root": str}``.
    """
    classifier.train_and_export(fn_args, FAMILY, BrandConfig, BRAND_LABEL, build_model,
                                compiler, "val_accuracy", export=export,
                                vocabulary=BRAND_VOCABULARY)


def build_model(config: BrandConfig, num_brands: int, source_size: int) -> keras.Model:
    """The configured classifier for ``source_size`` pixel images, run at
    ``config.backbone_size`` (call inside the scope)."""
    return build_with_weights(
        lambda weights: build_brand_classifier(
            num_brands, backbone_size=config.backbone_size, source_size=source_size,
            weights=weights, dropout=config.dropout, seed=config.seed,
            augment=augmentation.from_config(config.augmentation, config.seed)),
        config.weights, BUILDER)


def compiler(config: BrandConfig, scope, num_brands: int):
    """``compile_model`` of the classifier: cross-entropy and accuracy."""
    return classifier.single_label_compiler(config, scope)


class BrandModule(classifier.ClassifierModule):
    """The classifier signatures plus ``attention``."""

    def __init__(self, model, tft_output, class_names, stored_size: int):
        super().__init__(model, tft_output, class_names, stored_size)
        with_map = attention_model(model)
        self._call_attention = lambda images: with_map(images, training=False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def attention(self, images):
        scores, attention_map = self._call_attention(self.images_from_bytes(images))
        return {SCORES_OUTPUT: tf.cast(scores, tf.float32),
                ATTENTION_OUTPUT: tf.cast(attention_map, tf.float32)}


def export(export_dir: str, model, job: classifier.TrainingJob, model_name: str,
           warmup_images: Sequence[bytes]) -> str:
    """Saves the brand classifier with its ``attention`` signature and warm-up requests."""
    module = BrandModule(model, job.tft_output, job.label_names, job.stored_size)
    logs = classifier.classifier_warmup_logs(model_name, warmup_images) + [
        warmup.predict_log(model_name, ATTENTION, {IMAGES_INPUT: [image]})
        for image in warmup_images]
    return classifier.save_classifier(
        export_dir, module, job.label_names, logs,
        extra_signatures={ATTENTION: module.attention.get_concrete_function()})


def accelerator_case(config: BrandConfig, source_size: int,
                     num_brands: int = 6) -> checks.AcceleratorCase:
    """The classifier and its training glue on random images (accelerator check)."""
    return classifier.accelerator_case(build_model, compiler, config, source_size, num_brands)
