"""COCO metrics of a detector (pycocotools, as the studies report them), its honest baseline,
the evaluation gallery and the report.

TFMA has no COCO metric, so the detector is evaluated by ``components.offline_evaluator`` with
:func:`evaluate`, which serves the exported model's ``tf_example`` signature on eval records —
what a client gets, post-processing included — and scores it against the records' boxes:
mAP@[.5:.95], mAP@.5, mAP@.75, mAP small/medium/large (COCO's pixel-area buckets), AR@1, AR@10,
AR@100 and per-class AP. Records without boxes are skipped (they do not say where their
garments are). The baseline is a detector that ignores the image: on every image it answers
each class's mean box, scored by the class's frequency.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
from typing import Callable, Optional

import numpy as np

from schemas import features as F
from trainer.evaluation import reports
from trainer.evaluation.plots import SUPER_CATEGORY_COLOURS

# COCOeval.stats, in order.
COCO_STATS = ("mAP", "mAP_50", "mAP_75", "mAP_small", "mAP_medium", "mAP_large", "AR_1",
              "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large")
BASELINE_PREFIX = "prior_boxes_"
GALLERY_FOLDER = "gallery"
NAMES = {F.SUPER_CATEGORY_IDS[name]: name for name in F.SUPER_CATEGORIES}


def _parse(serialized: bytes) -> dict:
    import tensorflow as tf
    feature = tf.train.Example.FromString(serialized).features.feature

    def floats(key):
        return list(feature[key].float_list.value) if key in feature else []
    ymin, xmin, ymax, xmax = (floats(k) for k in (F.BBOX_YMIN, F.BBOX_XMIN, F.BBOX_YMAX,
                                                  F.BBOX_XMAX))
    classes = list(feature[F.OBJECT_CLASS_LABEL].int64_list.value) \
        if F.OBJECT_CLASS_LABEL in feature else []
    return {"source_id": feature[F.IMAGE_SOURCE_ID].bytes_list.value[0].decode()
            if F.IMAGE_SOURCE_ID in feature else "",
            "height": int(feature[F.IMAGE_HEIGHT].int64_list.value[0]),
            "width": int(feature[F.IMAGE_WIDTH].int64_list.value[0]),
            "boxes": np.array(list(zip(ymin, xmin, ymax, xmax)), np.float64).reshape(-1, 4),
            "classes": np.array(classes, np.int64)}


def coco_metrics(truth: list, detections: list) -> dict:
    """COCO metrics (``COCO_STATS`` and ``AP[<class>]``) of ``detections`` against ``truth``.

    Both are lists with one entry per image: ``truth`` dicts with ``height``, ``width``,
    ``boxes`` (normalised ``[ymin, xmin, ymax, xmax]``) and ``classes``; ``detections`` dicts
    with ``boxes``, ``scores`` and ``classes`` of the same image.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def pixels(box, height, width):
        ymin, xmin, ymax, xmax = box
        return [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]

    images, annotations, results = [], [], []
    for image_id, (image, found) in enumerate(zip(truth, detections), start=1):
        images.append({"id": image_id, "height": image["height"], "width": image["width"]})
        for box, label in zip(image["boxes"], image["classes"]):
            xywh = pixels(box, image["height"], image["width"])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(label), "bbox": xywh,
                                "area": xywh[2] * xywh[3], "iscrowd": 0})
        for box, score, label in zip(found["boxes"], found["scores"], found["classes"]):
            results.append({"image_id": image_id, "category_id": int(label),
                            "bbox": pixels(box, image["height"], image["width"]),
                            "score": float(score)})
    if not annotations:
        raise ValueError("no boxes to evaluate against: the records annotate no garment boxes")
    ground = COCO()
    ground.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": i, "name": n} for i, n in NAMES.items()]}
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
        found = ground.loadRes(results) if results else COCO()
        evaluator = COCOeval(ground, found, "bbox")
        if not results:
            return {**{name: 0.0 for name in COCO_STATS},
                    **{f"AP[{n}]": 0.0 for n in NAMES.values()}}
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {name: max(0.0, float(v)) for name, v in zip(COCO_STATS, evaluator.stats)}
    # precision[iou, recall, class, area=all, max detections=100]
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    for index, class_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, index]
        values = values[values > -1]
        if values.size:  # a class absent from the truth has no AP
            metrics[f"AP[{NAMES[class_id]}]"] = float(values.mean())
    return metrics


def prior_detections(truth: list) -> list:
    """A detector that ignores the image: each class's mean box, scored by the class's share
    of the boxes, on every image."""
    boxes = np.concatenate([t["boxes"] for t in truth]) if truth else np.zeros((0, 4))
    classes = np.concatenate([t["classes"] for t in truth]) if truth else np.zeros(0, int)
    present = sorted(set(classes.tolist()))
    prior = {"boxes": np.array([boxes[classes == c].mean(axis=0) for c in present]),
             "scores": np.array([(classes == c).mean() for c in present]),
             "classes": np.array(present)}
    return [prior] * len(truth)


