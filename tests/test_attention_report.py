"""The brand attention analysis: per-brand log-scale heat maps, galleries, HTML."""

import io
import json

import numpy as np
from PIL import Image

from trainer.evaluation.plots import colorize
from trainer.families.brand import attention_logic as logic


def _jpeg(color):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 60), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_per_brand_sums_and_log_scale():
    attention = np.zeros((3, 4, 4))
    attention[0, 0, 0] = attention[1, 0, 0] = 1.0   # brand a looks top-left
    attention[2, 3, 3] = 1.0                        # brand b bottom-right
    sums = logic.aggregate(attention, ["a", "a", "b"])
    assert sums["a"][0, 0] == 2.0 and sums["b"][3, 3] == 1.0 and sums["a"].sum() == 2.0
    scaled = logic.log_normalize(np.array([[0.0, 1.0], [10.0, 1000.0]]))
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    assert scaled[0, 1] > 0.1  # the log scale keeps small sums visible next to a large one
    colours = colorize(np.array([[0.0, 1.0]]))
    assert colours[0, 0].tolist() == [0, 0, 4] and colours[0, 1].tolist() == [252, 255, 164]


def test_report_files(tmp_path):
    rng = np.random.default_rng(0)
    attention = rng.random((6, 4, 4))
    attention /= attention.sum(axis=(1, 2), keepdims=True)
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.99, 0.01],
                       [0.5, 0.5]])
    labels = ["a", "a", "b/c", "b/c", "a", "b/c"]  # brands are free text
    summary = logic.write_report(str(tmp_path), [_jpeg("red")] * 6, attention, labels, scores,
                                 ["a", "b/c"], gallery_size=2, tile=32)
    assert summary["accuracy"] == round(5 / 6, 4)  # the 0.5/0.5 tie goes to "a": wrong
    assert set(summary["heatmaps"]) == {"a", "b/c"} and summary["heatmaps"]["b/c"]["images"] == 3
    heatmap_a, heatmap_b = (summary["heatmaps"][brand]["file"] for brand in ("a", "b/c"))
    most = [i["confidence"] for i in summary["galleries"]["most_confident"]["images"]]
    least = [i["confidence"] for i in summary["galleries"]["least_confident"]["images"]]
    assert most == [0.99, 0.9] and least == [0.5, 0.55]
    assert Image.open(tmp_path / heatmap_a).size == (64, 64)
    gallery = Image.open(tmp_path / "gallery_most_confident.png")
    assert gallery.size[0] > gallery.size[1] > 100  # four captioned tiles in a row
    html = (tmp_path / "index.html").read_text()
    assert heatmap_b in html and "b/c" in html and "gallery_least_confident.png" in html
    section = (tmp_path / "section.html").read_text()  # for the evaluation report
    assert heatmap_a in section and heatmap_b in section
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
