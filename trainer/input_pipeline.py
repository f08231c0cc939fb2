"""tf.data input pipelines over TF Transform's transformed examples (no family knowledge: a
family names its label feature)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from schemas import features as F
from trainer.preprocessing import decode_transformed_image


def matching_files(file_patterns: Sequence[str] | str) -> list[str]:
    """The sorted files matching one glob or a list of globs (FileNotFoundError when none)."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def labelled_images(file_patterns, feature_spec: dict, label_key: str, stored_size: int,
                    batch_size: int, *, training: bool, seed: int = 0,
                    balance_classes: Sequence[int] = (),
                    compression_type: str = "GZIP") -> tf.data.Dataset:
    """``(image, label)`` batches from transformed examples; unlabelled examples are skipped.

    A scalar integer label is a class id, a scalar float label a continuous target; a vector
    label is multi-hot, where -1 marks an entry the example does not annotate (unknown, not
    negative: the family's loss and metrics mask it). An
    example counts as labelled when Transform gave it label weight 1
    (``F.label_weight_feature``). Training data is
    shuffled and repeated indefinitely (``steps_per_epoch`` bounds an epoch); evaluation data
    is read once, in order. ``balance_classes`` (training only) draws the listed class ids
    equally often: rare classes are oversampled, and the model's train-time augmentation makes
    their repeats differ.
    """
    files = matching_files(file_patterns)
    weight_key = F.label_weight_feature(label_key)
    spec = {k: feature_spec[k] for k in (F.TRANSFORMED_IMAGE, label_key, weight_key)}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type,
                                      num_parallel_reads=tf.data.AUTOTUNE if training else 1)
    if training:
        dataset = dataset.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()
    multi_label = len(spec[label_key].shape) > 0
    # Class ids train as int32; multi-hot rows and continuous targets as float32.
    label_dtype = tf.float32 if multi_label or spec[label_key].dtype.is_floating else tf.int32

    def image_and_label(features):
        return features[F.TRANSFORMED_IMAGE], tf.cast(features[label_key], label_dtype)

    dataset = dataset.map(lambda serialized: tf.io.parse_single_example(serialized, spec),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    dataset = dataset.filter(lambda features: features[weight_key] > 0).map(image_and_label)
    if training and balance_classes and label_dtype == tf.int32:
        streams = [dataset.filter(lambda png, label, c=c: label == c)
                   for c in balance_classes]
        dataset = tf.data.Dataset.sample_from_datasets(
            streams, weights=[1.0 / len(streams)] * len(streams), seed=seed)
    dataset = dataset.map(lambda png, label: (decode_transformed_image(png, stored_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return dataset.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def count_labelled(file_patterns, feature_spec: dict, label_key: str,
                   compression_type: str = "GZIP") -> dict:
    """Counts labelled examples per label id (class ids, or each position of a multi-hot label
    that is on); the key ``None`` holds the number of labelled examples (label weight 1)."""
    files = matching_files(file_patterns)
    weight_key = F.label_weight_feature(label_key)
    spec = {label_key: feature_spec[label_key], weight_key: feature_spec[weight_key]}
    counts: dict = {None: 0}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type).map(
        lambda s: tf.io.parse_single_example(s, spec)).batch(4096)
    for batch in dataset.as_numpy_iterator():
        for label, weight in zip(batch[label_key].tolist(), batch[weight_key].tolist()):
            if weight <= 0:
                continue
            counts[None] += 1
            ids = ([i for i, value in enumerate(label) if value > 0] if isinstance(label, list)
                   else [label])
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
    return counts


def sample_images(file_patterns, feature_spec: dict, count: int,
                  compression_type: str = "GZIP") -> list[bytes]:
    """The first ``count`` transformed images (PNG bytes), e.g. for serving warm-up requests."""
    spec = {F.TRANSFORMED_IMAGE: feature_spec[F.TRANSFORMED_IMAGE]}
    dataset = tf.data.TFRecordDataset(matching_files(file_patterns),
                                      compression_type=compression_type)
    return [parsed[F.TRANSFORMED_IMAGE] for parsed in dataset.take(count).map(
        lambda s: tf.io.parse_single_example(s, spec)).as_numpy_iterator()]
