"""A tiny seeded catalog every family can learn from in a few dozen training steps.

Each image is one colour with noise: its hue (red, green or blue) is the garment category and
the ``color:`` attribute, its brightness (dark or light) is the brand, and a white square in a
corner marks an ``item:bag``. A third of the records annotate only the ``item:`` attributes, as
CCP photos do, so a model trained on them must treat the other attribute families as unknown.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from components.catalog_import.records import FashionRecord
from components.catalog_import.spans import SpanWriter

HUES = {"dress": ("red", (1.0, 0.15, 0.15)), "jeans": ("blue", (0.15, 0.15, 1.0)),
        "coat": ("green", (0.15, 1.0, 0.15))}
BRANDS = {"Saint Laurent": 0.45, "lumen": 1.0}  # a brand name with a space, as real ones have


def record(index: int, rng: np.random.Generator, size: int = 40) -> FashionRecord:
    category = list(HUES)[rng.integers(len(HUES))]
    brand = list(BRANDS)[rng.integers(len(BRANDS))]
    colour_name, hue = HUES[category]
    pixels = np.array(hue) * BRANDS[brand] * 230 + rng.normal(0, 12, (size, size, 3))
    bag = bool(rng.random() < 0.5)
    if bag:
        pixels[2:12, 2:12] = 255
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    items = ["item:" + category] + (["item:bag"] if bag else [])
    attributes = items if index % 3 == 0 else items + [f"color:{colour_name}"]
    return FashionRecord(source_id=f"learnable-{index:04d}", encoded=buffer.getvalue(),
                         format="png", height=size, width=size, category=category,
                         attributes=tuple(attributes), brand=brand)


def write(root: str, count: int = 240, seed: int = 0) -> str:
    """Writes ``count`` records as span 1 (train and eval) under ``root``; returns the span
    folder."""
    rng = np.random.default_rng(seed)
    with SpanWriter(root, num_shards=1, eval_fraction=0.25) as writer:
        for index in range(count):
            writer.add(record(index, rng))
    return writer.summary.to_json()["span_dir"]
