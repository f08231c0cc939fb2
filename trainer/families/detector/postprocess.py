"""The pipeline study's post-processing of detections, as TensorFlow ops in the served graph.

The study's detectors made two kinds of mistakes that simple geometry fixes: hands (and bags)
detected as footwear, and bare legs below shorts detected as a second lower-body garment. The
rules, each set in :class:`DetectorConfig` and off when its setting is 0/False:

- detections scoring under ``score_threshold`` are dropped;
- footwear whose centre lies above ``footwear_min_figure_height`` of the figure (the vertical
  span of all the image's detections) is dropped: shoes are at the bottom of a figure;
- with ``drop_footwear_touching_upper_body``, footwear that overlaps an upper-body box is
  dropped (a hand at a sleeve);
- of two lower-body boxes whose IoU exceeds ``lower_body_overlap_keep_smaller``, the larger is
  dropped.

The kept detections move to the front in score order, the rest are zeroed, and
``num_detections`` counts the kept ones: the outputs keep the OD API's fixed shapes.
"""

from __future__ import annotations

import tensorflow as tf

from schemas import features as F

UPPER_BODY_ID = float(F.SUPER_CATEGORY_IDS[F.UPPER_BODY])
LOWER_BODY_ID = float(F.SUPER_CATEGORY_IDS[F.LOWER_BODY])
FOOTWEAR_ID = float(F.SUPER_CATEGORY_IDS[F.FOOTWEAR])


def _areas(boxes):
    return tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * tf.maximum(
        boxes[..., 3] - boxes[..., 1], 0.0)


def _pairwise_intersections(boxes):
    """[batch, n, n] intersection areas of every pair of ``[ymin, xmin, ymax, xmax]`` boxes."""
    a, b = boxes[:, :, None, :], boxes[:, None, :, :]
    height = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    width = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    return height * width


def keep_mask(boxes, scores, classes, num_detections, config):
    """[batch, n] True for the detections the rules keep (see the module docstring).

    ``boxes`` [batch, n, 4] normalised ``[ymin, xmin, ymax, xmax]``, ``scores`` and
    ``classes`` (super-category ids) [batch, n], ``num_detections`` [batch].
    """
    n = tf.shape(scores)[1]
    valid = tf.range(n)[None, :] < tf.cast(num_detections, tf.int32)[:, None]
    keep = valid & (scores >= config.score_threshold)
    footwear = tf.equal(classes, FOOTWEAR_ID)
    if config.footwear_min_figure_height > 0:
        top = tf.reduce_min(tf.where(keep, boxes[..., 0], 1.0), axis=1, keepdims=True)
        bottom = tf.reduce_max(tf.where(keep, boxes[..., 2], 0.0), axis=1, keepdims=True)
        centre = (boxes[..., 0] + boxes[..., 2]) / 2.0
        too_high = centre < top + config.footwear_min_figure_height * (bottom - top)
        keep &= ~(footwear & too_high)
    intersections = _pairwise_intersections(boxes)
    if config.drop_footwear_touching_upper_body:
        upper = keep & tf.equal(classes, UPPER_BODY_ID)
        touches = tf.reduce_any((intersections > 0.0) & upper[:, None, :], axis=2)
        keep &= ~(footwear & touches)
    if config.lower_body_overlap_keep_smaller > 0:
        lower = keep & tf.equal(classes, LOWER_BODY_ID)
        areas = _areas(boxes)
        union = areas[:, :, None] + areas[:, None, :] - intersections
        iou = tf.math.divide_no_nan(intersections, union)
        pair = lower[:, :, None] & lower[:, None, :] & ~tf.eye(n, dtype=tf.bool)[None]
        overlapping = pair & (iou > config.lower_body_overlap_keep_smaller)
        # Ties in area keep the higher-scoring box (the earlier one: detections come sorted).
        index = tf.range(n)
        larger = (areas[:, :, None] > areas[:, None, :]) | (
            tf.equal(areas[:, :, None], areas[:, None, :]) & (index[:, None] > index[None, :]))
        keep &= ~tf.reduce_any(overlapping & larger, axis=2)
    return keep


def apply(detections: dict, config) -> dict:
    """The OD API outputs of ``detections`` after the rules: kept detections first in score
    order, the rest zeroed, ``num_detections`` their count (same dtypes and shapes)."""
    boxes, scores = detections["detection_boxes"], detections["detection_scores"]
    classes, num = detections["detection_classes"], detections["num_detections"]
    keep = keep_mask(boxes, scores, tf.cast(classes, tf.float32), num, config)
    order = tf.argsort(tf.where(keep, scores, -1.0), axis=1, direction="DESCENDING", stable=True)
    keep = tf.gather(keep, order, batch_dims=1)
    zero_dropped = lambda values: tf.where(  # noqa: E731
        tf.reshape(keep, tf.concat([tf.shape(keep), tf.ones([tf.rank(values) - 2], tf.int32)],
                                   0)), values, tf.zeros_like(values))
    result = dict(detections)
    for key in ("detection_boxes", "detection_scores", "detection_classes"):
        result[key] = zero_dropped(tf.gather(detections[key], order, batch_dims=1))
    result["num_detections"] = tf.cast(tf.reduce_sum(tf.cast(keep, tf.int32), axis=1),
                                       num.dtype)
    return result
