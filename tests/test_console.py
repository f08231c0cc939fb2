"""RunConsole: progress lines on the terminal, everything else in the run's log file."""

import os

import pipeline_config as pc
from components.catalog_import.spans import SpanWriter
from components.synthetic_catalog import generator
from pipeline.console import RunConsole


_RUN = """
import logging, sys
import pipeline_config as pc
from tfx import v1 as tfx
from pipeline.beam_staging import skip_staging_for_local_runners
from pipeline.console import PROGRESS_LOGGER, RunConsole
from pipeline.pipeline import create_validation_pipeline
config = pc.get_config("smoke", workspace=sys.argv[1])
skip_staging_for_local_runners()
with RunConsole(sys.argv[2], heartbeat_seconds=3600) as console:
    tfx.orchestration.LocalDagRunner().run(create_validation_pipeline(config))
    logging.getLogger(PROGRESS_LOGGER).info("epoch %d/%d loss %.2f", 1, 3, 0.5)
    print("a library printing to stdout")
print(sorted(console.component_seconds))
print(console.table(), file=sys.stderr)
"""


def test_a_run_shows_components_and_their_seconds_and_logs_the_rest(tmp_path):
    """In a process of its own, as ``fashion run`` runs it: the terminal gets one line per
    component started and done, epochs and the table of seconds; TFX's absl lines, library
    output and warnings go to the log file."""
    import ast
    import subprocess
    import sys
    config = pc.get_config("smoke", workspace=str(tmp_path / "ws"))
    with SpanWriter(config.catalog_root, num_shards=1) as writer:
        for record in generator.generate(3, 30, 64):
            writer.add(record)
    log_path = tmp_path / "ws" / "logs" / "run.log"
    result = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "ws"), str(log_path)],
                            capture_output=True, text=True, timeout=600,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-3000:]
    nodes = ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
             "AnomalyGate", "CatalogDriftValidator"]
    assert ast.literal_eval(result.stdout.strip().splitlines()[-1]) == sorted(nodes)
    shown = result.stderr
    for node in ("StatisticsGen", "CatalogDriftValidator"):  # the ones taking seconds
        assert f"] {node} done (" in shown, node
    assert "] ImportSchemaGen" not in shown  # instant: only in the table
    assert "training: epoch 1/3 loss 0.50" in shown
    assert "CatalogDriftValidator" in shown.strip().splitlines()[-1] or any(
        line.strip().startswith("CatalogDriftValidator") for line in shown.splitlines())
    assert "WARNING:absl" not in shown and "a library printing" not in shown + result.stdout
    logged = log_path.read_text()
    assert "Component StatisticsGen is running." in logged
    assert "a library printing to stdout" in logged


def test_a_failing_component_is_named_on_the_terminal(tmp_path, capfd):
    import pytest
    capfd.readouterr()
    with pytest.raises(RuntimeError):
        with RunConsole(str(tmp_path / "run.log"), heartbeat_seconds=3600) as console:
            console.started("Trainer")
            raise RuntimeError("boom")
    shown = capfd.readouterr().err
    assert "] Trainer running ..." in shown and "Trainer FAILED after" in shown
    assert console.component_seconds == {}
    assert os.path.isfile(tmp_path / "run.log")
