"""Object crops: one example per labelled garment box of a record (no TFX import).

The studies classify each garment on its detector crop, and a whole street photo's "main garment"
is often ill-posed (several garments, no single answer). A record with boxes becomes one example
per box whose object carries a garment label: the box widened by ``margin`` on every side
(clamped to the image), re-encoded, with ``image/class/text`` the object's garment and
``image/source_id`` ``<record id>#<object index>``, so evaluation slices count garments. Records
without boxes add nothing; a record whose image cannot be decoded is counted and skipped, never
fatal; boxes smaller than ``min_side`` pixels are counted and skipped.
"""

from __future__ import annotations

import collections
import dataclasses
import io

import numpy as np
from PIL import Image

from components.catalog_import import images as image_io
from components.catalog_import.records import FashionRecord, feature_values, to_example
from schemas import features as F


@dataclasses.dataclass
class CropStats:
    """What a crop run saw, per split."""

    records: int = 0
    records_with_boxes: int = 0
    crops: int = 0
    skipped: dict = dataclasses.field(default_factory=collections.Counter)
    classes: dict = dataclasses.field(default_factory=collections.Counter)

    def to_json(self) -> dict:
        return {"records": self.records, "records_with_boxes": self.records_with_boxes,
                "crops": self.crops, "skipped": dict(self.skipped),
                "classes": dict(sorted(self.classes.items()))}


def crop_box(width: int, height: int, box, margin: float) -> tuple:
    """Pixel ``(left, top, right, bottom)`` of a normalised ``(xmin, ymin, xmax, ymax)`` box
    widened by ``margin`` of its size on every side, clamped to the image."""
    xmin, ymin, xmax, ymax = box
    dx, dy = (xmax - xmin) * margin, (ymax - ymin) * margin
    left, top = max(0.0, xmin - dx) * width, max(0.0, ymin - dy) * height
    right, bottom = min(1.0, xmax + dx) * width, min(1.0, ymax + dy) * height
    # Boxes are stored as float32: 0.4 reads back as 0.40000001, which must not add a row.
    slack = 1e-3
    return (int(np.floor(left + slack)), int(np.floor(top + slack)),
            int(np.ceil(right - slack)), int(np.ceil(bottom - slack)))


def crops_of(example, margin: float = 0.1, min_side: int = 16, stats: CropStats = None) -> list:
    """The crop ``tf.train.Example`` s of one record (see the module docstring)."""
    stats = stats if stats is not None else CropStats()
    stats.records += 1
    garments = [g.decode("utf-8") for g in feature_values(example, F.OBJECT_GARMENT_TEXT)]
    boxes = list(zip(*(feature_values(example, key) for key in F.BBOX_KEYS)))
    if not garments or not boxes:
        return []
    stats.records_with_boxes += 1
    if len(garments) != len(boxes):
        stats.skipped["box_label_count_mismatch"] += 1
        return []
    encoded = feature_values(example, F.IMAGE_ENCODED)
    try:
        image = image_io.normalize_image(encoded[0] if encoded else b"")
    except image_io.RejectedInput as err:
        stats.skipped[f"image_{err.reason}"] += 1
        return []
    pixels = image.pixels
    source = (feature_values(example, F.IMAGE_SOURCE_ID) or [b"record"])[0].decode("utf-8")
    out = []
    for index, (garment, box) in enumerate(zip(garments, boxes)):
        if garment not in F.GARMENT_SUPER_CATEGORY:
            stats.skipped["unknown_garment"] += 1
            continue
        left, top, right, bottom = crop_box(image.width, image.height, box, margin)
        if min(right - left, bottom - top) < min_side:
            stats.skipped["box_too_small"] += 1
            continue
        crop = pixels[top:bottom, left:right]
        data = (image_io.encode_png(crop) if image.format == "png"
                else image_io.encode_jpeg(crop))
        out.append(to_example(FashionRecord(
            source_id=f"{source}#{index}", encoded=data, format=image.format,
            height=crop.shape[0], width=crop.shape[1], category=garment)))
        stats.crops += 1
        stats.classes[garment] += 1
    return out


def write_split(input_files, output_file: str, margin: float, min_side: int) -> CropStats:
    """Crops every record of ``input_files`` (GZIP TFRecords) into ``output_file`` (GZIP)."""
    import tensorflow as tf
    stats = CropStats()
    dataset = tf.data.TFRecordDataset(input_files, compression_type="GZIP")
    with tf.io.TFRecordWriter(output_file, options="GZIP") as writer:
        for serialized in dataset.as_numpy_iterator():
            example = tf.train.Example()
            try:
                example.ParseFromString(serialized)
            except Exception:  # a corrupt record loses only itself
                stats.records += 1
                stats.skipped["unparsable_record"] += 1
                continue
            for crop in crops_of(example, margin, min_side, stats):
                writer.write(crop.SerializeToString())
    return stats


def image_of(example) -> np.ndarray:
    """The decoded RGB pixels of an example's ``image/encoded`` (tests, reports)."""
    encoded = feature_values(example, F.IMAGE_ENCODED)[0]
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))
