"""Reading contract records (catalog spans, ExampleGen output) outside a training input
pipeline: for warm-up requests, infra validation, offline evaluation and reports."""

from __future__ import annotations

import glob

from schemas import features as F


def record_dataset(data_pattern: str):
    """A ``tf.data.TFRecordDataset`` of the (optionally gzipped) files matching the glob."""
    import tensorflow as tf
    files = sorted(tf.io.gfile.glob(data_pattern)) if "://" in data_pattern else sorted(
        glob.glob(data_pattern))
    if not files:
        raise FileNotFoundError(f"no files match {data_pattern}")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def read_records(data_pattern: str, limit: int) -> list[bytes]:
    """The first ``limit`` serialized records matching the glob."""
    return [record.numpy() for record in record_dataset(data_pattern).take(limit)]


def read_record_images(data_pattern: str, limit: int) -> list[tuple[str, bytes]]:
    """``(source id, encoded image)`` of the first ``limit`` records matching the glob."""
    import tensorflow as tf
    found = []
    for record in record_dataset(data_pattern).take(limit):
        parsed = tf.io.parse_single_example(record, {
            F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
            F.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=b"")})
        name = parsed[F.IMAGE_SOURCE_ID].numpy().decode() or f"record {len(found)}"
        found.append((name, parsed[F.IMAGE_ENCODED].numpy()))
    if not found:
        raise ValueError(f"no record in {data_pattern}")
    return found


def image_example(encoded: bytes):
    """A ``tf.train.Example`` holding only ``image/encoded`` (what serving reads)."""
    import tensorflow as tf
    return tf.train.Example(features=tf.train.Features(feature={
        F.IMAGE_ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}))


def examples_to_images(serialized: list[bytes]) -> list[bytes]:
    """The ``image/encoded`` bytes of serialized tf.Examples."""
    import tensorflow as tf
    images = []
    for record in serialized:
        example = tf.train.Example.FromString(record)
        images.append(example.features.feature[F.IMAGE_ENCODED].bytes_list.value[0])
    return images
