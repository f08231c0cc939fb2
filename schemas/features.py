"""The fashion TFRecord contract: feature keys and closed vocabularies.

Every module that reads or writes records names features through these constants; a test
checks them against ``schemas/schema.pbtxt`` so the code and the curated schema cannot drift.
Keys follow the TF Object Detection API where one exists; fashion-specific keys live under
``fashion/``. See ``schemas/README.md`` for the meaning of each key.
"""

from __future__ import annotations

import os
from types import MappingProxyType

# --- TF Object Detection API keys -------------------------------------------------------------
IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_SOURCE_ID = "image/source_id"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
OBJECT_CLASS_LABEL = "image/object/class/label"
OBJECT_CLASS_TEXT = "image/object/class/text"
# Image-level class, as in the OD API's classification keys: the image's main garment category.
IMAGE_CLASS_TEXT = "image/class/text"
SEGMENTATION_ENCODED = "image/segmentation/class/encoded"
SEGMENTATION_FORMAT = "image/segmentation/class/format"

# --- fashion keys -----------------------------------------------------------------------------
OBJECT_GARMENT_TEXT = "image/object/garment/text"
ATTRIBUTES = "fashion/attributes"
BRAND = "fashion/brand"
CAPTION = "fashion/caption"

BBOX_KEYS = (BBOX_XMIN, BBOX_YMIN, BBOX_XMAX, BBOX_YMAX)
OD_API_REQUIRED_KEYS = (IMAGE_ENCODED, IMAGE_FORMAT, IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_SOURCE_ID)
# Label features whose distributions are compared between catalog spans (TFDV drift
# comparators: L-infinity for these categorical ones, Jensen-Shannon for the numeric ones).
DRIFT_CATEGORICAL_FEATURES = (IMAGE_CLASS_TEXT, OBJECT_GARMENT_TEXT, OBJECT_CLASS_TEXT,
                              ATTRIBUTES, BRAND)
DRIFT_NUMERIC_FEATURES = (IMAGE_HEIGHT, IMAGE_WIDTH)
# Features a serving request carries; everything else is a label (TRAINING environment only).
SERVING_KEYS = (IMAGE_ENCODED,)
# Largest image (width x height) accepted anywhere, at import and at serving: a bigger
# declared size is treated as a decompression bomb and refused before any pixel is decoded.
MAX_IMAGE_PIXELS = 40_000_000
# An animated GIF decodes every frame: more frames than this are refused before decoding, and
# the pixels of all frames together count against MAX_IMAGE_PIXELS.
MAX_GIF_FRAMES = 1000

# --- vocabularies -----------------------------------------------------------------------------
UPPER_BODY = "upper_body"
LOWER_BODY = "lower_body"
FULL_BODY = "full_body"
FOOTWEAR = "footwear"
ACCESSORY = "accessory"
# Detector classes, in OD-API label-id order (ids start at 1; 0 is reserved for background).
SUPER_CATEGORIES = (UPPER_BODY, LOWER_BODY, FULL_BODY, FOOTWEAR)
SUPER_CATEGORY_IDS = MappingProxyType({name: i + 1 for i, name in enumerate(SUPER_CATEGORIES)})

# Garment category -> super-category. Order is the canonical order (segmentation ids follow it).
GARMENT_SUPER_CATEGORY = MappingProxyType({
    "t_shirt": UPPER_BODY, "shirt": UPPER_BODY, "blouse": UPPER_BODY, "top": UPPER_BODY,
    "sweater": UPPER_BODY, "cardigan": UPPER_BODY, "hoodie": UPPER_BODY, "jacket": UPPER_BODY,
    "blazer": UPPER_BODY, "coat": UPPER_BODY, "vest": UPPER_BODY,
    "jeans": LOWER_BODY, "pants": LOWER_BODY, "shorts": LOWER_BODY, "skirt": LOWER_BODY,
    "leggings": LOWER_BODY,
    "dress": FULL_BODY, "jumpsuit": FULL_BODY, "suit": FULL_BODY, "swimwear": FULL_BODY,
    "sneakers": FOOTWEAR, "boots": FOOTWEAR, "heels": FOOTWEAR, "sandals": FOOTWEAR,
    "flats": FOOTWEAR, "shoes": FOOTWEAR,
})
GARMENT_CATEGORIES = tuple(GARMENT_SUPER_CATEGORY)
# Accessories are worn items that are not detector objects; they appear as ``item:`` attributes.
ACCESSORIES = ("bag", "hat", "scarf", "belt", "eyewear", "jewelry", "hosiery", "other_accessory")

COLORS = ("red", "orange", "yellow", "green", "teal", "blue", "navy", "purple", "pink", "brown",
          "beige", "black", "white", "grey")
PATTERNS = ("solid", "stripes", "checks", "dots", "floral", "animal")
SLEEVES = ("sleeveless", "short", "long")
LENGTHS = ("mini", "knee", "long")

# Attribute families. ``color``/``pattern``/``sleeve``/``length`` describe the main garment and
# are mutually exclusive within their family; ``item`` marks every garment or accessory present.
ATTRIBUTE_FAMILIES = MappingProxyType({
    "color": COLORS,
    "pattern": PATTERNS,
    "sleeve": SLEEVES,
    "length": LENGTHS,
    "item": GARMENT_CATEGORIES + ACCESSORIES,
})
EXCLUSIVE_ATTRIBUTE_FAMILIES = ("color", "pattern", "sleeve", "length")


def attribute(family: str, value: str) -> str:
    """Returns the attribute string ``family:value``, validating both parts."""
    if value not in ATTRIBUTE_FAMILIES.get(family, ()):
        raise ValueError(f"unknown attribute {family}:{value}")
    return f"{family}:{value}"


ATTRIBUTE_VOCABULARY = tuple(
    f"{family}:{value}" for family, values in ATTRIBUTE_FAMILIES.items() for value in values)

# Segmentation label-map ids: 0 background, 1 skin, 2 hair, then garments and accessories.
SEGMENTATION_CLASSES = ("background", "skin", "hair") + GARMENT_CATEGORIES + ACCESSORIES
SEGMENTATION_CLASS_IDS = MappingProxyType({n: i for i, n in enumerate(SEGMENTATION_CLASSES)})

IMAGE_FORMATS = ("jpeg", "png")

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.pbtxt")
SCHEMA_DIR = os.path.dirname(SCHEMA_PATH)

# --- transformed features (TF Transform outputs every family shares) -------------------------
TRANSFORMED_IMAGE = "image_png"  # letterboxed RGB pixels, PNG re-encoded (lossless and compact)
# Each family's Transform fragment (trainer/families/<family>/transform.py) names its own label
# features; every label comes with a ``<label>_weight`` feature (see label_weight_feature).


def label_weight_feature(label_feature: str) -> str:
    """The transformed feature that is 1.0 where an example carries ``label_feature`` and 0.0
    where it does not: TFMA's example weight and the training input's filter, so unlabelled
    examples of a partly labelled catalog (e.g. CCP photos without a category) are neither
    trained on nor scored as wrong predictions."""
    return f"{label_feature}_weight"
