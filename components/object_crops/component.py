"""The ObjectCrops TFX component: per-garment crop examples from records with boxes (a thin
wrapper around :mod:`components.object_crops.logic`). Its ``examples`` output is an ordinary
Examples artifact with the ``records``' splits, so Transform, Trainer and the Evaluator take it as
they take ExampleGen's; ``crops.json`` in it says what was cropped and skipped. ``records`` may
hold several spans (a training window): their crops go into the one output, split by split."""

import json
import os
from typing import List

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import (InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.proto import example_gen_pb2
from tfx.components.util import examples_utils

from components.object_crops import logic

STATS_FILE = "crops.json"


@component
def ObjectCrops(records: InputArtifact[List[standard_artifacts.Examples]],
                examples: OutputArtifact[standard_artifacts.Examples],
                margin: Parameter[float] = 0.1, min_side: Parameter[int] = 16):
    """One example per labelled garment box of ``records`` (one span or several), split by
    split."""
    splits = artifact_utils.decode_split_names(records[0].split_names)
    summary = {}
    for split in splits:
        sources = artifact_utils.get_split_uris(records, split)
        target = os.path.join(examples.uri, f"Split-{split}")
        tf.io.gfile.makedirs(target)
        files = [path for source in sources
                 for path in sorted(tf.io.gfile.glob(os.path.join(source, "*")))]
        stats = logic.write_split(files, os.path.join(target, "crops.gz"), margin, min_side)
        summary[split] = stats.to_json()
        if stats.crops == 0:
            raise ValueError(f"ObjectCrops: no garment boxes in the {split} split "
                             f"({stats.to_json()}); a catalog without boxes trains the category "
                             "family on whole photos (--set category.examples=photos)")
    examples.split_names = artifact_utils.encode_split_names(splits)
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    with tf.io.gfile.GFile(os.path.join(examples.uri, STATS_FILE), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
