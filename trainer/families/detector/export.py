"""The detector's serving SavedModel, written by Model Garden's detection export module.

Signatures (input ``inputs``, a batch of strings, as Model Garden's exports name it):

- ``serving_default``: encoded image bytes (JPEG/PNG/GIF/BMP, any sizes in one batch);
- ``tf_example``: serialized ``tf.Example`` records (their ``image/encoded``).

Both answer the OD API's outputs: ``detection_boxes`` [batch, max_detections, 4] normalised
``[ymin, xmin, ymax, xmax]`` of the input image, ``detection_scores``, ``detection_classes``
(super-category ids as floats, 1 = the first line of the ``label_map.pbtxt`` asset) and
``num_detections`` (float), after the pipeline study's post-processing rules
(:mod:`trainer.families.detector.postprocess`).

Model Garden's module stacks decoded images before resizing them, so one batch could not hold
two image sizes; here each image is decoded (with the project's decompression-bomb checks) and
resized on its own, then the batch runs once.
"""

from __future__ import annotations

import os

import tensorflow as tf

from schemas import features as F
from schemas.serving_api import ASSETS_EXTRA, DETECTION_OUTPUTS, SERVING_DEFAULT
from trainer.families.detector import postprocess
from trainer.families.detector.spec import INPUT_NAME, TF_EXAMPLE
from trainer.preprocessing import checked_decode

LABEL_MAP_ASSET = "label_map.pbtxt"
OUTPUTS = DETECTION_OUTPUTS


def label_map() -> str:
    """The OD API's label map (``item { id: 1 name: 'upper_body' }``...) of the classes."""
    return "".join(f"item {{\n  id: {F.SUPER_CATEGORY_IDS[name]}\n  name: '{name}'\n}}\n"
                   for name in F.SUPER_CATEGORIES)


def export_module(experiment, model, config):
    """Model Garden's ``DetectionModule`` for the trained ``model``, taking encoded images of
    any size and applying ``config``'s post-processing rules."""
    from official.vision.serving import detection

    size = [config.input_size, config.input_size]

    class DetectorModule(detection.DetectionModule):
        def preprocess(self, encoded):
            def one(image_bytes):
                image = tf.cast(checked_decode(image_bytes), tf.float32)
                return self._build_inputs(image)
            anchor_specs = {
                str(level): tf.TensorSpec(
                    [-(-size[0] // 2 ** level), -(-size[1] // 2 ** level),
                     config.num_scales * len(config.aspect_ratios) * 4], tf.float32)
                for level in range(config.min_level, config.max_level + 1)}
            with tf.device("cpu:0"):
                return tf.map_fn(one, encoded, fn_output_signature=(
                    tf.TensorSpec(size + [3], tf.float32), anchor_specs,
                    tf.TensorSpec([4, 2], tf.float32)))

        # One trace shared by both signatures (tracing the detector takes seconds per trace).
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, encoded):
            detections = super().serve(encoded)
            if config.architecture != "retinanet":
                # Model Garden's export normalises and casts RetinaNet's outputs only.
                detections = self._normalize_coordinates(
                    detections, ["detection_boxes"], detections["image_info"])
                for key in ("detection_classes", "num_detections"):
                    detections[key] = tf.cast(detections[key], tf.float32)
            detections = postprocess.apply(detections, config)
            return {key: detections[key] for key in OUTPUTS}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
        def serve_images(self, inputs):
            return self.serve(inputs)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
        def serve_examples(self, inputs):
            parsed = tf.io.parse_example(
                inputs, {F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string)})
            return self.serve(parsed[F.IMAGE_ENCODED])

    module = DetectorModule(experiment, batch_size=None, input_image_size=size,
                            input_type="image_bytes", model=model, input_name=INPUT_NAME)
    # Saved through its variables only: a tracked tf_keras model would have every layer's call
    # traced into the SavedModel too (a minute on 2 cores, and nothing serving uses).
    module._delete_tracking("model")  # pylint: disable=protected-access
    module.model_variables = list(model.variables)
    return module


def save(export_dir: str, module, warmup_logs=()) -> str:
    """Writes the serving SavedModel (both signatures, the label map asset, warm-up requests)."""
    from trainer.export import saved_model
    saved_model.save(export_dir, module, {
        SERVING_DEFAULT: module.serve_images.get_concrete_function(),
        TF_EXAMPLE: module.serve_examples.get_concrete_function()},
        assets={LABEL_MAP_ASSET: label_map()}, warmup_logs=warmup_logs)
    return export_dir


def read_label_map(export_dir: str) -> dict:
    """``{class id: name}`` of an exported detector's label map asset."""
    import re
    with tf.io.gfile.GFile(os.path.join(export_dir, ASSETS_EXTRA, LABEL_MAP_ASSET)) as handle:
        text = handle.read()
    return {int(i): name for i, name in re.findall(r"id:\s*(\d+)\s*name:\s*'([^']*)'", text)}


def check_detections(outputs: dict, rows: int) -> None:
    """The infra validator's check of served detections: the OD API's outputs, one row per
    image, boxes normalised, counts within the rows (ValueError otherwise)."""
    import numpy as np
    missing = sorted(set(OUTPUTS) - set(outputs))
    if missing:
        raise ValueError(f"the detector's answer lacks {missing}")
    values = {k: np.asarray(outputs[k]) for k in OUTPUTS}
    if any(v.shape[:1] != (rows,) for v in values.values()):
        raise ValueError(f"expected {rows} rows, got shapes "
                         f"{ {k: list(v.shape) for k, v in values.items()} }")
    boxes, counts = values["detection_boxes"], values["num_detections"]
    if not np.isfinite(boxes).all() or boxes.min() < 0 or boxes.max() > 1:
        raise ValueError("detection boxes must be finite and normalised to [0, 1]")
    if (counts < 0).any() or (counts > boxes.shape[1]).any():
        raise ValueError(f"num_detections {counts.tolist()} outside 0..{boxes.shape[1]}")
