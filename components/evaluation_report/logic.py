"""Pure logic of a family's evaluation report: HTML with its plots (numpy + PIL, no TF).

It takes what the family's evaluation says (``trainer.evaluation.reports.EvaluationSummary``)
and the blessing verdict and writes ``index.html`` with the verdict, the failed thresholds, the
overall metrics, each section drawn (bar charts, matrices as heat maps, HTML) and, when an extra
component of the family wrote one, its section. ``verdict.json`` states the verdict for programs:
``{"verdict": "BLESSED" | "NOT_BLESSED", ...}``.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from trainer.evaluation.artifacts import SECTION_HTML
from trainer.evaluation.plots import colorize
from trainer.evaluation.reports import BLESSED, NOT_BLESSED, EvaluationSummary, Section

VERDICT_FILE = "verdict.json"


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


def _section_html(section: Section, index: int, output_dir: str) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.bars:
        name = f"section_{index}_bars.png"
        bar_chart(section.bars).save(os.path.join(output_dir, name))
        parts.append(f"<img src='{name}'>")
    if section.matrix is not None and len(section.names):
        name = f"section_{index}_matrix.png"
        confusion_image(section.matrix, section.names).save(os.path.join(output_dir, name))
        parts.append(f"<img src='{name}'>")
    if section.html:
        parts.append(section.html)
    return "\n".join(parts)


def _copy_section(section_dir: str, output_dir: str) -> str:
    """Copies an extra component's section files next to the report; returns its fragment."""
    fragment = os.path.join(section_dir, SECTION_HTML)
    if not os.path.isfile(fragment):
        return ""
    for name in os.listdir(section_dir):
        source = os.path.join(section_dir, name)
        if os.path.isfile(source) and name not in (SECTION_HTML, "index.html"):
            shutil.copy(source, os.path.join(output_dir, name))
    with open(fragment, encoding="utf-8") as handle:
        return handle.read()


def write_report(output_dir: str, family: str, model_uri: str, blessed: bool,
                 summary: EvaluationSummary, blessing_metric: str = "",
                 section_dir: Optional[str] = None) -> str:
    """Writes ``index.html`` (and its PNGs) and ``verdict.json`` into ``output_dir``; returns
    the HTML path."""
    os.makedirs(output_dir, exist_ok=True)
    verdict = BLESSED if blessed else NOT_BLESSED
    with open(os.path.join(output_dir, VERDICT_FILE), "w") as handle:
        json.dump({"family": family, "model": model_uri, "verdict": verdict,
                   "blessing_metric": blessing_metric,
                   "blessing_metric_value": summary.overall.get(blessing_metric),
                   "failures": list(summary.failures)}, handle, indent=2)
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{html.escape(family)} evaluation</title><style>body{{font-family:"
             "sans-serif}} td,th{padding:2px 10px;text-align:left}</style></head><body>",
             f"<h1>{html.escape(family)} evaluation</h1>",
             f"<p>Model {html.escape(model_uri)}: <b id='verdict' data-verdict='{verdict}'>"
             f"{'blessed' if blessed else 'NOT blessed'}</b></p>"]
    if summary.failures:
        parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in summary.failures)
                     + "</ul>")
    overall = {k: v for k, v in summary.overall.items() if "[" not in k}
    parts.append("<h2>Overall</h2><table>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td></tr>" for k, v in sorted(
            overall.items())) + "</table>")
    for index, section in enumerate(summary.sections):
        parts.append(_section_html(section, index, output_dir))
    if section_dir and os.path.isdir(section_dir):
        parts.append(_copy_section(section_dir, output_dir))
    parts.append("</body></html>")
    path = os.path.join(output_dir, "index.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
    return path


def read_verdict(report_dir: str) -> dict:
    """The ``verdict.json`` a report folder holds."""
    with open(os.path.join(report_dir, VERDICT_FILE), encoding="utf-8") as handle:
        return json.load(handle)
