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


def iter_record_images(data_pattern: str, limit: int = -1):
    """Yields ``(source id, encoded image)`` of the records matching the glob (the first
    ``limit``; -1: all), one at a time."""
    import tensorflow as tf
    for index, record in enumerate(record_dataset(data_pattern).take(limit)):
        parsed = tf.io.parse_single_example(record, {
            F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
            F.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=b"")})
        name = parsed[F.IMAGE_SOURCE_ID].numpy().decode("utf-8", "replace") or f"record {index}"
        yield name, parsed[F.IMAGE_ENCODED].numpy()


def read_record_images(data_pattern: str, limit: int) -> list[tuple[str, bytes]]:
    """``(source id, encoded image)`` of the first ``limit`` records matching the glob."""
    found = list(iter_record_images(data_pattern, limit))
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


def examples_to_captions(serialized: list[bytes], default: str = "a photo") -> list[bytes]:
    """The ``fashion/caption`` of serialized tf.Examples (``default`` where one has none)."""
    import tensorflow as tf
    captions = []
    for record in serialized:
        feature = tf.train.Example.FromString(record).features.feature
        values = feature[F.CAPTION].bytes_list.value if F.CAPTION in feature else []
        captions.append(values[0] if values else default.encode())
    return captions


def probe_inputs(kind: str, serialized: list[bytes]) -> list[bytes]:
    """The values a signature of input kind ``kind`` (``trainer.families.spec``: examples,
    images or texts) takes, made from serialized records."""
    if kind == "examples":
        return list(serialized)
    if kind == "images":
        return examples_to_images(serialized)
    if kind == "texts":
        return examples_to_captions(serialized)
    raise ValueError(f"unknown input kind {kind!r}")


def read_images_at(uris: list[str]) -> list:
    """The encoded image of each ``file#position`` record URI (a catalog index's items), None
    where the file or record is gone; each file is read once."""
    import tensorflow as tf
    wanted: dict = {}
    for index, uri in enumerate(uris):
        path, _, position = uri.rpartition("#")
        if path and position.isdigit():
            wanted.setdefault(path, {}).setdefault(int(position), []).append(index)
    found: list = [None] * len(uris)
    for path, positions in wanted.items():
        try:
            dataset = record_dataset(path).take(max(positions) + 1)
            for position, record in enumerate(dataset):
                if position in positions:
                    feature = tf.train.Example.FromString(record.numpy()).features.feature
                    image = feature[F.IMAGE_ENCODED].bytes_list.value
                    for index in positions[position]:
                        found[index] = image[0] if image else None
        except (FileNotFoundError, tf.errors.OpError):
            continue
    return found


def catalog_item(serialized: bytes) -> dict:
    """What a catalog search or an evaluation reads of a serialized record: ``id`` (its
    source id), ``caption``, ``category`` (``""`` where absent) and ``attributes``."""
    import tensorflow as tf
    feature = tf.train.Example.FromString(serialized).features.feature

    def texts(key):
        values = feature[key].bytes_list.value if key in feature else []
        return [v.decode("utf-8", "replace") for v in values]
    return {"id": (texts(F.IMAGE_SOURCE_ID) or [""])[0], "caption": (texts(F.CAPTION) or [""])[0],
            "category": (texts(F.IMAGE_CLASS_TEXT) or [""])[0],
            "attributes": texts(F.ATTRIBUTES)}


def call_in_batches(function, input_name: str, values: list, output: str,
                    batch_size: int = 64, progress=None):
    """The ``output`` (numpy, concatenated) of a SavedModel signature ``function`` called on
    ``values`` ``batch_size`` at a time; ``progress(done)`` after each batch."""
    import numpy as np
    import tensorflow as tf
    batches = []
    for start in range(0, len(values), batch_size):
        batches.append(function(**{input_name: tf.constant(values[start:start + batch_size])})
                       [output].numpy())
        if progress:
            progress(start + len(batches[-1]))
    return np.concatenate(batches) if batches else np.zeros((0, 0), np.float32)
