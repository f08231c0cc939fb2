"""Fashion records: a typed view of one catalog image and its conversion to ``tf.train.Example``.

The example layout is the contract in ``schemas/`` (TF Object Detection API keys plus the
``fashion/`` keys); :func:`to_example` is the only place that writes it and
:func:`from_example` the only place that reads it back outside TensorFlow graphs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from schemas import features as F


@dataclasses.dataclass(frozen=True)
class GarmentObject:
    """One detector object: a garment with a normalised box ``(xmin, ymin, xmax, ymax)``."""

    garment: str
    box: tuple[float, float, float, float]

    def __post_init__(self):
        if self.garment not in F.GARMENT_SUPER_CATEGORY:
            raise ValueError(f"unknown garment category {self.garment!r}")
        xmin, ymin, xmax, ymax = self.box
        if not (0.0 <= xmin < xmax <= 1.0 and 0.0 <= ymin < ymax <= 1.0):
            raise ValueError(f"box {self.box} is not a normalised, non-empty box")

    @property
    def super_category(self) -> str:
        return F.GARMENT_SUPER_CATEGORY[self.garment]


@dataclasses.dataclass(frozen=True)
class FashionRecord:
    """Everything the contract can say about one image. Labels are optional."""

    source_id: str
    encoded: bytes
    format: str
    height: int
    width: int
    objects: Sequence[GarmentObject] = ()
    category: Optional[str] = None
    attributes: Sequence[str] = ()
    brand: Optional[str] = None
    caption: Optional[str] = None
    segmentation_png: Optional[bytes] = None

    def __post_init__(self):
        if self.format not in F.IMAGE_FORMATS:
            raise ValueError(f"unsupported image format {self.format!r}")
        if self.category is not None and self.category not in F.GARMENT_SUPER_CATEGORY:
            raise ValueError(f"unknown garment category {self.category!r}")
        unknown = [a for a in self.attributes if a not in _ATTRIBUTE_SET]
        if unknown:
            raise ValueError(f"unknown attributes {unknown}")


_ATTRIBUTE_SET = frozenset(F.ATTRIBUTE_VOCABULARY)


def _bytes(values):
    import tensorflow as tf
    return tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[v if isinstance(v, bytes) else v.encode("utf-8") for v in values]))


def _floats(values):
    import tensorflow as tf
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _ints(values):
    import tensorflow as tf
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def to_example(record: FashionRecord):
    """Returns the ``tf.train.Example`` for ``record`` (optional fields are omitted if empty)."""
    import tensorflow as tf

    feature = {
        F.IMAGE_ENCODED: _bytes([record.encoded]),
        F.IMAGE_FORMAT: _bytes([record.format]),
        F.IMAGE_HEIGHT: _ints([record.height]),
        F.IMAGE_WIDTH: _ints([record.width]),
        F.IMAGE_SOURCE_ID: _bytes([record.source_id]),
    }
    if record.objects:
        boxes = list(zip(*(o.box for o in record.objects)))
        for key, values in zip(F.BBOX_KEYS, boxes):
            feature[key] = _floats(values)
        feature[F.OBJECT_CLASS_LABEL] = _ints(
            [F.SUPER_CATEGORY_IDS[o.super_category] for o in record.objects])
        feature[F.OBJECT_CLASS_TEXT] = _bytes([o.super_category for o in record.objects])
        feature[F.OBJECT_GARMENT_TEXT] = _bytes([o.garment for o in record.objects])
    if record.category:
        feature[F.IMAGE_CLASS_TEXT] = _bytes([record.category])
    if record.attributes:
        feature[F.ATTRIBUTES] = _bytes(record.attributes)
    if record.brand:
        feature[F.BRAND] = _bytes([record.brand])
    if record.caption:
        feature[F.CAPTION] = _bytes([record.caption])
    if record.segmentation_png:
        feature[F.SEGMENTATION_ENCODED] = _bytes([record.segmentation_png])
        feature[F.SEGMENTATION_FORMAT] = _bytes(["png"])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def feature_values(example, key) -> list:
    """The values of feature ``key`` of a ``tf.train.Example`` (empty when absent)."""
    if key not in example.features.feature:
        return []
    f = example.features.feature[key]
    kind = f.WhichOneof("kind")
    return list(getattr(f, kind).value) if kind else []


def from_example(example) -> FashionRecord:
    """Reads a contract ``tf.train.Example`` back into a :class:`FashionRecord`."""
    def text(key):
        values = feature_values(example, key)
        return values[0].decode("utf-8") if values else None

    boxes = list(zip(*(feature_values(example, k) for k in F.BBOX_KEYS)))
    garments = [g.decode("utf-8") for g in feature_values(example, F.OBJECT_GARMENT_TEXT)]
    objects = tuple(GarmentObject(g, tuple(b)) for g, b in zip(garments, boxes))
    seg = feature_values(example, F.SEGMENTATION_ENCODED)
    return FashionRecord(
        source_id=text(F.IMAGE_SOURCE_ID) or "",
        encoded=feature_values(example, F.IMAGE_ENCODED)[0],
        format=text(F.IMAGE_FORMAT),
        height=int(feature_values(example, F.IMAGE_HEIGHT)[0]),
        width=int(feature_values(example, F.IMAGE_WIDTH)[0]),
        objects=objects,
        category=text(F.IMAGE_CLASS_TEXT),
        attributes=tuple(a.decode("utf-8") for a in feature_values(example, F.ATTRIBUTES)),
        brand=text(F.BRAND),
        caption=text(F.CAPTION),
        segmentation_png=seg[0] if seg else None,
    )


MAIN_GARMENT_PRIORITY = (F.FULL_BODY, F.UPPER_BODY, F.LOWER_BODY, F.FOOTWEAR)
MAIN_GARMENT_MIN_FRACTION = 0.03


def choose_main_garment(areas: dict, image_pixels: Optional[int] = None,
                        min_fraction: float = MAIN_GARMENT_MIN_FRACTION) -> Optional[str]:
    """The image's main garment category, the same rule for every source.

    The outermost garment of the outfit wins: full-body before upper-body before lower-body
    before footwear, among garments covering at least ``min_fraction`` of the image (so a shot
    framed on the bottoms is about the bottoms); within a super-category the larger area wins.
    ``areas`` maps garment categories to visible pixel counts; with ``image_pixels`` None (tags
    without pixels) every listed garment counts and ties go to the canonical category order.
    Falls back to the largest garment when none passes the threshold.
    """
    garments = {c: a for c, a in areas.items() if c in F.GARMENT_SUPER_CATEGORY}
    if not garments:
        return None
    threshold = min_fraction * image_pixels if image_pixels else 0
    eligible = {c: a for c, a in garments.items() if a >= threshold}
    if not eligible:
        return max(garments, key=lambda c: (garments[c], -F.GARMENT_CATEGORIES.index(c)))

    def rank(category):
        return (MAIN_GARMENT_PRIORITY.index(F.GARMENT_SUPER_CATEGORY[category]),
                -eligible[category], F.GARMENT_CATEGORIES.index(category))
    return min(eligible, key=rank)


def caption_for(items: Sequence[str], accessories: Sequence[str] = (),
                descriptions: Optional[dict] = None) -> str:
    """Builds a plain-English caption from garments (with optional descriptions) and accessories.

    ``descriptions`` maps a garment to adjectives, e.g. ``{"skirt": "red striped knee-length"}``.
    Garment names use spaces (``t_shirt`` -> ``t-shirt``) so captions read naturally.
    """
    descriptions = descriptions or {}

    def phrase(name):
        words = (descriptions.get(name, "") + " " + _display(name)).strip()
        article = "an" if words[:1] in "aeiou" else "a"
        return words if name in _NO_ARTICLE else f"{article} {words}"

    def join(parts):
        parts = list(parts)
        if len(parts) <= 1:
            return "".join(parts)
        return ", ".join(parts[:-1]) + " and " + parts[-1]

    text = "a person wearing " + join(phrase(g) for g in items) if items else "a person"
    if accessories:
        text += " with " + join(phrase(a) for a in accessories)
    return text


_NO_ARTICLE = frozenset({"jeans", "pants", "shorts", "leggings", "sneakers", "boots", "heels",
                         "sandals", "flats", "shoes", "eyewear", "hosiery", "swimwear", "jewelry"})


def _display(name: str) -> str:
    return {"t_shirt": "t-shirt", "other_accessory": "accessory", "eyewear": "glasses"}.get(
        name, name.replace("_", " "))
