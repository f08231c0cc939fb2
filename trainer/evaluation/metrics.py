"""Metric arithmetic shared by offline evaluation, custom TFMA metrics and tests (numpy only).

Every figure comes with the baseline a constant predictor reaches on the same examples, so a
number can be read against it: the majority class for single-label classification, the best
"always predict the k most frequent tags" for multi-label tagging. Multi-label figures take a
mask: an entry a record does not annotate is unknown, not negative, and counts nowhere.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def precision_recall_f1(tp, fp, fn) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0 where undefined)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def classification_metrics(labels: Sequence[str], scores: np.ndarray,
                           class_names: Sequence[str], top_k: tuple = (3, 5)) -> dict:
    """Accuracy, top-k, macro F1, per-class precision/recall/F1, the confusion matrix and the
    majority-class baseline. ``labels`` are class names; a label the model does not know counts
    as a miss."""
    index = {name: i for i, name in enumerate(class_names)}
    count = len(labels)
    if count == 0:
        raise ValueError("no labelled examples to evaluate")
    truth = np.array([index.get(label, -1) for label in labels])
    ranked = np.argsort(-scores, axis=1)
    predicted = ranked[:, 0]
    _, label_counts = np.unique(np.asarray(labels, dtype=object), return_counts=True)
    result = {"examples": count, "accuracy": float(np.mean(predicted == truth)),
              "majority_class_accuracy": float(label_counts.max() / count),
              "unknown_labels": int(np.sum(truth < 0))}
    for k in top_k:
        if k < len(class_names):
            hits = (ranked[:, :k] == truth[:, None]).any(axis=1)
            result[f"top_{k}_accuracy"] = float(np.mean(hits))
    per_class, f1s = {}, []
    for i, name in enumerate(class_names):
        tp = int(np.sum((predicted == i) & (truth == i)))
        fp = int(np.sum((predicted == i) & (truth != i)))
        fn = int(np.sum((predicted != i) & (truth == i)))
        support = tp + fn
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        if support:
            f1s.append(f1)
        per_class[name] = {"support": support, "precision": round(precision, 4),
                           "recall": round(recall, 4), "f1": round(f1, 4)}
    result["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
    result["per_class"] = per_class
    present = sorted({int(t) for t in truth if t >= 0} | {int(p) for p in predicted})
    matrix = np.zeros((len(present), len(present)), int)
    position = {c: n for n, c in enumerate(present)}
    for t, p in zip(truth, predicted):
        if t >= 0:
            matrix[position[t], position[p]] += 1
    result["confusion_matrix"] = {"classes": [class_names[c] for c in present],
                                  "rows_true_columns_predicted": matrix.tolist()}
    return result


def _masked_counts(truth: np.ndarray, tags: np.ndarray, known: np.ndarray) -> tuple:
    truth, tags, known = truth.astype(bool), tags.astype(bool), known.astype(bool)
    tp = (truth & tags & known).sum(axis=0)
    fp = (~truth & tags & known).sum(axis=0)
    fn = (truth & ~tags & known).sum(axis=0)
    return tp, fp, fn


def frequent_tags_baseline(truth: np.ndarray, known: np.ndarray, max_k: int = 10) -> dict:
    """The best micro F1 of always predicting the k most frequent tags (k = 1..``max_k``),
    with that k: what a model that ignores the image reaches on these examples."""
    known = known.astype(bool)
    return frequent_tags_baseline_from_counts((truth.astype(bool) & known).sum(axis=0),
                                              known.sum(axis=0), max_k)


def frequent_tags_baseline_from_counts(positives: np.ndarray, known: np.ndarray,
                                       max_k: int = 10) -> dict:
    """:func:`frequent_tags_baseline` from per-tag counts: ``positives`` (examples annotated
    with the tag on) and ``known`` (examples annotating it at all). Predicting a tag for every
    example makes its known negatives false positives; tags not predicted miss their
    positives."""
    positives, known = np.asarray(positives, float), np.asarray(known, float)
    order = np.argsort(-positives, kind="stable")
    best = {"frequent_tags_micro_f1": 0.0, "frequent_tags_k": 0}
    for k in range(1, min(max_k, len(positives)) + 1):
        tp = positives[order[:k]].sum()
        fp = (known - positives)[order[:k]].sum()
        _, _, f1 = precision_recall_f1(tp, fp, positives.sum() - tp)
        if f1 > best["frequent_tags_micro_f1"]:
            best = {"frequent_tags_micro_f1": float(f1), "frequent_tags_k": k}
    return best


def multilabel_metrics(truth: np.ndarray, tags: np.ndarray, names: Sequence[str],
                       known: Optional[np.ndarray] = None) -> dict:
    """Exact match, binary accuracy (1 − Hamming loss), macro and micro F1, per-attribute
    precision/recall/F1 and the frequent-tags baseline from 0/1 ``truth`` and ``tags``
    ([examples, attributes]). ``known`` (same shape, default all) masks the entries a record
    does not annotate: they count in no figure, and an example with no known entry is left
    out."""
    truth, tags = truth.astype(bool), tags.astype(bool)
    known = np.ones_like(truth) if known is None else known.astype(bool)
    annotated = known.any(axis=1)
    truth, tags, known = truth[annotated], tags[annotated], known[annotated]
    if not len(truth):
        raise ValueError("no example annotates any of these attributes")
    tp, fp, fn = _masked_counts(truth, tags, known)
    per_attribute, f1s = {}, []
    for i, name in enumerate(names):
        support = int(tp[i] + fn[i])
        precision, recall, f1 = precision_recall_f1(tp[i], fp[i], fn[i])
        if support:
            f1s.append(f1)
            per_attribute[name] = {"support": support, "precision": round(precision, 4),
                                   "recall": round(recall, 4), "f1": round(f1, 4)}
    _, _, micro_f1 = precision_recall_f1(tp.sum(), fp.sum(), fn.sum())
    correct = (truth == tags) | ~known
    return {"examples": int(truth.shape[0]),
            "known_entries": int(known.sum()),
            "exact_match": float(np.mean(correct.all(axis=1))),
            "binary_accuracy": float(((truth == tags) & known).sum() / known.sum()),
            "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
            "micro_f1": micro_f1,
            **frequent_tags_baseline(truth, known),
            "per_attribute": per_attribute}
