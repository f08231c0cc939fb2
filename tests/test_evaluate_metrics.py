"""Offline metrics of ``fashion evaluate`` (pure numpy)."""

import numpy as np
import pytest

from serving.evaluate import multilabel_metrics


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
