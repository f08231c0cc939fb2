"""The brand family's AttentionReport TFX component: a thin wrapper around
:mod:`trainer.families.brand.attention_logic`.

It runs the trained brand model's ``attention`` signature on the eval split's images and writes
the brand study's analysis (per-brand log-scale attention heat maps, galleries of the most and
least confident images with their attention) as a ``fashion.ReportSection``, which the family's
evaluation report shows.
"""

import os

import numpy as np
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from trainer.evaluation.artifacts import ReportSection
from trainer.families.brand import attention_logic


@component
def BrandAttentionReport(
        model: InputArtifact[standard_artifacts.Model],
        examples: InputArtifact[standard_artifacts.Examples],
        report: OutputArtifact[ReportSection],
        max_images: Parameter[int] = 512,
        batch_size: Parameter[int] = 32):
    """Writes the attention heat maps and galleries of ``model`` on the eval images."""
    import tensorflow as tf
    from tfx.utils import path_utils

    from schemas import features as F
    from schemas.serving_api import IMAGES_INPUT, SCORES_OUTPUT, read_class_names
    from trainer.export.records import record_dataset
    from trainer.families.brand.spec import ATTENTION, ATTENTION_OUTPUT
    serving_dir = path_utils.serving_model_dir(model.uri)
    attention_fn = tf.saved_model.load(serving_dir).signatures[ATTENTION]
    class_names = read_class_names(serving_dir)
    pattern = os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*")
    images, labels, maps, scores = [], [], [], []
    dataset = record_dataset(pattern).map(lambda s: tf.io.parse_single_example(s, {
        F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        F.BRAND: tf.io.FixedLenFeature([], tf.string, default_value=b"")}))
    dataset = dataset.filter(lambda parsed: tf.strings.length(parsed[F.BRAND]) > 0)
    for batch in dataset.take(max_images).batch(batch_size):
        outputs = attention_fn(**{IMAGES_INPUT: batch[F.IMAGE_ENCODED]})
        images += list(batch[F.IMAGE_ENCODED].numpy())
        labels += [b.decode() for b in batch[F.BRAND].numpy()]
        maps.append(outputs[ATTENTION_OUTPUT].numpy())
        scores.append(outputs[SCORES_OUTPUT].numpy())
    summary = attention_logic.write_report(report.uri, images, np.concatenate(maps), labels,
                                           np.concatenate(scores), class_names)
    print(f"BrandAttentionReport: {summary['images']} images, accuracy {summary['accuracy']}, "
          f"written to {report.uri}")


def attention_report(model, examples):
    """The component on the Trainer's model and the ExampleGen examples (the spec's
    extra-component factory)."""
    return BrandAttentionReport(model=model, examples=examples)
