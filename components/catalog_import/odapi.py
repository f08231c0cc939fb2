"""Existing TF Object Detection API TFRecords → a span, after a key check.

Each record must carry the OD-API image keys; box lists must have equal lengths and normalised,
non-empty boxes; class texts must be detector super-categories and optional fashion keys must
hold known values. The image is checked and normalised like any other input (a re-encoded image
replaces the original bytes; an EXIF-rotated one is stored upright, with its boxes and label
map turned the same way). Records failing a check are rejected with a reason; a corrupt
file is rejected from the first unreadable record on (TFRecord framing cannot resynchronise).

The framing is read here, not by TensorFlow: each record's declared length is checked against
the bytes left in the file and ``MAX_RECORD_BYTES`` before anything is allocated, and both
CRCs are verified. TensorFlow's reader trusts the length (a 200-byte file declaring a 1 TiB
record makes it abort the process, losing every good record of the run).
"""

from __future__ import annotations

import glob
import os
import struct
from typing import Iterator, Optional

from components.catalog_import import images as image_io
from schemas import features as F

_KINDS = {
    F.IMAGE_ENCODED: "bytes_list", F.IMAGE_FORMAT: "bytes_list", F.IMAGE_HEIGHT: "int64_list",
    F.IMAGE_WIDTH: "int64_list", F.IMAGE_SOURCE_ID: "bytes_list", F.BBOX_XMIN: "float_list",
    F.BBOX_YMIN: "float_list", F.BBOX_XMAX: "float_list", F.BBOX_YMAX: "float_list",
    F.OBJECT_CLASS_LABEL: "int64_list", F.OBJECT_CLASS_TEXT: "bytes_list",
    F.OBJECT_GARMENT_TEXT: "bytes_list", F.IMAGE_CLASS_TEXT: "bytes_list",
    F.ATTRIBUTES: "bytes_list", F.BRAND: "bytes_list", F.CAPTION: "bytes_list",
    F.SEGMENTATION_ENCODED: "bytes_list", F.SEGMENTATION_FORMAT: "bytes_list",
}
_CLOSED = {
    F.OBJECT_CLASS_TEXT: frozenset(F.SUPER_CATEGORIES),
    F.OBJECT_GARMENT_TEXT: frozenset(F.GARMENT_CATEGORIES),
    F.IMAGE_CLASS_TEXT: frozenset(F.GARMENT_CATEGORIES),
    F.ATTRIBUTES: frozenset(F.ATTRIBUTE_VOCABULARY),
    F.IMAGE_FORMAT: frozenset(F.IMAGE_FORMATS), F.SEGMENTATION_FORMAT: frozenset(F.IMAGE_FORMATS),
}


MAX_RECORD_BYTES = 256 * 1024 * 1024  # one image record; far above any real photo


class CorruptRecord(ValueError):
    """The TFRecord framing is broken from this record on."""


