"""The BrandAttentionReport TFX component: a thin wrapper around
:mod:`components.attention_report.logic`.

It runs the trained brand model's ``attention`` signature on the eval split's images and writes
the brand study's analysis artifacts (per-brand log-scale attention heat maps, galleries of the
most and least confident images with their attention) as a ``FashionAttentionReport``.
"""

import os

import numpy as np
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components.attention_report import logic


class AttentionReport(types.Artifact):
    """HTML, PNG and JSON of the brand attention analysis."""

    TYPE_NAME = "fashion.AttentionReport"  # KFP v2 needs "namespace.TypeName"


@component
def BrandAttentionReport(
        model: InputArtifact[standard_artifacts.Model],
        examples: InputArtifact[standard_artifacts.Examples],
        report: OutputArtifact[AttentionReport],
        max_images: Parameter[int] = 512,
        batch_size: Parameter[int] = 32):
    """Writes the attention heat maps and galleries of ``model`` on the eval images."""
    import tensorflow as tf

    from schemas import features as F
    from serving.evaluate import record_dataset
    serving_dir = os.path.join(model.uri, "Format-Serving")
    loaded = tf.saved_model.load(serving_dir)
    attention_fn = loaded.signatures["attention"]
    with open(os.path.join(serving_dir, "assets.extra", "class_names.txt")) as handle:
        class_names = handle.read().split()
    pattern = os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*")
    images, labels, maps, scores = [], [], [], []
    dataset = record_dataset(pattern).map(lambda s: tf.io.parse_single_example(s, {
        F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        F.BRAND: tf.io.FixedLenFeature([], tf.string, default_value=b"")}))
    dataset = dataset.filter(lambda parsed: tf.strings.length(parsed[F.BRAND]) > 0)
    for batch in dataset.take(max_images).batch(batch_size):
        outputs = attention_fn(images=batch[F.IMAGE_ENCODED])
        images += list(batch[F.IMAGE_ENCODED].numpy())
        labels += [b.decode() for b in batch[F.BRAND].numpy()]
        maps.append(outputs["attention"].numpy())
        scores.append(outputs["scores"].numpy())
    summary = logic.write_report(report.uri, images, np.concatenate(maps), labels,
                                 np.concatenate(scores), class_names)
    print(f"BrandAttentionReport: {summary['images']} images, accuracy {summary['accuracy']}, "
          f"written to {report.uri}")
