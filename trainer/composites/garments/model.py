"""The garments composite SavedModel: the pushed detector finds the garments, each detection
scoring at least ``MIN_SCORE`` is cropped (its box widened by ``CROP_MARGIN`` on every side and
clamped, as ``ObjectCrops`` cuts the category family's training examples) and classified by the
pushed category model and attribute tagger, and the brand model names the image's brand — one
call, one answer per image, as the pipeline study's merged pipeline writes one JSON per image.

Signature ``serving_default`` (input ``inputs``: encoded images of any sizes) answers the
detector's OD API outputs plus, per detection (padded to the detector's ``max_detections``):
``garment_categories`` and ``garment_category_scores`` (the category model's top ``TOP_K``;
empty where not classified) and ``garment_attributes`` (the tagger's 0/1 tags), and per image
``attribute_names``, ``classified_detections`` (how many detections were classified),
``brand`` and ``brand_score``.

The four SavedModels are loaded and saved inside the composite (their signatures called as
they are served), so the composite serves alone, with no reference to their folders; a real
``tensorflow_model_server`` serves it too. :func:`build` checks the composite answers what the
separate models answer on the same crops before it returns.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from schemas.serving_api import (CLASSES_OUTPUT, DETECTION_BOXES, DETECTION_OUTPUTS,
                                 DETECTION_SCORES, IMAGES_INPUT, NUM_DETECTIONS, SCORES_OUTPUT,
                                 SERVING_DEFAULT, SERVING_IMAGES, TAGS_OUTPUT, TOP_CLASS_OUTPUT,
                                 TOP_SCORE_OUTPUT, read_class_names)
from trainer.composites.garments.spec import INPUT_NAME
from trainer.preprocessing import checked_decode

MIN_SCORE = 0.5  # detections under this are not classified (the study used 0.99)
CROP_MARGIN = 0.1
TOP_K = 3
CATEGORIES, CATEGORY_SCORES = "garment_categories", "garment_category_scores"
ATTRIBUTES, ATTRIBUTE_NAMES = "garment_attributes", "attribute_names"
CLASSIFIED = "classified_detections"
BRAND, BRAND_SCORE = "brand", "brand_score"


def _crop(image, box, margin: float):
    """PNG bytes of ``box`` (normalised ``[ymin, xmin, ymax, xmax]``) widened by ``margin`` of
    its size on every side, clamped to the image, at least one pixel."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    height, width = shape[0], shape[1]
    ymin, xmin, ymax, xmax = box[0], box[1], box[2], box[3]
    dy, dx = (ymax - ymin) * margin, (xmax - xmin) * margin
    top = tf.cast(tf.floor(tf.maximum(0.0, ymin - dy) * height), tf.int32)
    left = tf.cast(tf.floor(tf.maximum(0.0, xmin - dx) * width), tf.int32)
    bottom = tf.cast(tf.math.ceil(tf.minimum(1.0, ymax + dy) * height), tf.int32)
    right = tf.cast(tf.math.ceil(tf.minimum(1.0, xmax + dx) * width), tf.int32)
    top = tf.minimum(top, tf.cast(height, tf.int32) - 1)
    left = tf.minimum(left, tf.cast(width, tf.int32) - 1)
    bottom, right = tf.maximum(bottom, top + 1), tf.maximum(right, left + 1)
    return tf.io.encode_png(image[top:bottom, left:right])