def _masked_crc(data: bytes) -> int:
    import google_crc32c
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecords(path: str, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """The records of an uncompressed TFRecord file, each frame checked before it is read:
    header CRC, a declared length that fits the file and ``max_record_bytes``, data CRC.
    Raises CorruptRecord (with the reason) at the first bad frame."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        index = 0
        while True:
            header = handle.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecord(f"record {index}: truncated header ({len(header)} bytes)")
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                raise CorruptRecord(f"record {index}: corrupted length (header CRC mismatch)")
            left = size - handle.tell() - 4
            if length > left or length > max_record_bytes:
                raise CorruptRecord(f"record {index} declares {length} bytes; {max(left, 0)} "
                                    f"are left in the file (limit {max_record_bytes})")
            data = handle.read(length)
            (data_crc,) = struct.unpack("<I", handle.read(4))
            if _masked_crc(data) != data_crc:
                raise CorruptRecord(f"record {index}: corrupted data (CRC mismatch)")
            yield data
            index += 1


def check_example(example) -> None:
    """Raises RejectedInput if ``example`` does not follow the contract's key rules."""
    feature = example.features.feature
    for key in F.OD_API_REQUIRED_KEYS:
        if key not in feature or len(getattr(feature[key], _KINDS[key]).value) != 1:
            raise image_io.RejectedInput("missing_key", key)
    for key, kind in _KINDS.items():
        if key in feature and feature[key].WhichOneof("kind") not in (kind, None):
            found = feature[key].WhichOneof("kind")
            raise image_io.RejectedInput("wrong_type", f"{key} is {found}, expected {kind}")
    unknown = sorted(k for k in feature if k not in _KINDS)
    if unknown:
        raise image_io.RejectedInput("unknown_key", ", ".join(unknown[:5]))
    lengths = {k: len(feature[k].float_list.value) for k in F.BBOX_KEYS if k in feature}
    object_keys = (F.OBJECT_CLASS_LABEL, F.OBJECT_CLASS_TEXT, F.OBJECT_GARMENT_TEXT)
    for k in object_keys:
        if k in feature:
            lengths[k] = len(getattr(feature[k], _KINDS[k]).value)
    has_objects = any(lengths.values())
    if has_objects and (len(set(lengths.values())) > 1 or any(k not in feature
                                                              for k in F.BBOX_KEYS)):
        raise image_io.RejectedInput("inconsistent_objects", str(lengths))
    if has_objects:
        boxes = zip(*(feature[k].float_list.value for k in F.BBOX_KEYS))
        for xmin, ymin, xmax, ymax in boxes:
            if not (0.0 <= xmin < xmax <= 1.0 and 0.0 <= ymin < ymax <= 1.0):
                raise image_io.RejectedInput("bad_box", f"{(xmin, ymin, xmax, ymax)}")
    for key, allowed in _CLOSED.items():
        if key in feature:
            values = {v.decode("utf-8", "replace") for v in feature[key].bytes_list.value}
            if values - allowed:
                raise image_io.RejectedInput("unknown_value", f"{key}: {sorted(values - allowed)}")
    if F.OBJECT_CLASS_LABEL in feature:
        if any(not 1 <= v <= len(F.SUPER_CATEGORIES)
               for v in feature[F.OBJECT_CLASS_LABEL].int64_list.value):
            raise image_io.RejectedInput("unknown_value", F.OBJECT_CLASS_LABEL)


def _orient_objects(feature, orientation: int) -> None:
    """Turns the boxes and the segmentation label map the way the EXIF ``orientation`` turned
    the image (the converter stores images upright)."""
    if F.BBOX_XMIN in feature and feature[F.BBOX_XMIN].float_list.value:
        boxes = list(zip(*(feature[k].float_list.value for k in F.BBOX_KEYS)))
        turned = [image_io.orient_box(box, orientation) for box in boxes]
        for index, key in enumerate(F.BBOX_KEYS):
            del feature[key].float_list.value[:]
            feature[key].float_list.value.extend(box[index] for box in turned)
    if F.SEGMENTATION_ENCODED in feature and feature[F.SEGMENTATION_ENCODED].bytes_list.value:
        values = feature[F.SEGMENTATION_ENCODED].bytes_list.value
        values[0] = image_io.orient_label_map(values[0], orientation)


def convert(pattern: str, writer, progress=None, limit: Optional[int] = None) -> int:
    """Imports every record of the files matching ``pattern`` into ``writer``."""
    import tensorflow as tf
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no files match {pattern}")
    written = 0
    n = 0
    for path in paths:
        index = 0
        iterator = read_tfrecords(path)
        while True:
            if limit is not None and n >= limit:
                return written
            where = f"{path}#{index}"
            try:
                serialized = next(iterator)
            except StopIteration:
                break
            except (CorruptRecord, OSError) as err:
                writer.reject(where, "corrupt_record", str(err), count_input=True)
                break
            n += 1
            index += 1
            if progress:
                progress(n)
            try:
                example = tf.train.Example.FromString(serialized)
            except Exception as err:
                writer.reject(where, "not_an_example", str(err), count_input=True)
                continue
            try:
                check_example(example)
                image = image_io.normalize_image(
                    example.features.feature[F.IMAGE_ENCODED].bytes_list.value[0])
            except image_io.RejectedInput as err:
                writer.reject(where, err.reason, err.detail, count_input=True)
                continue
            except Exception as err:  # an unforeseen malformation must not stop the import
                writer.reject(where, "conversion_error", f"{type(err).__name__}: {err}",
                              count_input=True)
                continue
            feature = example.features.feature
            if image.reencoded:
                feature[F.IMAGE_ENCODED].bytes_list.value[0] = image.encoded
                feature[F.IMAGE_FORMAT].bytes_list.value[0] = image.format.encode()
                feature[F.IMAGE_HEIGHT].int64_list.value[0] = image.height
                feature[F.IMAGE_WIDTH].int64_list.value[0] = image.width
            if image.exif_transpose != 1:
                try:
                    _orient_objects(feature, image.exif_transpose)
                except Exception as err:  # a label map that does not decode
                    writer.reject(where, "conversion_error",
                                  f"cannot orient the labels: {type(err).__name__}: {err}",
                                  count_input=True)
                    continue
            source_id = feature[F.IMAGE_SOURCE_ID].bytes_list.value[0].decode("utf-8", "replace")
            has_boxes = len(feature[F.BBOX_XMIN].float_list.value) > 0 if F.BBOX_XMIN in feature \
                else False
            if writer.add_serialized(source_id, example.SerializeToString(), has_boxes,
                                     feature[F.IMAGE_ENCODED].bytes_list.value[0]):
                written += 1
    return written
