"""Offline metrics of ``fashion evaluate`` (pure numpy): masking and honest baselines."""

import numpy as np
import pytest

from trainer.evaluation.metrics import (classification_metrics, frequent_tags_baseline,
                                        multilabel_metrics)
from trainer.families.attributes.evaluation import record_truth


def test_multilabel_metrics():
    names = ["a", "b", "c"]
    truth = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]])
    tags = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]])
    result = multilabel_metrics(truth, tags, names)
    assert result["exact_match"] == pytest.approx(1 / 3)
    assert result["binary_accuracy"] == pytest.approx(7 / 9)
    # a: P=R=1; b: P=0 R=0; c: P=R=1 → macro (1+0+1)/3; micro: tp=3 fp=1 fn=1 → 0.75
    assert result["macro_f1"] == pytest.approx(2 / 3)
    assert result["micro_f1"] == pytest.approx(0.75)
    assert result["per_attribute"]["b"] == {"support": 1, "precision": 0.0, "recall": 0.0,
                                            "f1": 0.0}


def test_unknown_entries_count_in_no_metric():
    names = ["item:bag", "item:hat", "color:red"]
    truth = np.array([[1, 0, 0], [0, 1, 1]])
    tags = np.array([[1, 0, 1], [0, 1, 1]])
    known = np.array([[1, 1, 0], [1, 1, 1]])  # record 0 has no colour annotated
    masked = multilabel_metrics(truth, tags, names, known)
    assert masked["exact_match"] == 1.0 and masked["binary_accuracy"] == 1.0
    assert masked["micro_f1"] == 1.0 and masked["known_entries"] == 5
    # Without the mask the colour the model saw on record 0 would count as a false positive.
    assert multilabel_metrics(truth, tags, names)["micro_f1"] < 1.0


def test_record_truth_knows_only_annotated_families():
    names = ["item:bag", "item:hat", "color:red", "color:blue"]
    on, known = record_truth([b"item:bag"], names)
    assert on.tolist() == [True, False, False, False]
    assert known.tolist() == [True, True, False, False]


def test_frequent_tags_baseline_is_the_best_constant_tagger():
    truth = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1]])
    baseline = frequent_tags_baseline(truth, np.ones_like(truth))
    # k=1 (always "a"): tp 4, fp 0, fn 3 → 8/11; k=2 (a, b): tp 6, fp 2, fn 1 → 12/15 = 0.8
    assert baseline == {"frequent_tags_micro_f1": pytest.approx(0.8), "frequent_tags_k": 2}


def test_the_baseline_from_counts_masks_unknown_entries_alike():
    """TFMA's metric computes the baseline from per-tag counts; it must agree with the
    per-example computation, unknown entries excluded."""
    from trainer.evaluation.metrics import frequent_tags_baseline_from_counts
    rng = np.random.default_rng(3)
    truth = (rng.random((200, 6)) < [0.6, 0.4, 0.3, 0.2, 0.1, 0.05]).astype(int)
    known = (rng.random((200, 6)) < 0.7).astype(int)
    expected = frequent_tags_baseline(truth, known)
    positives = (truth.astype(bool) & known.astype(bool)).sum(axis=0)
    assert frequent_tags_baseline_from_counts(positives, known.sum(axis=0)) == {
        "frequent_tags_micro_f1": pytest.approx(expected["frequent_tags_micro_f1"]),
        "frequent_tags_k": expected["frequent_tags_k"]}
    # Entries that are unknown change the baseline: an all-known copy scores differently.
    assert frequent_tags_baseline(truth, np.ones_like(truth)) != expected


def test_classification_metrics_report_the_majority_baseline():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    result = classification_metrics(["x", "x", "y", "x"], scores, ["x", "y"])
    assert result["accuracy"] == 1.0 and result["majority_class_accuracy"] == 0.75
