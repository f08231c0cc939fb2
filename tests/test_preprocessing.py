"""Deterministic Transform helpers that need no Beam run."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from schemas import features as F  # noqa: E402
from trainer import preprocessing  # noqa: E402


def test_label_weight_marks_labelled_single_label_examples():
    weights = preprocessing.label_weight(tf.constant([3, -1, 0, -1], tf.int64))
    np.testing.assert_array_equal(weights.numpy(), [1.0, 0.0, 1.0, 0.0])
    assert weights.dtype == tf.float32


def test_label_weight_marks_multi_hot_rows_with_any_attribute():
    labels = tf.constant([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(preprocessing.label_weight(labels).numpy(), [1.0, 0.0, 1.0])


def test_every_label_has_a_weight_feature():
    assert set(F.LABEL_WEIGHT_FEATURES) == {F.CATEGORY_LABEL, F.BRAND_LABEL, F.ATTRIBUTE_LABELS}
    assert len(set(F.LABEL_WEIGHT_FEATURES.values())) == 3
