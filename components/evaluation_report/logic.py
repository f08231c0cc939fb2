"""Pure logic of a family's evaluation report: HTML with its plots (numpy + PIL, no TF).

It takes what TFMA computed (overall metrics, per-slice or per-class metrics, the confusion
matrix entries and the blessing verdict) and writes ``index.html`` with a metrics table, a
per-class bar chart, the confusion matrix as a heat map and, for the brand family, the attention
heat maps next to them.
"""

from __future__ import annotations

import html
import os
import shutil
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from components.attention_report.logic import colorize


def metric_name(metric: str, sub_key: str = "", class_names: Sequence[str] = ()) -> str:
    """A readable name for a TFMA metric: ``micro_f1_score``, ``f1_score[pattern:solid]``."""
    if "\n_" in metric:  # TFMA names aggregates after their options: "micro_average: true\n_x"
        options, _, base = metric.partition("\n_")
        metric = f"{options.split('_average')[0]}_{base}"
    if not sub_key:
        return metric
    if sub_key.startswith("classId:") and class_names:
        index = int(sub_key.split(":", 1)[1])
        if index < len(class_names):
            sub_key = class_names[index]
    return f"{metric}[{sub_key}]"


def flatten_metrics(metrics: dict, class_names: Sequence[str] = ()) -> dict:
    """``{name: value}`` of one slice of ``tfma.load_eval_result(...).slicing_metrics``, plus
    ``macro_f1_score`` (the mean of the defined per-class F1) when per-class F1 exists."""
    values, per_class_f1 = {}, []
    for sub_key, named in metrics.get("", {}).items():
        for metric, value in named.items():
            if "doubleValue" in value:
                number = float(value["doubleValue"])
                values[metric_name(metric, sub_key, class_names)] = round(number, 4)
                if sub_key and metric == "f1_score" and number == number:
                    per_class_f1.append(number)
    if per_class_f1:
        values["macro_f1_score"] = round(sum(per_class_f1) / len(per_class_f1), 4)
    return values


def bar_chart(values: dict, width: int = 640, bar: int = 16) -> Image.Image:
    """Horizontal bars of ``{name: value in 0..1}``, sorted high to low, with labels."""
    items = sorted(values.items(), key=lambda kv: -kv[1])
    label_width = 8 * max((len(name) for name in values), default=4) + 16
    image = Image.new("RGB", (width, max(1, len(items)) * (bar + 4) + 8), "white")
    draw = ImageDraw.Draw(image)
    span = width - label_width - 60
    for row, (name, value) in enumerate(items):
        top = 4 + row * (bar + 4)
        draw.text((4, top + 2), name, fill="black")
        draw.rectangle([label_width, top, label_width + int(span * max(0.0, min(1.0, value))),
                        top + bar], fill=(60, 110, 180))
        draw.text((label_width + span + 6, top + 2), f"{value:.3f}", fill="black")
    return image


def confusion_image(matrix: np.ndarray, names: Sequence[str], cell: int = 24) -> Image.Image:
    """Rows true, columns predicted; each row normalised, coloured on the shared ramp."""
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float),
                           where=rows > 0)
    label_width = 8 * max((len(n) for n in names), default=4) + 8
    size = len(names) * cell
    image = Image.new("RGB", (label_width + size, label_width + size), "white")
    grid = Image.fromarray(colorize(normalised)).resize((size, size), Image.NEAREST)
    image.paste(grid, (label_width, label_width))
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(names):
        draw.text((4, label_width + i * cell + cell // 3), name, fill="black")
        column = Image.new("RGB", (label_width, cell), "white")
        ImageDraw.Draw(column).text((4, cell // 3), name, fill="black")
        image.paste(column.rotate(90, expand=True), (label_width + i * cell, 0))
    return image


def confusion_matrix(entries: Sequence[dict], names: Sequence[str]) -> np.ndarray:
    """A dense matrix from TFMA ``multiClassConfusionMatrixAtThresholds`` entries."""
    matrix = np.zeros((len(names), len(names)))
    for entry in entries:
        actual, predicted = int(entry.get("actualClassId", 0)), int(
            entry.get("predictedClassId", 0))
        if 0 <= actual < len(names) and 0 <= predicted < len(names):
            matrix[actual, predicted] += float(entry.get("numWeightedExamples", 0.0))
    return matrix


def write_report(output_dir: str, family: str, model_uri: str, blessed: bool,
                 failures: Sequence[str], overall: dict, per_class: dict,
                 per_class_metric: str, confusion: Optional[np.ndarray] = None,
                 class_names: Sequence[str] = (), attention_dir: Optional[str] = None) -> str:
    """Writes ``index.html`` (and its PNGs) into ``output_dir``; returns the HTML path."""
    os.makedirs(output_dir, exist_ok=True)
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{html.escape(family)} evaluation</title><style>body{{font-family:"
             "sans-serif}} td,th{padding:2px 10px;text-align:left}</style></head><body>",
             f"<h1>{html.escape(family)} evaluation</h1>",
             f"<p>Model {html.escape(model_uri)}: <b>{'blessed' if blessed else 'NOT blessed'}"
             "</b></p>"]
    if failures:
        parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in failures) +
                     "</ul>")
    parts.append("<h2>Overall</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td></tr>" for k, v in sorted(
            overall.items())) + "</table>")
    if per_class:
        bar_chart(per_class).save(os.path.join(output_dir, "per_class.png"))
        parts.append(f"<h2>{html.escape(per_class_metric)} per class</h2>"
                     "<img src='per_class.png'>")
    if confusion is not None and len(class_names):
        confusion_image(confusion, class_names).save(os.path.join(output_dir,
                                                                  "confusion_matrix.png"))
        parts.append("<h2>Confusion matrix (rows: true, columns: predicted; row-normalised)"
                     "</h2><img src='confusion_matrix.png'>")
    if attention_dir and os.path.isdir(attention_dir):
        heatmaps = sorted(f for f in os.listdir(attention_dir) if f.startswith("heatmap_"))
        parts.append("<h2>Attention per brand (sum per pixel, log scale)</h2>")
        for name in heatmaps:
            shutil.copy(os.path.join(attention_dir, name), os.path.join(output_dir, name))
            brand = name[len("heatmap_"):-len(".png")]
            parts.append(f"<figure style='display:inline-block'><img src='{name}'>"
                         f"<figcaption>{html.escape(brand)}</figcaption></figure>")
    parts.append("</body></html>")
    path = os.path.join(output_dir, "index.html")
    with open(path, "w") as handle:
        handle.write("\n".join(parts))
    return path