class GarmentsModule(tf.Module):
    """The composite (see the module docstring)."""

    def __init__(self, model_dirs: dict, min_score: float = MIN_SCORE,
                 margin: float = CROP_MARGIN):
        super().__init__(name="garments")
        self.detector = tf.saved_model.load(model_dirs["detector"])
        self.category = tf.saved_model.load(model_dirs["category"])
        self.attributes = tf.saved_model.load(model_dirs["attributes"])
        self.brand = tf.saved_model.load(model_dirs["brand"])
        self.attribute_names = tf.constant(read_class_names(model_dirs["attributes"]))
        self._top_k = min(TOP_K, len(read_class_names(model_dirs["category"])) or TOP_K)
        self._min_score, self._margin = float(min_score), float(margin)

    def parts(self) -> dict:
        """The loaded part SavedModels by part name."""
        return {"detector": self.detector, "category": self.category,
                "attributes": self.attributes, "brand": self.brand}

    def _crops(self, images, boxes, counts):
        """Ragged [batch, (classified)] PNG crops of each image's first ``counts`` boxes."""
        def of_image(args):
            encoded, image_boxes, count = args
            image = checked_decode(encoded)
            return tf.map_fn(lambda box: _crop(image, box, self._margin), image_boxes[:count],
                             fn_output_signature=tf.string)
        return tf.map_fn(of_image, (images, boxes, counts),
                         fn_output_signature=tf.RaggedTensorSpec([None], tf.string))

    def _classify(self, crops):
        """Top-k categories, their scores and the 0/1 tags of a [k] batch of PNG crops."""
        category = self.category.signatures[SERVING_IMAGES](**{IMAGES_INPUT: crops})
        tags = self.attributes.signatures[SERVING_IMAGES](**{IMAGES_INPUT: crops})
        top = tf.math.top_k(category[SCORES_OUTPUT], k=self._top_k)
        names = tf.gather(category[CLASSES_OUTPUT], top.indices, batch_dims=1)
        return names, top.values, tf.cast(tags[TAGS_OUTPUT], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def serve(self, inputs):
        detections = self.detector.signatures[SERVING_DEFAULT](**{INPUT_NAME: inputs})
        scores = detections[DETECTION_SCORES]
        slots = tf.shape(scores)[1]
        # Detections come sorted by score: the classified ones are a prefix of each row.
        valid = tf.range(slots)[None, :] < tf.cast(detections[NUM_DETECTIONS], tf.int32)[:, None]
        counts = tf.reduce_sum(tf.cast(valid & (scores >= self._min_score), tf.int32), axis=1)
        crops = self._crops(inputs, detections[DETECTION_BOXES], counts).flat_values
        tag_count = int(self.attribute_names.shape[0])
        # A classifier cannot take an empty batch (its batch normalisation fails on it).
        names, top_scores, tags = tf.cond(
            tf.size(crops) > 0, lambda: self._classify(crops),
            lambda: (tf.zeros([0, self._top_k], tf.string), tf.zeros([0, self._top_k]),
                     tf.zeros([0, tag_count])))
        brand = self.brand.signatures[SERVING_IMAGES](**{IMAGES_INPUT: inputs})
        batch = tf.shape(scores)[0]

        def per_detection(values, default, width):
            ragged = tf.RaggedTensor.from_row_lengths(values, tf.cast(counts, tf.int64))
            return ragged.to_tensor(default_value=default, shape=tf.stack([batch, slots, width]))
        outputs = {key: detections[key] for key in DETECTION_OUTPUTS}
        outputs.update({
            CATEGORIES: per_detection(names, "", self._top_k),
            CATEGORY_SCORES: per_detection(top_scores, 0.0, self._top_k),
            ATTRIBUTES: per_detection(tags, 0.0, tag_count),
            ATTRIBUTE_NAMES: tf.tile(self.attribute_names[None, :], [batch, 1]),
            CLASSIFIED: tf.cast(counts, tf.float32),
            BRAND: brand[TOP_CLASS_OUTPUT],
            BRAND_SCORE: brand[TOP_SCORE_OUTPUT],
        })
        return outputs


def build(model_dirs: dict, export_dir: str, warmup_images: Sequence[bytes] = ()) -> str:
    """Writes the composite SavedModel of the ``detector``, ``category``, ``attributes`` and
    ``brand`` SavedModels in ``model_dirs`` to ``export_dir``, with warm-up requests, and checks
    it answers as the separate models do on ``warmup_images`` (ValueError otherwise)."""
    from trainer.export import saved_model, warmup
    module = GarmentsModule(model_dirs)
    logs = [warmup.predict_log("garments", SERVING_DEFAULT, {INPUT_NAME: [image]})
            for image in warmup_images]
    saved_model.save(export_dir, module, {SERVING_DEFAULT: module.serve.get_concrete_function()},
                     warmup_logs=logs)
    if warmup_images:
        # The parts already loaded for the composite: loading four SavedModels again costs
        # about half a minute in the README run.
        check_against_parts(export_dir, module.parts(), warmup_images)
    return export_dir


def check_against_parts(export_dir: str, parts: dict, images: Sequence[bytes],
                        tolerance: float = 1e-4) -> None:
    """Raises ValueError unless the composite at ``export_dir`` answers, for each image, what
    the separate models answer: the detector's detections, the category model's top classes
    and scores and the tagger's tags on each classified detection's crop, the brand model's
    brand of the image. ``parts`` maps each part to its SavedModel folder or loaded SavedModel.
    """
    composite = tf.saved_model.load(export_dir).signatures[SERVING_DEFAULT]
    parts = {name: tf.saved_model.load(part) if isinstance(part, str) else part
             for name, part in parts.items()}
    for index, image in enumerate(images):
        batch = tf.constant([image])
        merged = {k: v.numpy() for k, v in composite(**{INPUT_NAME: batch}).items()}
        found = {k: v.numpy() for k, v in parts["detector"].signatures[SERVING_DEFAULT](
            **{INPUT_NAME: batch}).items()}
        problems = [k for k in DETECTION_OUTPUTS
                    if not np.allclose(merged[k], found[k], atol=tolerance)]
        count = int(merged[CLASSIFIED][0])
        if count:
            decoded = checked_decode(tf.constant(image))
            crops = tf.stack([_crop(decoded, tf.constant(box), CROP_MARGIN)
                              for box in found[DETECTION_BOXES][0][:count]])
            category = parts["category"].signatures[SERVING_IMAGES](**{IMAGES_INPUT: crops})
            order = np.argsort(-category[SCORES_OUTPUT].numpy(), axis=1, kind="stable")
            k = merged[CATEGORIES].shape[-1]
            expected_names = np.take_along_axis(category[CLASSES_OUTPUT].numpy(),
                                                order[:, :k], axis=1)
            expected_scores = np.take_along_axis(category[SCORES_OUTPUT].numpy(),
                                                 order[:, :k], axis=1)
            if not np.allclose(merged[CATEGORY_SCORES][0][:count], expected_scores,
                               atol=tolerance):
                problems.append(CATEGORY_SCORES)
            elif (merged[CATEGORIES][0][:count][:, 0] != expected_names[:, 0]).any():
                problems.append(CATEGORIES)
            tags = parts["attributes"].signatures[SERVING_IMAGES](**{IMAGES_INPUT: crops})
            if not np.array_equal(merged[ATTRIBUTES][0][:count], tags[TAGS_OUTPUT].numpy()):
                problems.append(ATTRIBUTES)
        brand = parts["brand"].signatures[SERVING_IMAGES](**{IMAGES_INPUT: batch})
        if merged[BRAND][0] != brand[TOP_CLASS_OUTPUT].numpy()[0] or not np.isclose(
                merged[BRAND_SCORE][0], brand[TOP_SCORE_OUTPUT].numpy()[0], atol=tolerance):
            problems.append(BRAND)
        if problems:
            raise ValueError(f"the composite answers image {index} unlike the separate models: "
                             f"{problems}")


def check_answer(outputs: dict, rows: int) -> None:
    """The infra validator's check: one row per image, the detector's outputs and the
    classifications per detection (ValueError otherwise)."""
    expected = set(DETECTION_OUTPUTS) | {CATEGORIES, CATEGORY_SCORES, ATTRIBUTES, CLASSIFIED,
                                         BRAND, BRAND_SCORE}
    missing = sorted(expected - set(outputs))
    if missing:
        raise ValueError(f"the garments answer lacks {missing}")
    for key in expected:
        value = np.asarray(outputs[key])
        if value.shape[:1] != (rows,):
            raise ValueError(f"output {key!r} has shape {list(value.shape)}, expected {rows} "
                             "rows")
    boxes = np.asarray(outputs[DETECTION_BOXES])
    if boxes.ndim != 3 or np.asarray(outputs[CATEGORIES]).shape[:2] != boxes.shape[:2]:
        raise ValueError("garment categories must be one row per detection slot")
