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
                    compression_type: str = "GZIP") -> tf.data.Dataset:
    """``(image, label)`` batches from transformed examples; unlabelled examples are skipped.

    Training data is shuffled and repeated indefinitely (``steps_per_epoch`` bounds an epoch);
    evaluation data is read once, in order.
    """
    files = _files(file_patterns)
    spec = {k: v for k, v in feature_spec.items() if k in (F.TRANSFORMED_IMAGE, label_key)}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type,
                                      num_parallel_reads=tf.data.AUTOTUNE if training else 1)
    if training:
        dataset = dataset.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        return (decode_transformed_image(parsed[F.TRANSFORMED_IMAGE], image_size),
                tf.cast(parsed[label_key], tf.int32))

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=not training)
    dataset = dataset.filter(lambda image, label: label >= 0)
    return dataset.batch(batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)


def count_labelled(file_patterns, feature_spec: dict, label_key: str,
                   compression_type: str = "GZIP") -> dict:
    """Counts examples per label id (used for class weights and epoch sizes)."""
    files = _files(file_patterns)
    spec = {label_key: feature_spec[label_key]}
    counts: dict[int, int] = {}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression_type).map(
        lambda s: tf.io.parse_single_example(s, spec)[label_key]).batch(4096)
    for batch in dataset.as_numpy_iterator():
        for label in batch.tolist():
            if label >= 0:
                counts[label] = counts.get(label, 0) + 1
    return counts


def sample_images(file_patterns, feature_spec: dict, count: int,
                  compression_type: str = "GZIP") -> list[bytes]:
    """The first ``count`` transformed images (PNG bytes), e.g. for serving warm-up requests."""
    spec = {F.TRANSFORMED_IMAGE: feature_spec[F.TRANSFORMED_IMAGE]}
    dataset = tf.data.TFRecordDataset(_files(file_patterns), compression_type=compression_type)
    return [parsed[F.TRANSFORMED_IMAGE] for parsed in dataset.take(count).map(
        lambda s: tf.io.parse_single_example(s, spec)).as_numpy_iterator()]
