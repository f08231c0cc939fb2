"""``fashion runs``: past runs read back from ML Metadata (pipeline.runs)."""

import json
import subprocess
import sys

import pytest

import pipeline_config as pc
from components.synthetic_catalog import generator
from conftest import REPO_ROOT
from pipeline import runs
from test_catalog_drift import _darker, _run, _write_span


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two validation runs: span-1 accepted, then a darker span-2 that stops at the drift
    check."""
    config = pc.get_config("smoke", workspace=str(tmp_path_factory.mktemp("ws")))
    _write_span(config.catalog_root, generator.generate(7, 40, 64))
    _run(config)
    _write_span(config.catalog_root, [_darker(r) for r in generator.generate(8, 40, 64)])
    with pytest.raises(RuntimeError):
        _run(config)
    return config


def test_runs_are_listed_newest_first_with_spans_states_and_seconds(two_runs):
    found = runs.list_runs(two_runs.metadata_path)
    assert [run["spans"] for run in found] == [[2], [1]]
    newest, oldest = found
    assert newest["failed"] == ["CatalogDriftValidator"] and not oldest["failed"]
    assert oldest["states"] == {"COMPLETE": 6}
    assert set(oldest["component_seconds"]) == {
        "ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
        "AnomalyGate", "CatalogDriftValidator"}
    assert oldest["component_seconds"]["StatisticsGen"] > 0
    assert oldest["start_ms"] <= oldest["end_ms"] <= newest["start_ms"]
    assert runs.list_runs(two_runs.metadata_path, limit=1)[0]["id"] == newest["id"]


def test_a_runs_lineage_names_each_executions_artifacts(two_runs):
    newest = runs.list_runs(two_runs.metadata_path)[0]
    steps = {step["node"]: step for step in runs.lineage(two_runs.metadata_path, newest["id"])}
    (kind, uri, span), = steps["StatisticsGen"]["inputs"]["examples"]
    assert kind == "Examples" and span == 2 and uri.startswith(two_runs.pipeline_root)
    assert steps["CatalogDriftValidator"]["state"] == "FAILED"
    with pytest.raises(KeyError, match="no run"):
        runs.lineage(two_runs.metadata_path, "not-a-run")


def test_the_command_prints_runs_and_fails_clearly_without_a_store(two_runs, tmp_path):
    def fashion(*args):
        return subprocess.run([sys.executable, "-m", "fashion_cli", "runs", *args],
                              capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    listed = fashion("--workspace", two_runs.workspace_dir, "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [run["spans"] for run in json.loads(listed.stdout)["runs"]] == [[2], [1]]
    text = fashion("--workspace", two_runs.workspace_dir).stdout
    assert "FAILED at CatalogDriftValidator" in text and "spans [1]" in text
    missing = fashion("--workspace", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no ML Metadata store" in missing.stderr
