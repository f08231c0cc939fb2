"""How the category family is evaluated: TFMA accuracy per category and super-category, its
report, and ``fashion evaluate``'s offline metrics."""

from __future__ import annotations

from schemas import features as F
from trainer.families.category.features import CATEGORY_LABEL, SUPER_CATEGORY
from trainer.kinds import classifier_evaluation


def eval_config(config):
    """TFMA: accuracy (blesses), top-3/5, per-category and per-super-category slices."""
    return classifier_evaluation.single_label_eval_config(
        CATEGORY_LABEL, F.IMAGE_CLASS_TEXT, config.blessing_threshold, config.min_improvement,
        extra_slices=(SUPER_CATEGORY,))


def report(evaluation_uri: str, model_uri: str):
    """Metrics, accuracy per category and the confusion matrix."""
    return classifier_evaluation.single_label_report(evaluation_uri, model_uri,
                                                     F.IMAGE_CLASS_TEXT)


def evaluate(model_dir: str, data_pattern: str, batch_size: int = 64, progress=None) -> dict:
    """Accuracy, top-k, macro F1, confusion matrix and majority baseline on the records'
    ``image/class/text``."""
    return classifier_evaluation.evaluate_single_label(model_dir, data_pattern,
                                                       F.IMAGE_CLASS_TEXT, batch_size, progress)
