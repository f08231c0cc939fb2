"""Multi-label garment-attribute tagger (pure Keras 3, keras.ops), as in the pipeline study.

The shared EfficientNet trunk → one sigmoid per attribute. Labels are 1 (on), 0 (off) or -1
(unknown: the record annotates no attribute of that family); every loss and metric here masks
the unknown entries, so a photo tagged only with ``item:`` attributes teaches nothing about
colours. Trained with binary cross-entropy or, optionally, the soft-F1 loss. :func:`decode` turns
scores into tags at a threshold while respecting groups declared mutually exclusive (at most one
pattern, one colour, ...): inside such a group only the best-scoring attribute can be on.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from trainer.backbones.efficientnet import pooled_features


def build_attribute_tagger(num_attributes: int, *, variant: str = "b0", source_size: int = 224,
                           backbone_size: int | None = None, weights=None,
                           dropout: float = 0.5, augment: keras.Sequential | None = None,
                           batchnorm_momentum: float | None = None) -> keras.Model:
    """Builds the tagger: ``num_attributes`` independent sigmoid scores."""
    if num_attributes < 1:
        raise ValueError("the tagger needs at least one attribute")
    inputs, pooled = pooled_features(variant=variant, source_size=source_size,
                                     backbone_size=backbone_size, weights=weights,
                                     dropout=dropout, augment=augment,
                                     batchnorm_momentum=batchnorm_momentum)
    outputs = keras.layers.Dense(num_attributes, activation="sigmoid", name="scores",
                                 dtype="float32")(pooled)
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant}_attributes")


def _known(y_true):
    """(float 0/1 known mask, 0/1 targets with unknown entries set to 0)."""
    y_true = ops.cast(y_true, "float32")
    known = ops.cast(ops.greater_equal(y_true, 0.0), "float32")
    return known, y_true * known


@keras.saving.register_keras_serializable(package="fashion")
def masked_binary_crossentropy(y_true, y_pred):
    """Binary cross-entropy averaged over each example's known attributes (y_true >= 0)."""
    known, targets = _known(y_true)
    y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
    per_entry = -(targets * ops.log(y_pred) + (1.0 - targets) * ops.log(1.0 - y_pred))
    return ops.sum(per_entry * known, axis=-1) / ops.maximum(ops.sum(known, axis=-1), 1.0)


@keras.saving.register_keras_serializable(package="fashion")
def soft_f1_loss(y_true, y_pred):
    """1 − the differentiable (soft) F1 of each attribute over the batch's known entries,
    averaged over attributes.

    Counts are taken over the batch with probabilities instead of hard decisions, so the loss
    optimises macro F1 directly (the study found it worse than binary cross-entropy; it is here
    to compare).
    """
    known, targets = _known(y_true)
    y_pred = ops.cast(y_pred, "float32") * known
    true_positive = ops.sum(targets * y_pred, axis=0)
    false_positive = ops.sum((known - targets) * y_pred, axis=0)
    false_negative = ops.sum(targets * (1.0 - y_pred), axis=0)
    soft_f1 = 2.0 * true_positive / (2.0 * true_positive + false_positive + false_negative
                                     + 1e-7)
    return ops.mean(1.0 - soft_f1)


class _MaskedCounts(keras.metrics.Metric):
    """True/false positives/negatives per attribute over known entries, at a threshold."""

    def __init__(self, num_labels: int, threshold: float = 0.5, name: str = "masked",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_labels, self.threshold = num_labels, threshold
        self.counts = {kind: self.add_variable((num_labels,), "zeros", name=kind)
                       for kind in ("tp", "fp", "fn", "tn")}

    def update_state(self, y_true, y_pred, sample_weight=None):
        known, targets = _known(y_true)
        predicted = ops.cast(ops.greater_equal(y_pred, self.threshold), "float32")
        for kind, value in (("tp", targets * predicted), ("fp", (1 - targets) * predicted),
                            ("fn", targets * (1 - predicted)),
                            ("tn", (1 - targets) * (1 - predicted))):
            variable = self.counts[kind]
            variable.assign(variable + ops.sum(value * known, axis=0))

    def reset_state(self):
        for variable in self.counts.values():
            variable.assign(ops.zeros_like(variable))

    def get_config(self):
        return {"num_labels": self.num_labels, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="fashion")
class MaskedF1Score(_MaskedCounts):
    """F1 over known entries: ``micro`` (all counts pooled) or ``macro`` (mean over attributes
    with at least one known positive, the ones whose F1 is defined)."""

    def __init__(self, num_labels: int, average: str = "micro", threshold: float = 0.5,
                 name: str = "f1", dtype=None):
        if average not in ("micro", "macro"):
            raise ValueError("average must be micro or macro")
        super().__init__(num_labels, threshold, name, dtype)
        self.average = average

    def result(self):
        tp, fp, fn = self.counts["tp"], self.counts["fp"], self.counts["fn"]
        if self.average == "micro":
            tp, fp, fn = ops.sum(tp), ops.sum(fp), ops.sum(fn)
            return 2 * tp / ops.maximum(2 * tp + fp + fn, 1e-7)
        f1 = 2 * tp / ops.maximum(2 * tp + fp + fn, 1e-7)
        supported = ops.cast(ops.greater(tp + fn, 0), "float32")
        return ops.sum(f1 * supported) / ops.maximum(ops.sum(supported), 1.0)

    def get_config(self):
        return {**super().get_config(), "average": self.average}


@keras.saving.register_keras_serializable(package="fashion")
class MaskedBinaryAccuracy(_MaskedCounts):
    """The share of known entries decided right (1 − Hamming loss over known entries)."""

    def result(self):
        right = ops.sum(self.counts["tp"]) + ops.sum(self.counts["tn"])
        total = right + ops.sum(self.counts["fp"]) + ops.sum(self.counts["fn"])
        return right / ops.maximum(total, 1.0)


@keras.saving.register_keras_serializable(package="fashion")
class ExactMatch(keras.metrics.MeanMetricWrapper):
    """Exact match (subset accuracy): the share of images whose every known attribute is right
    at the threshold (the study's "categorical accuracy" of the multi-label tagger)."""

    def __init__(self, threshold: float = 0.5, name: str = "exact_match", dtype=None):
        def exact(y_true, y_pred):
            known, targets = _known(y_true)
            predicted = ops.cast(ops.greater_equal(y_pred, threshold), "float32")
            wrong = ops.sum(ops.abs(targets - predicted) * known, axis=-1)
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
