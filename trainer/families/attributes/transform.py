"""The attribute family's Transform fragment: ``fashion/attributes`` as a multi-hot row over the
closed attribute vocabulary, with -1 where the record annotates no attribute of that family
(unknown, not negative), and its label weight (1 when any family is annotated)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from schemas import features as F
from trainer import preprocessing
from trainer.families.attributes.features import ATTRIBUTE_LABELS, UNKNOWN


def family_membership() -> np.ndarray:
    """[attributes, families] 0/1: which attribute family each vocabulary entry belongs to."""
    families = list(F.ATTRIBUTE_FAMILIES)
    membership = np.zeros((len(F.ATTRIBUTE_VOCABULARY), len(families)), np.float32)
    for i, name in enumerate(F.ATTRIBUTE_VOCABULARY):
        membership[i, families.index(name.split(":", 1)[0])] = 1.0
    return membership


def mask_unannotated(hot: tf.Tensor) -> tf.Tensor:
    """[batch, attributes] multi-hot → the same with UNKNOWN on every attribute whose family
    has no attribute on in that row."""
    membership = tf.constant(family_membership())
    annotated = tf.cast(tf.matmul(hot, membership) > 0, tf.float32)  # [batch, families]
    known = tf.matmul(annotated, membership, transpose_b=True) > 0  # [batch, attributes]
    return tf.where(known, hot, tf.fill(tf.shape(hot), UNKNOWN))


def transform_fn(inputs, custom_config) -> dict:
    """``attribute_labels`` (1 on, 0 off, -1 unknown) and its weight."""
    hot = preprocessing.multi_hot(inputs[F.ATTRIBUTES], F.ATTRIBUTE_VOCABULARY)
    return preprocessing.with_label_weight(ATTRIBUTE_LABELS, mask_unannotated(hot))
