"""Multi-label garment-attribute tagger (pure Keras 3, keras.ops), as in the pipeline study.

EfficientNet backbone → global average pooling → dropout → one sigmoid per attribute. Trained
with binary cross-entropy or, optionally, the soft-F1 loss. :func:`decode` turns scores into
tags at a threshold while respecting groups declared mutually exclusive (at most one pattern, one
colour, ...): inside such a group only the best-scoring attribute can be on.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from trainer.models.efficientnet import IMAGE_INPUT, pooled_features

# Re-exported so trainers import one module per family.
__all__ = ["IMAGE_INPUT", "ExactMatch", "build_attribute_tagger", "decode",
           "exclusive_groups", "soft_f1_loss"]


def build_attribute_tagger(num_attributes: int, *, variant: str = "b0", image_size: int = 224,
                           input_size: int | None = None, weights=None, dropout: float = 0.5,
                           augment: keras.Sequential | None = None,
                           batchnorm_momentum: float | None = None) -> keras.Model:
    """Builds the tagger: ``num_attributes`` independent sigmoid scores."""
    if num_attributes < 1:
        raise ValueError("the tagger needs at least one attribute")
    inputs, pooled = pooled_features(variant=variant, image_size=image_size,
                                     input_size=input_size, weights=weights, dropout=dropout,
                                     augment=augment, batchnorm_momentum=batchnorm_momentum)
    outputs = keras.layers.Dense(num_attributes, activation="sigmoid", name="scores",
                                 dtype="float32")(pooled)
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant}_attributes")


@keras.saving.register_keras_serializable(package="fashion")
def soft_f1_loss(y_true, y_pred):
    """1 − the differentiable (soft) F1 of each attribute, averaged over attributes.

    Counts are taken over the batch with probabilities instead of hard decisions, so the loss
    optimises macro F1 directly (the study found it worse than binary cross-entropy; it is here
    to compare).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    true_positive = ops.sum(y_true * y_pred, axis=0)
    false_positive = ops.sum((1.0 - y_true) * y_pred, axis=0)
    false_negative = ops.sum(y_true * (1.0 - y_pred), axis=0)
    soft_f1 = 2.0 * true_positive / (2.0 * true_positive + false_positive + false_negative
                                     + 1e-7)
    return ops.mean(1.0 - soft_f1)


@keras.saving.register_keras_serializable(package="fashion")
class ExactMatch(keras.metrics.MeanMetricWrapper):
    """Exact match (subset accuracy): the share of images whose every attribute is right at the
    threshold (the study's "categorical accuracy" of the multi-label tagger)."""

    def __init__(self, threshold: float = 0.5, name: str = "exact_match", dtype=None):
        def exact(y_true, y_pred):
            predicted = ops.cast(ops.greater_equal(y_pred, threshold), "float32")
            wrong = ops.sum(ops.abs(ops.cast(y_true, "float32") - predicted), axis=-1)
            return ops.cast(ops.equal(wrong, 0.0), "float32")
        super().__init__(exact, name=name, dtype=dtype)
        self.threshold = threshold

    def get_config(self):
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}


def exclusive_groups(names: Sequence[str], exclusive_families: Sequence[str]) -> list[list[int]]:
    """Indices of each mutually exclusive group, for ``family:value`` attribute names."""
    groups = []
    for family in exclusive_families:
        members = [i for i, name in enumerate(names) if name.split(":", 1)[0] == family]
        if members:
            groups.append(members)
    return groups


def decode(scores, groups: Sequence[Sequence[int]], threshold: float = 0.5):
    """0/1 tags from [batch, attributes] scores: above ``threshold``, and inside each exclusive
    group only the highest score of the row can be on (keras.ops: runs in any backend's graph)."""
    scores = ops.convert_to_tensor(scores, dtype="float32")
    keep = ops.ones_like(scores)
    width = scores.shape[-1]
    for members in groups:
        mask = ops.convert_to_tensor([1.0 if i in set(members) else 0.0 for i in range(width)],
                                     dtype="float32")
        masked = scores * mask - (1.0 - mask)  # non-members below any score
        best = ops.one_hot(ops.argmax(masked, axis=-1), width, dtype="float32")
        keep = keep * (1.0 - mask + best * mask)
    return ops.cast(ops.greater_equal(scores, threshold), "float32") * keep
