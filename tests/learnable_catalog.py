"""A tiny seeded catalog every family can learn from in a few dozen training steps.

Each image is one garment, a noisy rectangle on a backdrop of the same hue at half its
brightness: its hue (red, green or blue) is the garment category and the ``color:`` attribute,
its brightness (dark or light) is the brand, its box (annotated with the category's
super-category) is what a detector finds, and a white square in a corner marks an
``item:bag``; the caption says all but the brand ("a person wearing a red dress with a
bag"). A third of the records annotate only the ``item:`` attributes, as CCP photos do,
so a model trained on them must treat the other attribute families as unknown.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from components.catalog_import.records import FashionRecord, GarmentObject, caption_for
from components.catalog_import.spans import SpanWriter

HUES = {"dress": ("red", (1.0, 0.15, 0.15)), "jeans": ("blue", (0.15, 0.15, 1.0)),
        "coat": ("green", (0.15, 1.0, 0.15))}
BRANDS = {"Saint Laurent": 0.45, "lumen": 1.0}  # a brand name with a space, as real ones have
BOX_SIDES = (0.35, 0.8)  # a garment's width and height, as fractions of the image's


def record(index: int, rng: np.random.Generator, size: int = 40) -> FashionRecord:
    category = list(HUES)[rng.integers(len(HUES))]
    brand = list(BRANDS)[rng.integers(len(BRANDS))]
    colour_name, hue = HUES[category]
    colour = np.array(hue) * BRANDS[brand] * 230
    pixels = np.broadcast_to(colour * 0.5, (size, size, 3)).copy()
    width, height = rng.integers(int(size * BOX_SIDES[0]), int(size * BOX_SIDES[1]), size=2)
    left, top = rng.integers(0, size - width + 1), rng.integers(0, size - height + 1)
    pixels[top:top + height, left:left + width] = colour
    pixels += rng.normal(0, 12, (size, size, 3))
    bag = bool(rng.random() < 0.5)
    if bag:
        pixels[2:12, 2:12] = 255
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    items = ["item:" + category] + (["item:bag"] if bag else [])
    attributes = items if index % 3 == 0 else items + [f"color:{colour_name}"]
    return FashionRecord(source_id=f"learnable-{index:04d}", encoded=buffer.getvalue(),
                         format="png", height=size, width=size, category=category,
                         objects=(GarmentObject(category, (left / size, top / size,
                                                           (left + width) / size,
                                                           (top + height) / size)),),
                         attributes=tuple(attributes), brand=brand,
                         caption=caption_for([category], ["bag"] if bag else [],
                                             {category: colour_name}))


def write(root: str, count: int = 240, seed: int = 0) -> str:
    """Writes ``count`` records as span 1 (train and eval) under ``root``; returns the span
    folder."""
    rng = np.random.default_rng(seed)
    with SpanWriter(root, num_shards=1, eval_fraction=0.25) as writer:
        for index in range(count):
            writer.add(record(index, rng))
    return writer.summary.to_json()["span_dir"]
