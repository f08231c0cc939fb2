"""Pure logic of the brand study's attention analysis (numpy + PIL, no TensorFlow).

From the attention maps of the eval images it writes, like the study:
- per brand, the sum of attention per pixel over all its images, on a log scale, as a heat map
  PNG (where each brand's identity lies);
- galleries of the most and least confident images with their attention overlaid;
- ``index.html`` showing them, ``summary.json``, and ``section.html``: the heat maps as a section
  of the family's evaluation report.
"""

from __future__ import annotations

import html
import io
import json
import os
from typing import Sequence

import numpy as np
from PIL import Image

from trainer.evaluation.artifacts import SECTION_HTML
from trainer.evaluation.plots import colorize, gallery_figure

def log_normalize(total: np.ndarray) -> np.ndarray:
    """A summed attention map on a log scale, stretched to 0..1."""
    positive = total[total > 0]
    logged = np.log1p(total / (float(positive.min()) if positive.size else 1.0))
    span = logged.max() - logged.min()
    return (logged - logged.min()) / span if span > 0 else np.zeros_like(logged)


def aggregate(attention: np.ndarray, labels: Sequence[str]) -> dict:
    """``{brand: [h, w] sum of attention}`` over the images of each brand."""
    sums: dict = {}
    for attention_map, label in zip(attention, labels):
        sums[label] = sums.get(label, 0.0) + attention_map.astype(np.float64)
    return sums


def heatmap(total: np.ndarray, size: int) -> Image.Image:
    """The log-scale heat map of a summed attention map, upsampled to ``size``²."""
    return Image.fromarray(colorize(log_normalize(total))).resize((size, size), Image.NEAREST)


def overlay(image: Image.Image, attention_map: np.ndarray, size: int) -> Image.Image:
    """``image`` (resized to ``size``²) with its attention map blended over it."""
    base = image.convert("RGB").resize((size, size))
    span = attention_map.max() - attention_map.min()
    scaled = (attention_map - attention_map.min()) / span if span > 0 else \
        np.zeros_like(attention_map)
    colours = Image.fromarray(colorize(scaled)).resize((size, size), Image.BILINEAR)
    return Image.blend(base, colours, 0.5)


def write_report(output_dir: str, images: Sequence[bytes], attention: np.ndarray,
                 labels: Sequence[str], scores: np.ndarray, class_names: Sequence[str],
                 gallery_size: int = 8, tile: int = 128) -> dict:
    """Writes the heat maps, the two galleries, ``index.html`` and ``summary.json``.

    ``images`` are the encoded eval images, ``attention`` their [N, h, w] maps, ``labels`` their
    true brands and ``scores`` the model's [N, brands] probabilities.
    """
    if not len(images) or len(images) != len(attention) or len(labels) != len(images):
        raise ValueError("images, attention maps and labels must be non-empty and aligned")
    os.makedirs(output_dir, exist_ok=True)
    predicted = scores.argmax(axis=1)
    confidence = scores.max(axis=1)
    heatmaps = {}
    for index, (brand, total) in enumerate(sorted(aggregate(attention, labels).items())):
        name = f"heatmap_{index:03d}.png"  # brands are free text: "Saint Laurent", "A/B"
        heatmap(total, tile * 2).save(os.path.join(output_dir, name))
        heatmaps[brand] = {"file": name, "images": int(sum(1 for lab in labels if lab == brand))}
    order = np.argsort(-confidence)
    galleries = {}
    for kind, chosen in (("most_confident", order[:gallery_size]),
                         ("least_confident", order[::-1][:gallery_size])):
        tiles = [overlay(Image.open(io.BytesIO(images[i])), attention[i], tile) for i in chosen]
        name = f"gallery_{kind}.png"
        captions = [f"true: {labels[i]}\npredicted: {class_names[predicted[i]]} "
                    f"({confidence[i]:.2f})" for i in chosen]
        with open(os.path.join(output_dir, name), "wb") as handle:
            handle.write(gallery_figure(
                tiles, captions, [class_names[predicted[i]] == labels[i] for i in chosen],
                columns=4, title=f"{kind.replace('_', ' ')} eval images, with their attention"))
        galleries[kind] = {"file": name, "images": [
            {"true": labels[i], "predicted": class_names[predicted[i]],
             "confidence": round(float(confidence[i]), 4)} for i in chosen]}
    accuracy = float(np.mean([class_names[p] == t for p, t in zip(predicted, labels)]))
    summary = {"images": len(images), "accuracy": round(accuracy, 4), "heatmaps": heatmaps,
               "galleries": galleries}
    with open(os.path.join(output_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    with open(os.path.join(output_dir, "index.html"), "w") as handle:
        handle.write(_html(summary))
    with open(os.path.join(output_dir, SECTION_HTML), "w") as handle:
        handle.write(_section_html(summary))
    return summary


def _section_html(summary: dict) -> str:
    """The heat maps, for the evaluation report (files referred to by name)."""
    parts = ["<h2>Attention per brand (sum per pixel, log scale)</h2>"]
    for brand, info in summary["heatmaps"].items():
        parts.append(f"<figure style='display:inline-block'><img src='{html.escape(info['file'])}'>"
                     f"<figcaption>{html.escape(brand)} ({info['images']} images)</figcaption>"
                     "</figure>")
    return "\n".join(parts)


def _html(summary: dict) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Brand attention</title>"
             "<style>body{font-family:sans-serif} figure{display:inline-block;margin:8px}"
             "</style></head><body>",
             f"<h1>Brand attention on {summary['images']} eval images</h1>",
             f"<p>Accuracy on these images: {summary['accuracy']:.3f}. Heat maps: the sum of "
             "attention per pixel over each brand's images, log scale.</p><h2>Per brand</h2>"]
    for brand, info in summary["heatmaps"].items():
        parts.append(f"<figure><img src='{html.escape(info['file'])}'><figcaption>"
                     f"{html.escape(brand)} ({info['images']} images)</figcaption></figure>")
    for kind, info in summary["galleries"].items():
        captions = "; ".join(f"{html.escape(i['true'])}→{html.escape(i['predicted'])} "
                             f"{i['confidence']:.2f}" for i in info["images"])
        parts.append(f"<h2>{kind.replace('_', ' ')}</h2><img src='{info['file']}'>"
                     f"<p>{captions}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
