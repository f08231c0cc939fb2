"""Where the category family's examples come from: per-garment crops of the records' boxes (the
``ObjectCrops`` component) or the records' whole photos."""

from __future__ import annotations


def example_source(config, records):
    """The ObjectCrops component over the ``records`` channel, or None for whole photos."""
    if config.examples != "object_crops":
        return None
    from components.object_crops.component import ObjectCrops
    return ObjectCrops(records=records, margin=config.crop_margin,
                       min_side=config.crop_min_side)
