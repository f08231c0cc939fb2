"""Offline evaluation of a pushed model on any records (``fashion evaluate``).

Loads the SavedModel, sends the records' serialized examples through its ``serving_default``
signature (exactly what a served client gets) and compares with the records' labels.
"""

from __future__ import annotations

import glob
import os
from typing import Callable, Optional, Sequence

import numpy as np

from pipeline_config import FAMILIES
from schemas import features as F


def latest_version(model_path: str) -> str:
    """``model_path`` itself if it is a SavedModel, else its highest complete version folder."""
    from serving.model_manager import list_versions
    if os.path.exists(os.path.join(model_path, "saved_model.pb")):
        return model_path
    versions = list_versions(model_path)
    if not versions:
        raise FileNotFoundError(f"{model_path} is neither a SavedModel nor a folder of versions")
    return versions[max(versions)]


def _precision_recall_f1(tp, fp, fn) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0 where undefined)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def classification_metrics(labels: list[str], scores: np.ndarray, class_names: list[str],
                           top_k: tuple = (3, 5)) -> dict:
    """Accuracy, top-k, macro F1, per-class precision/recall/F1 and the confusion matrix.

    ``labels`` are class names; a label the model does not know counts as a miss.
    """
    index = {name: i for i, name in enumerate(class_names)}
    count = len(labels)
    if count == 0:
        raise ValueError("no labelled examples to evaluate")
    truth = np.array([index.get(label, -1) for label in labels])
    ranked = np.argsort(-scores, axis=1)
    predicted = ranked[:, 0]
    result = {"examples": count, "accuracy": float(np.mean(predicted == truth)),
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
        precision, recall, f1 = _precision_recall_f1(tp, fp, fn)
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


def record_dataset(data_pattern: str):
    """A ``tf.data.TFRecordDataset`` of the (optionally gzipped) files matching the glob."""
    import tensorflow as tf
    files = sorted(glob.glob(data_pattern))
    if not files:
        raise FileNotFoundError(f"no files match {data_pattern}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def read_record_images(data_pattern: str, limit: int) -> list[tuple[str, bytes]]:
    """``(source id, encoded image)`` of the first ``limit`` records matching the glob."""
    import tensorflow as tf
    found = []
    for record in record_dataset(data_pattern).take(limit):
        parsed = tf.io.parse_single_example(record, {
            F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
            F.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=b"")})
        name = parsed[F.IMAGE_SOURCE_ID].numpy().decode() or f"record {len(found)}"
        found.append((name, parsed[F.IMAGE_ENCODED].numpy()))
    if not found:
        raise ValueError(f"no record in {data_pattern}")
    return found


def multilabel_metrics(truth: np.ndarray, tags: np.ndarray, names: list[str]) -> dict:
    """Exact match, binary accuracy (1 − Hamming loss), macro and micro F1 and per-attribute
    precision/recall/F1 from 0/1 ``truth`` and ``tags`` ([examples, attributes])."""
    truth, tags = truth.astype(bool), tags.astype(bool)
    tp = (truth & tags).sum(axis=0)
    fp = (~truth & tags).sum(axis=0)
    fn = (truth & ~tags).sum(axis=0)
    per_attribute, f1s = {}, []
    for i, name in enumerate(names):
        support = int(tp[i] + fn[i])
        precision, recall, f1 = _precision_recall_f1(tp[i], fp[i], fn[i])
        if support:
            f1s.append(f1)
            per_attribute[name] = {"support": support, "precision": round(precision, 4),
                                   "recall": round(recall, 4), "f1": round(f1, 4)}
    _, _, micro_f1 = _precision_recall_f1(tp.sum(), fp.sum(), fn.sum())
    return {"examples": int(truth.shape[0]),
            "exact_match": float(np.mean((truth == tags).all(axis=1))),
            "binary_accuracy": float(np.mean(truth == tags)),
            "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
            "micro_f1": micro_f1,
            "per_attribute": per_attribute}


def evaluate(family: str, model_path: str, data_pattern: str, batch_size: int = 64,
             progress: Optional[Callable[[int], None]] = None,
             attribute_families: Sequence[str] = ()) -> dict:
    """Computes ``family``'s metrics for the model at ``model_path`` on ``data_pattern``.

    ``attribute_families`` (attributes only) restricts the metrics to those families, for
    records labelled with only some of them (CCP tags are ``item:`` attributes only).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")
    import tensorflow as tf

    from serving.signatures import SERVING_DEFAULT
    export_dir = latest_version(model_path)
    dataset = record_dataset(data_pattern).batch(batch_size)
    model = tf.saved_model.load(export_dir)
    serve = model.signatures[SERVING_DEFAULT]
    if family == "attributes":
        return _evaluate_attributes(serve, dataset, export_dir, data_pattern, progress,
                                    attribute_families)
    label_feature = F.SINGLE_LABEL_FEATURES[family]
    labels, all_scores, class_names, skipped = [], [], None, 0
    for batch in dataset:
        parsed = tf.io.parse_example(batch, {label_feature: tf.io.VarLenFeature(tf.string)})
        texts = tf.sparse.to_dense(parsed[label_feature], default_value=b"").numpy()
        keep = np.array([row.size > 0 and row[0] != b"" for row in texts], bool)
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        outputs = serve(examples=tf.boolean_mask(batch, keep))
        if class_names is None:
            class_names = [c.decode() for c in outputs["classes"].numpy()[0]]
        labels += [row[0].decode() for row in texts[keep]]
        all_scores.append(outputs["scores"].numpy())
        if progress:
            progress(len(labels))
    if not labels:
        raise ValueError(f"no example in {data_pattern} carries {label_feature}")
    result = classification_metrics(labels, np.concatenate(all_scores), class_names)
    result.update({"family": family, "model": export_dir, "data": data_pattern,
                   "unlabelled_skipped": skipped})
    return result


def _evaluate_attributes(serve, dataset, export_dir: str, data_pattern: str, progress,
                         attribute_families: Sequence[str] = ()) -> dict:
    """The tagger's decoded ``tags`` against the records' ``fashion/attributes``."""
    import tensorflow as tf
    truths, tags, names, skipped = [], [], None, 0
    for batch in dataset:
        parsed = tf.io.parse_example(batch, {F.ATTRIBUTES: tf.io.VarLenFeature(tf.string)})
        values = tf.sparse.to_dense(parsed[F.ATTRIBUTES], default_value=b"").numpy()
        keep = np.array([bool(row.size and row[0]) for row in values], bool)
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        outputs = serve(examples=tf.boolean_mask(batch, keep))
        if names is None:
            names = [c.decode() for c in outputs["classes"].numpy()[0]]
            index = {name: i for i, name in enumerate(names)}
        for row in values[keep]:
            hot = np.zeros(len(names), bool)
            hot[[index[v.decode()] for v in row if v and v.decode() in index]] = True
            truths.append(hot)
        tags.append(outputs["tags"].numpy())
        if progress:
            progress(len(truths))
    if not truths:
        raise ValueError(f"no example in {data_pattern} carries {F.ATTRIBUTES}")
    truth, predicted = np.stack(truths), np.concatenate(tags)
    if attribute_families:
        keep = [i for i, name in enumerate(names) if name.split(":", 1)[0] in
                set(attribute_families)]
        if not keep:
            raise ValueError(f"no attribute of the families {list(attribute_families)}")
        truth, predicted, names = truth[:, keep], predicted[:, keep], [names[i] for i in keep]
    result = multilabel_metrics(truth, predicted, names)
    result.update({"family": "attributes", "model": export_dir, "data": data_pattern,
                   "unlabelled_skipped": skipped,
                   "attribute_families": list(attribute_families) or "all"})
    return result
