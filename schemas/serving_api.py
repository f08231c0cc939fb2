"""The serving contract: the TF Serving names and folder layout that model export and the model
server must agree on, defined once and imported by both sides (``trainer/`` exports, ``serving/``
serves; neither imports the other).

TF Serving's own names (``tensorflow_serving/apis``, ``signature_constants``) come first, then the
signatures and inputs this project's exported models add. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import logging
import os
import re

# --- TF Serving -------------------------------------------------------------------------------
# SignatureDef method names (tensorflow/python/saved_model/signature_constants.py).
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# The signature a request that names none runs (DEFAULT_SERVING_SIGNATURE_DEF_KEY).
SERVING_DEFAULT = "serving_default"
# Classify and Regress signatures take serialized tf.Examples under this input key
# (CLASSIFY_INPUTS / REGRESS_INPUTS) and answer with these outputs.
CLASSIFY_INPUTS = "inputs"
CLASSES_OUTPUT = "classes"
SCORES_OUTPUT = "scores"
REGRESS_OUTPUTS = "outputs"
# A model version is ``<base path>/<integer version>/`` holding a SavedModel; warm-up requests
# are TFRecords of PredictionLog protos in ``assets.extra/`` (at most 1000 are replayed).
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000

# --- this project's exported models -----------------------------------------------------------
# The input of predict signatures on serialized tf.Examples (``serving_default``,
# ``transform_features``); classify signatures use TF Serving's CLASSIFY_INPUTS instead.
EXAMPLES_INPUT = "examples"
# The input of signatures on encoded image bytes (JPEG/PNG/GIF/BMP).
IMAGES_INPUT = "images"
SERVING_IMAGES = "serving_images"  # encoded image bytes → the model's outputs
CLASSIFY = "classify"  # TF Serving's classify method on serialized tf.Examples
TRANSFORM_FEATURES = "transform_features"  # serialized tf.Examples → TF Transform features
# One class name per line (a name may contain spaces), in score-column order.
CLASS_NAMES_ASSET = "class_names.txt"
# A classifier's best class and its score; the tagger's decoded 0/1 tags.
TOP_CLASS_OUTPUT = "top_class"
TOP_SCORE_OUTPUT = "top_score"
TAGS_OUTPUT = "tags"
# A detector's outputs, as the TF Object Detection API names them: normalised
# [ymin, xmin, ymax, xmax] boxes, scores, class ids (floats, 1 = the first class; 0 is the
# background) and the count of detections per image.
DETECTION_BOXES = "detection_boxes"
DETECTION_SCORES = "detection_scores"
DETECTION_CLASSES = "detection_classes"
NUM_DETECTIONS = "num_detections"
DETECTION_OUTPUTS = (DETECTION_BOXES, DETECTION_SCORES, DETECTION_CLASSES, NUM_DETECTIONS)
# An embedding model's signatures: images (serving_default on tf.Examples, serving_images on
# bytes) and texts (embed_text on strings, input ``text``) → ``embedding`` [batch, d] float32,
# L2-normalised, so a dot product is the cosine similarity.
EMBED_TEXT = "embed_text"
TEXT_INPUT = "text"
EMBEDDING_OUTPUT = "embedding"
# A JSON object of what an embedding model's users need beside it (e.g. its zero-shot prompt).
EMBEDDING_INFO_ASSET = "embedding.json"

_SHARD = re.compile(r"^variables\.data-(\d+)-of-(\d+)$")


def warmup_path(export_dir: str) -> str:
    """Where TF Serving looks for ``export_dir``'s warm-up requests."""
    return os.path.join(export_dir, ASSETS_EXTRA, WARMUP_FILE)


def class_names_path(export_dir: str) -> str:
    """The class-names asset of an exported classifier."""
    return os.path.join(export_dir, ASSETS_EXTRA, CLASS_NAMES_ASSET)


def read_class_names(export_dir: str) -> list[str]:
    """The class names of an exported classifier, one per line (``[]`` when it has none)."""
    path = class_names_path(export_dir)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [line for line in handle.read().split("\n") if line]


def is_complete_saved_model(path: str) -> bool:
    """True when ``path`` holds a SavedModel graph and all the variables shards it names."""
    if not any(os.path.isfile(os.path.join(path, name))
               for name in ("saved_model.pb", "saved_model.pbtxt")):
        return False
    variables = os.path.join(path, "variables")
    if not os.path.isdir(variables):
        return True  # a SavedModel without variables is complete with its graph
    names = os.listdir(variables)
    if "variables.index" not in names:
        return False
    shards = [m for m in map(_SHARD.match, names) if m]
    if not shards:
        return False
    expected = int(shards[0].group(2))
    return len({m.group(1) for m in shards if int(m.group(2)) == expected}) == expected


MAX_VERSION = 2 ** 63 - 1  # versions are int64 in TF Serving's protos
_REPORTED_VERSION_FOLDERS: set = set()


def list_versions(base_path: str) -> dict[int, str]:
    """Complete version folders under ``base_path``: ``{version: path}``. A folder named by
    ASCII digits beyond the int64 range cannot be a version (TF Serving's version fields are
    int64): it is ignored, with one log line."""
    if not os.path.isdir(base_path):
        return {}
    found = {}
    for name in os.listdir(base_path):
        path = os.path.join(base_path, name)
        if not (name.isascii() and name.isdigit()) or not os.path.isdir(path):
            continue
        if int(name) > MAX_VERSION:
            if path not in _REPORTED_VERSION_FOLDERS:
                _REPORTED_VERSION_FOLDERS.add(path)
                logging.getLogger(__name__).warning(
                    "ignoring %s: version %s is beyond the int64 range", path, name)
            continue
        if is_complete_saved_model(path):
            found[int(name)] = path
    return found


def latest_version(model_path: str) -> str:
    """``model_path`` itself if it is a SavedModel, else its highest complete version folder."""
    if os.path.exists(os.path.join(model_path, "saved_model.pb")):
        return model_path
    versions = list_versions(model_path)
    if not versions:
        raise FileNotFoundError(f"{model_path} is neither a SavedModel nor a folder of versions")
    return versions[max(versions)]


def register_text_ops() -> bool:
    """Registers TensorFlow Text's ops (tokenizers) when the package is installed, as
    ``tensorflow_model_server`` links them in: a model that tokenizes text in its graph (an
    embedding model's text signature) loads only with them. Returns whether they are there."""
    try:
        import tensorflow_text  # noqa: F401  (imported for its op registrations)
    except ImportError:
        return False
    return True
