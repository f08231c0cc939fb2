"""The category family's Transform fragment: the image's garment category as a vocabulary id
(-1 when the record has none) with its label weight, and its super-category (TFMA slices the
evaluation by it)."""

from __future__ import annotations

import tensorflow as tf

from schemas import features as F
from trainer import preprocessing
from trainer.families.category.features import CATEGORY_LABEL, CATEGORY_VOCABULARY, SUPER_CATEGORY


def _super_category(categories: tf.Tensor) -> tf.Tensor:
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(F.GARMENT_SUPER_CATEGORY)),
                                            tf.constant(list(F.GARMENT_SUPER_CATEGORY.values()))),
        default_value="")
    return table.lookup(categories)


def transform_fn(inputs, custom_config) -> dict:
    """``category_label``, its weight and ``super_category`` from ``image/class/text``."""
    categories = inputs[F.IMAGE_CLASS_TEXT]
    outputs = preprocessing.with_label_weight(
        CATEGORY_LABEL, preprocessing.vocabulary_ids(categories, CATEGORY_VOCABULARY))
    outputs[SUPER_CATEGORY] = _super_category(preprocessing.first_value(categories))
    return outputs
