"""A family's evaluation report: metric names, confusion matrix, bars, HTML."""

import numpy as np
from PIL import Image

from components.evaluation_report import logic


def test_metric_names_and_flattening():
    assert logic.metric_name("micro_average: true\n_f1_score") == "micro_f1_score"
    assert logic.metric_name("f1_score", "classId:1", ["a", "b"]) == "f1_score[b]"
    metrics = {"": {"": {"example_count": {"doubleValue": 4.0}},
                    "classId:0": {"f1_score": {"doubleValue": 0.5}},
                    "classId:1": {"f1_score": {"doubleValue": float("nan")}},
                    "classId:2": {"f1_score": {"doubleValue": 1.0}}}}
    flat = logic.flatten_metrics(metrics, ["a", "b", "c"])
    assert flat["example_count"] == 4.0 and flat["f1_score[a]"] == 0.5
    assert flat["macro_f1_score"] == 0.75  # the undefined F1 of "b" is left out


def test_confusion_matrix_and_report(tmp_path):
    entries = [{"actualClassId": 0, "predictedClassId": 0, "numWeightedExamples": 3.0},
               {"actualClassId": 0, "predictedClassId": 1, "numWeightedExamples": 1.0},
               {"actualClassId": 1, "predictedClassId": 1, "numWeightedExamples": 2.0},
               {"actualClassId": 7, "predictedClassId": 1, "numWeightedExamples": 9.0}]
    matrix = logic.confusion_matrix(entries, ["coat", "dress"])
    assert matrix.tolist() == [[3.0, 1.0], [0.0, 2.0]]
    attention = tmp_path / "attention"
    attention.mkdir()
    Image.new("RGB", (8, 8)).save(attention / "heatmap_aurelia.png")
    path = logic.write_report(str(tmp_path / "report"), "brand", "/m/1", False,
                              ["accuracy (change vs the blessed baseline) fails"],
                              {"accuracy": 0.5}, {"coat": 0.75, "dress": 1.0}, "accuracy",
                              matrix, ["coat", "dress"], str(attention))
    text = open(path).read()
    assert "NOT blessed" in text and "change vs the blessed baseline" in text
    for name in ("per_class.png", "confusion_matrix.png", "heatmap_aurelia.png"):
        assert (tmp_path / "report" / name).exists() and name in text
    bars = np.asarray(Image.open(tmp_path / "report" / "per_class.png"))
    assert bars.shape[0] >= 2 * 16
