"""How classifier families are evaluated: TFMA configs, report sections and offline metrics.

Imports no model code (TFMA, numpy and, inside the offline evaluators, TensorFlow to load the
exported SavedModel), so ``pipeline/`` can build eval configs from it.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from schemas.serving_api import (CLASSES_OUTPUT, EXAMPLES_INPUT, SCORES_OUTPUT, SERVING_DEFAULT,
                                 latest_version, read_class_names)
from trainer.evaluation import metrics, reports


def single_label_eval_config(label_key: str, slice_feature: str, blessing_threshold: float,
                             min_improvement: float = 0.0, extra_slices: tuple = ()):
    """TFMA config of a single-label family: accuracy (blessing threshold on the overall slice,
    change threshold against the latest blessed model), top-3 and top-5, per-class slices on
    the raw label feature (and ``extra_slices`` features, raw or transformed), confusion
    matrix."""
    import tensorflow_model_analysis as tfma

    from trainer.evaluation import tfma_config
    return tfma.EvalConfig(
        model_specs=[tfma_config.model_spec(label_key)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[slice_feature])] + [
            tfma.SlicingSpec(feature_keys=[feature]) for feature in extra_slices],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            *tfma_config.counts(),
            *[tfma.MetricConfig(class_name="SparseTopKCategoricalAccuracy",
                                config=f'{{"k": {k}, "name": "top_{k}_accuracy"}}')
              for k in (3, 5)],
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              per_slice_thresholds=tfma_config.overall_only(
                                  tfma_config.blessing_threshold(blessing_threshold,
                                                                 min_improvement))),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])])


def model_class_names(model_uri: str) -> list[str]:
    """The class names of a Trainer's model artifact (its exported serving model)."""
    from tfx.utils import path_utils
    return read_class_names(path_utils.serving_model_dir(model_uri))


def single_label_report(evaluation_uri: str, model_uri: str,
                        class_feature: str) -> reports.EvaluationSummary:
    """Metrics, accuracy per class (the ``class_feature`` slices) and the confusion matrix."""
    class_names = model_class_names(model_uri)
    summary, result = reports.read_tfma(evaluation_uri, class_names)
    prefix = f"{class_feature}="
    per_class = {name[len(prefix):]: values["sparse_categorical_accuracy"]
                 for name, values in summary.slices.items()
                 if name.startswith(prefix) and "sparse_categorical_accuracy" in values}
    # The baseline beside the accuracy: always answering the most frequent eval class.
    class_counts = [values.get("weighted_example_count", 0.0)
                    for name, values in summary.slices.items() if name.startswith(prefix)]
    labelled = summary.overall.get("weighted_example_count", 0.0)
    if class_counts and labelled:
        summary.overall["majority_class_accuracy"] = max(class_counts) / labelled
    if per_class:
        summary.sections.append(reports.Section("accuracy per class", bars=per_class))
    matrix = reports.tfma_confusion_matrix(result, class_names)
    if matrix is not None:
        summary.sections.append(reports.Section(
            "Confusion matrix (rows: true, columns: predicted; row-normalised)", matrix=matrix,
            names=class_names))
    return summary


def per_class_f1_report(evaluation_uri: str, model_uri: str) -> reports.EvaluationSummary:
    """Metrics and F1 per class from the overall slice's per-class results (multi-label)."""
    summary, _ = reports.read_tfma(evaluation_uri, model_class_names(model_uri))
    per_class = {k[len("f1_score["):-1]: v for k, v in summary.overall.items()
                 if k.startswith("f1_score[") and v == v}
    if per_class:
        summary.sections.append(reports.Section("F1 per class", bars=per_class))
    return summary


def serve_labelled_records(model_dir: str, data_pattern: str, label_feature: str,
                           batch_size: int = 64, progress: Optional[Callable] = None) -> tuple:
    """Runs the pushed model at ``model_dir`` exactly as a served client calls it
    (``serving_default`` on the serialized records) on every record of ``data_pattern`` that
    carries the string feature ``label_feature``.

    Returns ``(export_dir, outputs, labels, unlabelled)``: the outputs of each batch (numpy),
    each served record's label values (list of str) and how many records had none.
    """
    import tensorflow as tf

    from trainer.export.records import record_dataset
    export_dir = latest_version(model_dir)
    serve = tf.saved_model.load(export_dir).signatures[SERVING_DEFAULT]
    outputs, labels, unlabelled = [], [], 0
    for batch in record_dataset(data_pattern).batch(batch_size):
        parsed = tf.io.parse_example(batch, {label_feature: tf.io.VarLenFeature(tf.string)})
        values = tf.sparse.to_dense(parsed[label_feature], default_value=b"").numpy()
        keep = np.array([row.size > 0 and row[0] != b"" for row in values], bool)
        unlabelled += int((~keep).sum())
        if not keep.any():
            continue
        result = serve(**{EXAMPLES_INPUT: tf.boolean_mask(batch, keep)})
        outputs.append({name: value.numpy() for name, value in result.items()})
        labels += [[v.decode() for v in row if v] for row in values[keep]]
        if progress:
            progress(len(labels))
    if not labels:
        raise ValueError(f"no example in {data_pattern} carries {label_feature}")
    return export_dir, outputs, labels, unlabelled


def evaluate_single_label(model_dir: str, data_pattern: str, label_feature: str,
                          batch_size: int = 64, progress: Optional[Callable] = None) -> dict:
    """Accuracy, top-k, macro F1, confusion matrix and the majority-class baseline of the model
    at ``model_dir`` on the records' ``label_feature`` (records without it are skipped)."""
    export_dir, outputs, labels, unlabelled = serve_labelled_records(
        model_dir, data_pattern, label_feature, batch_size, progress)
    class_names = [c.decode() for c in outputs[0][CLASSES_OUTPUT][0]]
    result = metrics.classification_metrics(
        [values[0] for values in labels],
        np.concatenate([batch[SCORES_OUTPUT] for batch in outputs]), class_names)
    result.update({"model": export_dir, "data": data_pattern,
                   "unlabelled_skipped": unlabelled})
    return result