def draw(encoded: bytes, found: dict, truth: Optional[dict] = None, min_score: float = 0.3):
    """The image with ``truth`` boxes (white, black-edged) and ``found`` boxes scoring at least
    ``min_score`` in the study's class colours; PIL image."""
    from trainer.evaluation.plots import draw_boxes
    shown = [i for i, (score, label) in enumerate(zip(found["scores"], found["classes"]))
             if score >= min_score and int(label) in NAMES]
    return draw_boxes(encoded, [found["boxes"][i] for i in shown],
                      [NAMES[int(found["classes"][i])] for i in shown],
                      [float(found["scores"][i]) for i in shown],
                      truth_boxes=(truth or {}).get("boxes", []))


def served_detections(outputs: dict) -> list:
    """Per image, the kept detections of a served batch (``num_detections`` of each)."""
    found = []
    for row in range(len(outputs["num_detections"])):
        count = int(outputs["num_detections"][row])
        found.append({"boxes": np.asarray(outputs["detection_boxes"][row][:count]),
                      "scores": np.asarray(outputs["detection_scores"][row][:count]),
                      "classes": np.asarray(outputs["detection_classes"][row][:count]).astype(
                          int)})
    return found


def evaluate(model_dir: str, data_pattern: str, batch_size: int = 32,
             progress: Optional[Callable] = None, output_dir: Optional[str] = None,
             gallery_size: int = 8) -> dict:
    """COCO metrics of the detector at ``model_dir`` (a SavedModel or a folder of versions) on
    the records matching ``data_pattern``, with the prior-boxes baseline (``prior_boxes_*``).
    With ``output_dir``, the first ``gallery_size`` images are drawn into its ``gallery``
    folder with predicted and true boxes."""
    import tensorflow as tf

    from schemas.serving_api import latest_version
    from trainer.export.records import record_dataset
    from trainer.families.detector.export import INPUT_NAME, TF_EXAMPLE
    export_dir = latest_version(model_dir)
    serve = tf.saved_model.load(export_dir).signatures[TF_EXAMPLE]
    truth, found, skipped, gallery = [], [], 0, []
    for batch in record_dataset(data_pattern).batch(batch_size):
        records = batch.numpy()
        parsed = [_parse(r) for r in records]
        keep = [i for i, p in enumerate(parsed) if len(p["classes"])]
        skipped += len(records) - len(keep)
        if not keep:
            continue
        outputs = {k: v.numpy() for k, v in serve(**{INPUT_NAME: tf.constant(
            [records[i] for i in keep])}).items()}
        detections = served_detections(outputs)
        truth += [parsed[i] for i in keep]
        found += detections
        for i, detected in zip(keep, detections):
            if len(gallery) < gallery_size:
                gallery.append((records[i], detected, parsed[i]))
        if progress:
            progress(len(truth))
    if not truth:
        raise ValueError(f"no record of {data_pattern} annotates a garment box")
    result = {"model": export_dir, "data": data_pattern, "examples": len(truth),
              "skipped_without_boxes": skipped}
    result.update(coco_metrics(truth, found))
    baseline = coco_metrics(truth, prior_detections(truth))
    result.update({BASELINE_PREFIX + name: baseline[name] for name in COCO_STATS})
    if output_dir:
        write_gallery(os.path.join(output_dir, GALLERY_FOLDER), gallery)
    return result


def write_gallery(folder: str, items) -> list:
    """Draws ``(serialized record, detections, truth)`` items as PNGs in ``folder``."""
    import tensorflow as tf
    os.makedirs(folder, exist_ok=True)
    paths = []
    for index, (record, detected, truth) in enumerate(items):
        encoded = tf.train.Example.FromString(record).features.feature[
            F.IMAGE_ENCODED].bytes_list.value[0]
        path = os.path.join(folder, f"{index:02d}_{truth['source_id'] or index}.png")
        draw(encoded, detected, truth).save(path)
        paths.append(path)
    return paths


def report(evaluation_uri: str, model_uri: str) -> reports.EvaluationSummary:
    """The detector's evaluation: COCO metrics beside the baseline's, per-class AP bars and
    the gallery (images embedded, so the report is one file)."""
    summary = reports.read_offline_evaluation(evaluation_uri)
    per_class = {k[3:-1]: v for k, v in summary.overall.items() if k.startswith("AP[")}
    if per_class:
        summary.sections.append(reports.Section("AP per class (IoU .5:.95)", bars=per_class))
    folder = os.path.join(evaluation_uri, GALLERY_FOLDER)
    if os.path.isdir(folder):
        images = []
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as handle:
                data = base64.b64encode(handle.read()).decode()
            images.append(f"<figure style='display:inline-block;margin:4px'>"
                          f"<img src='data:image/png;base64,{data}'><figcaption>"
                          f"{name[3:-4]}</figcaption></figure>")
        legend = ", ".join(f"<span style='color:rgb{SUPER_CATEGORY_COLOURS[n]}'>{n}</span>"
                           for n in F.SUPER_CATEGORIES)
        summary.sections.append(reports.Section(
            "Eval images: predictions (score ≥ 0.3) and truth (white, black-edged)",
            html=f"<p>{legend}</p>" + "".join(images)))
    return summary

