"""The brand family's Transform fragment: the record's brand as a vocabulary id (-1 when it has
none) with its label weight."""

from __future__ import annotations

from schemas import features as F
from trainer import preprocessing
from trainer.families.brand.features import BRAND_LABEL, BRAND_VOCABULARY


def transform_fn(inputs, custom_config) -> dict:
    """``brand_label`` and its weight from ``fashion/brand``."""
    return preprocessing.with_label_weight(
        BRAND_LABEL, preprocessing.vocabulary_ids(inputs[F.BRAND], BRAND_VOCABULARY))
