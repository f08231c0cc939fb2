"""The dual encoder family's Transform fragment: the record's caption, normalised
(``captions.normalize``), with its label weight (0 for a record without a caption)."""

from __future__ import annotations

import tensorflow as tf

from schemas import features as F
from trainer import preprocessing
from trainer.families.dual_encoder.captions import normalize
from trainer.families.dual_encoder.features import CAPTION


def transform_fn(inputs, custom_config) -> dict:
    """``dual_encoder_caption`` and its weight from ``fashion/caption``."""
    caption = normalize(preprocessing.first_value(inputs[F.CAPTION]))
    return {CAPTION: caption,
            F.label_weight_feature(CAPTION): tf.cast(tf.strings.length(caption) > 0,
                                                     tf.float32)}
