"""A family's evaluation report: metric names, sections, an extra component's section, and a
verdict programs can read."""

import numpy as np
from PIL import Image

from components.evaluation_report import logic
from trainer.evaluation import reports


def test_metric_names_and_flattening():
    assert reports.metric_name("micro_average: true\n_f1_score") == "micro_f1_score"
    assert reports.metric_name("f1_score", "classId:1", ["a", "b"]) == "f1_score[b]"
    metrics = {"": {"": {"example_count": {"doubleValue": 4.0}},
                    "classId:0": {"f1_score": {"doubleValue": 0.5}},
                    "classId:1": {"f1_score": {"doubleValue": float("nan")}},
                    "classId:2": {"f1_score": {"doubleValue": 1.0}}}}
    flat = reports.flatten_metrics(metrics, ["a", "b", "Saint Laurent"])
    assert flat["example_count"] == 4.0 and flat["f1_score[a]"] == 0.5
    assert flat["f1_score[Saint Laurent]"] == 1.0
    assert flat["macro_f1_score"] == 0.75  # the undefined F1 of "b" is left out


def test_confusion_matrix_entries():
    entries = [{"actualClassId": 0, "predictedClassId": 0, "numWeightedExamples": 3.0},
               {"actualClassId": 0, "predictedClassId": 1, "numWeightedExamples": 1.0},
               {"actualClassId": 1, "predictedClassId": 1, "numWeightedExamples": 2.0},
               {"actualClassId": 7, "predictedClassId": 1, "numWeightedExamples": 9.0}]
    assert reports.confusion_matrix(entries, ["coat", "dress"]).tolist() == [[3.0, 1.0],
                                                                               [0.0, 2.0]]


def _summary():
    return reports.EvaluationSummary(
        slices={"overall": {"sparse_categorical_accuracy": 0.5, "f1_score[coat]": 0.4}},
        failures=["sparse_categorical_accuracy (change vs the blessed baseline) fails"],
        sections=[reports.Section("accuracy per class", bars={"coat": 0.75, "dress": 1.0}),
                  reports.Section("Confusion matrix", matrix=np.array([[3.0, 1.0], [0.0, 2.0]]),
                                  names=["coat", "dress"])])


def test_report_draws_every_section_and_states_its_verdict(tmp_path):
    section = tmp_path / "section"
    section.mkdir()
    Image.new("RGB", (8, 8)).save(section / "heatmap_aurelia.png")
    (section / "section.html").write_text("<h2>extra</h2><img src='heatmap_aurelia.png'>")
    path = logic.write_report(str(tmp_path / "report"), "brand", "/m/1", False, _summary(),
                              "sparse_categorical_accuracy", str(section))
    text = open(path).read()
    assert "NOT blessed" in text and "data-verdict='NOT_BLESSED'" in text
    assert "change vs the blessed baseline" in text
    for name in ("section_0_bars.png", "section_1_matrix.png", "heatmap_aurelia.png"):
        assert (tmp_path / "report" / name).exists() and name in text
    assert "<h2>extra</h2>" in text
    bars = np.asarray(Image.open(tmp_path / "report" / "section_0_bars.png"))
    assert bars.shape[0] >= 2 * 16
    matrix = Image.open(tmp_path / "report" / "section_1_matrix.png")
    assert matrix.size[0] > matrix.size[1]  # the colour scale beside the matrix
    verdict = logic.read_verdict(str(tmp_path / "report"))
    assert verdict["verdict"] == "NOT_BLESSED" and verdict["blessing_metric_value"] == 0.5
    assert verdict["failures"] == _summary().failures


def test_the_report_plots_the_training_curves(tmp_path):
    import json
    history = tmp_path / "history.json"
    history.write_text(json.dumps({"resumed_at_epoch": None, "metrics": {
        "loss": [1.2, 0.8, 0.6], "val_loss": [1.3, 1.0, 0.9],
        "accuracy": [0.4, 0.6, 0.7], "val_accuracy": [0.35, 0.5, 0.55]}}))
    path = logic.write_report(str(tmp_path / "report"), "category", "/m/3", True, _summary(),
                              history_path=str(history))
    assert "training_curves.png" in open(path).read()
    curves = Image.open(tmp_path / "report" / "training_curves.png")
    assert curves.size[0] > 600 and len(np.unique(np.asarray(curves))) > 10
    logic.write_report(str(tmp_path / "plain"), "category", "/m/3", True, _summary(),
                       history_path=str(tmp_path / "none.json"))  # no history: no curves
    assert "training_curves" not in (tmp_path / "plain" / "index.html").read_text()


def test_a_blessed_report_says_so(tmp_path):
    logic.write_report(str(tmp_path), "category", "/m/2", True, _summary())
    assert logic.read_verdict(str(tmp_path))["verdict"] == "BLESSED"
    assert "data-verdict='BLESSED'" in (tmp_path / "index.html").read_text()
