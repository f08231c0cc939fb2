"""How the brand family is evaluated: TFMA accuracy per brand, its report, and
``fashion evaluate``'s offline metrics."""

from __future__ import annotations

from schemas import features as F
from trainer.families.brand.features import BRAND_LABEL
from trainer.kinds import classifier_evaluation


def eval_config(config):
    """TFMA: accuracy (blesses), top-3/5, per-brand slices, confusion matrix."""
    return classifier_evaluation.single_label_eval_config(
        BRAND_LABEL, F.BRAND, config.blessing_threshold, config.min_improvement)


def report(evaluation_uri: str, model_uri: str):
    """Metrics, accuracy per brand and the confusion matrix (the attention heat maps come from
    the AttentionReport section)."""
    return classifier_evaluation.single_label_report(evaluation_uri, model_uri, F.BRAND)


def evaluate(model_dir: str, data_pattern: str, batch_size: int = 64, progress=None) -> dict:
    """Accuracy, top-k, macro F1, confusion matrix and majority baseline on ``fashion/brand``."""
    return classifier_evaluation.evaluate_single_label(model_dir, data_pattern, F.BRAND,
                                                       batch_size, progress)
