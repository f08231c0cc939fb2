"""tf.data input pipelines over TF Transform's transformed examples."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from schemas import features as F
from serving.signatures import decode_transformed_image


def _files(file_patterns: Sequence[str] | str) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def labelled_images(file_patterns, feature_spec: dict, label_key: str, image_size: int,
                    batch_size: int, *, training: bool, seed: int = 0,
                    balance_classes: Sequence[int] = (),
                    compression_type: str = "GZIP") -> tf.data.Dataset:
    """``(image, label)`` batches from transformed examples; unlabelled examples are skipped.

    A scalar label is a class id, a vector label is multi-hot; an example counts as labelled
    when Transform gave it label weight 1 (``F.LABEL_WEIGHT_FEATURES``). Training data is
    shuffled and repeated indefinitely (``steps_per_epoch`` bounds an epoch); evaluation data
    is read once, in order. ``balance_classes`` (training only) draws the listed class ids
    equally often: rare classes are oversampled, and the model's train-time augmentation makes
    their repeats differ.
    """
    files = _files(file_patterns)
    weight_key = F.LABEL_WEIGHT_FEATURES[label_key]
    spec = {k: feature_spec[k] for k in (F.TRANSFORMED_IMAGE, label_key, weight_key)}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type,
                                      num_parallel_reads=tf.data.AUTOTUNE if training else 1)
    if training:
        dataset = dataset.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()
    multi_label = len(spec[label_key].shape) > 0

    def image_and_label(features):
        label = features[label_key]
        return features[F.TRANSFORMED_IMAGE], (tf.cast(label, tf.float32) if multi_label
                                               else tf.cast(label, tf.int32))

    dataset = dataset.map(lambda serialized: tf.io.parse_single_example(serialized, spec),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    dataset = dataset.filter(lambda features: features[weight_key] > 0).map(image_and_label)
    if training and balance_classes and not multi_label:
        streams = [dataset.filter(lambda png, label, c=c: label == c)
                   for c in balance_classes]
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=[1.0 / len(streams)] * len(streams), seed=seed)
    dataset = dataset.map(lambda png, label: (decode_transformed_image(png, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return dataset.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def count_labelled(file_patterns, feature_spec: dict, label_key: str,
                   compression_type: str = "GZIP") -> dict:
    """Counts labelled examples per label id (class ids, or each on position of a multi-hot
    label); the key ``None`` holds the number of labelled examples."""
    files = _files(file_patterns)
    spec = {label_key: feature_spec[label_key]}
    counts: dict = {None: 0}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type).map(
        lambda s: tf.io.parse_single_example(s, spec)[label_key]).batch(4096)
    for batch in dataset.as_numpy_iterator():
        for label in batch.tolist():
            ids = ([i for i, on in enumerate(label) if on] if isinstance(label, list)
                   else [label] if label >= 0 else [])
            counts[None] += bool(ids)
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
    return counts


def sample_images(file_patterns, feature_spec: dict, count: int,
                  compression_type: str = "GZIP") -> list[bytes]:
    """The first ``count`` transformed images (PNG bytes), e.g. for serving warm-up requests."""
    spec = {F.TRANSFORMED_IMAGE: feature_spec[F.TRANSFORMED_IMAGE]}
    dataset = tf.data.TFRecordDataset(_files(file_patterns), compression_type=compression_type)
    return [parsed[F.TRANSFORMED_IMAGE] for parsed in dataset.take(count).map(
        lambda s: tf.io.parse_single_example(s, spec)).as_numpy_iterator()]
