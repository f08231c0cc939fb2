"""Pure logic of a family's evaluation report: HTML with its plots (matplotlib, no TF).

It takes what the family's evaluation says (``trainer.evaluation.reports.EvaluationSummary``)
and the blessing verdict and writes ``index.html`` with the verdict, the failed thresholds, the
overall metrics, each section drawn (bar charts, confusion matrices with values and a colour
scale, HTML), the training curves (the Trainer's ``history.json``) and, when an extra
component of the family wrote one, its section. ``verdict.json`` states the verdict for programs:
``{"verdict": "BLESSED" | "NOT_BLESSED", ...}``.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from typing import Optional

from trainer.evaluation.artifacts import SECTION_HTML
from trainer.evaluation.plots import bar_figure, confusion_figure, curves_figure
from trainer.evaluation.reports import BLESSED, NOT_BLESSED, EvaluationSummary, Section

VERDICT_FILE = "verdict.json"


def _section_html(section: Section, index: int, output_dir: str) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.bars:
        name = f"section_{index}_bars.png"
        with open(os.path.join(output_dir, name), "wb") as handle:
            handle.write(bar_figure(section.bars, section.title))
        parts.append(f"<img src='{name}'>")
    if section.matrix is not None and len(section.names):
        name = f"section_{index}_matrix.png"
        with open(os.path.join(output_dir, name), "wb") as handle:
            handle.write(confusion_figure(section.matrix, section.names))
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


def _curves_html(history_path: str, output_dir: str) -> str:
    if not os.path.isfile(history_path):
        return ""
    with open(history_path) as handle:
        history = json.load(handle)
    if not any(history.get("metrics", {}).values()):
        return ""
    with open(os.path.join(output_dir, "training_curves.png"), "wb") as handle:
        handle.write(curves_figure(history["metrics"], history.get("resumed_at_epoch")))
    return "<h2>Training</h2><img src='training_curves.png' alt='training curves'>"


def write_report(output_dir: str, family: str, model_uri: str, blessed: bool,
                 summary: EvaluationSummary, blessing_metric: str = "",
                 section_dir: Optional[str] = None, history_path: str = "") -> str:
    """Writes ``index.html`` (and its PNGs) and ``verdict.json`` into ``output_dir``; returns
    the HTML path. ``history_path``: the Trainer's ``history.json`` (training curves)."""
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
    if history_path:
        parts.append(_curves_html(history_path, output_dir))
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
