"""The garments composite SavedModel: the pushed detector finds the garments, each detection
scoring at least ``MIN_SCORE`` is cropped (its box widened by ``CROP_MARGIN`` on every side and
clamped, as ``ObjectCrops`` cuts the category family's training examples) and classified by the
pushed category model and attribute tagger — one call, one answer per image, as the pipeline
study's merged pipeline writes one JSON per image.

Signature ``serving_default`` (input ``inputs``: encoded images of any sizes) answers the
detector's OD API outputs plus, per detection (padded to the detector's ``max_detections``):
``garment_category`` (the category model's top class; empty where not classified),
``garment_category_score``, ``garment_attributes`` (the tagger's 0/1 tags) and, per image,
``attribute_names`` and ``classified_detections`` (how many detections were classified).

The three SavedModels are loaded and saved inside the composite (their signatures called as
they are served), so the composite serves alone, with no reference to their folders.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from schemas.serving_api import (DETECTION_BOXES, DETECTION_OUTPUTS, DETECTION_SCORES,
                                 IMAGES_INPUT, NUM_DETECTIONS, SERVING_DEFAULT, SERVING_IMAGES,
                                 TAGS_OUTPUT, TOP_CLASS_OUTPUT, TOP_SCORE_OUTPUT,
                                 read_class_names)
from trainer.composites.garments.spec import INPUT_NAME
from trainer.preprocessing import checked_decode

MIN_SCORE = 0.5  # detections under this are not classified (the study used 0.99)
CROP_MARGIN = 0.1
CATEGORY, CATEGORY_SCORE = "garment_category", "garment_category_score"
ATTRIBUTES, ATTRIBUTE_NAMES = "garment_attributes", "attribute_names"
CLASSIFIED = "classified_detections"


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

    def __init__(self, detector_dir: str, category_dir: str, attributes_dir: str,
                 min_score: float = MIN_SCORE, margin: float = CROP_MARGIN):
        super().__init__(name="garments")
        self.detector = tf.saved_model.load(detector_dir)
        self.category = tf.saved_model.load(category_dir)
        self.attributes = tf.saved_model.load(attributes_dir)
        self.attribute_names = tf.constant(read_class_names(attributes_dir))
        self._min_score, self._margin = float(min_score), float(margin)

    def _crops(self, images, boxes, counts):
        """Ragged [batch, (classified)] PNG crops of each image's first ``counts`` boxes."""
        def of_image(args):
            encoded, image_boxes, count = args
            image = checked_decode(encoded)
            return tf.map_fn(lambda box: _crop(image, box, self._margin), image_boxes[:count],
                             fn_output_signature=tf.string)
        return tf.map_fn(of_image, (images, boxes, counts),
                         fn_output_signature=tf.RaggedTensorSpec([None], tf.string))

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

        def classify():
            category = self.category.signatures[SERVING_IMAGES](**{IMAGES_INPUT: crops})
            tags = self.attributes.signatures[SERVING_IMAGES](**{IMAGES_INPUT: crops})
            return (category[TOP_CLASS_OUTPUT], category[TOP_SCORE_OUTPUT],
                    tf.cast(tags[TAGS_OUTPUT], tf.float32))
        # A classifier cannot take an empty batch (its batch normalisation fails on it).
        top_class, top_score, tags = tf.cond(
            tf.size(crops) > 0, classify,
            lambda: (tf.zeros([0], tf.string), tf.zeros([0]), tf.zeros([0, tag_count])))
        batch = tf.shape(scores)[0]

        def per_detection(values, default, trailing=()):
            ragged = tf.RaggedTensor.from_row_lengths(values, tf.cast(counts, tf.int64))
            return ragged.to_tensor(default_value=default,
                                    shape=tf.stack([batch, slots, *trailing]))
        names = self.attribute_names
        outputs = {key: detections[key] for key in DETECTION_OUTPUTS}
        outputs.update({
            CATEGORY: per_detection(top_class, ""),
            CATEGORY_SCORE: per_detection(top_score, 0.0),
            ATTRIBUTES: per_detection(tags, 0.0, [tag_count]),
            ATTRIBUTE_NAMES: tf.tile(names[None, :], [batch, 1]),
            CLASSIFIED: tf.cast(counts, tf.float32),
        })
        return outputs


def build(model_dirs: dict, export_dir: str, warmup_images: Sequence[bytes] = ()) -> str:
    """Writes the composite SavedModel of the ``detector``, ``category`` and ``attributes``
    SavedModels in ``model_dirs`` to ``export_dir``, with warm-up requests."""
    from trainer.export import saved_model, warmup
    module = GarmentsModule(model_dirs["detector"], model_dirs["category"],
                            model_dirs["attributes"])
    logs = [warmup.predict_log("garments", SERVING_DEFAULT, {INPUT_NAME: [image]})
            for image in warmup_images]
    return saved_model.save(export_dir, module,
                            {SERVING_DEFAULT: module.serve.get_concrete_function()},
                            warmup_logs=logs)


def check_answer(outputs: dict, rows: int) -> None:
    """The infra validator's check: one row per image, the detector's outputs and the
    classifications per detection (ValueError otherwise)."""
    expected = set(DETECTION_OUTPUTS) | {CATEGORY, CATEGORY_SCORE, ATTRIBUTES, CLASSIFIED}
    missing = sorted(expected - set(outputs))
    if missing:
        raise ValueError(f"the garments answer lacks {missing}")
    for key in expected:
        value = np.asarray(outputs[key])
        if value.shape[:1] != (rows,):
            raise ValueError(f"output {key!r} has shape {list(value.shape)}, expected {rows} "
                             "rows")
    boxes = np.asarray(outputs[DETECTION_BOXES])
    if boxes.ndim != 3 or np.asarray(outputs[CATEGORY]).shape != boxes.shape[:2]:
        raise ValueError("garment categories must be one per detection slot")
