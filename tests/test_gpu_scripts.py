"""The GPU check and builder benchmark scripts keep working (run here on CPU, tiny sizes)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, *args, timeout=600):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_accelerator_check_trains_brand_through_the_trainer_glue(tmp_path):
    out = tmp_path / "check.jsonl"
    result = run_script("check_accelerator_training.py", "--families", "brand",
                        "--image-size", "32", "--batch-size", "4", "--steps", "2",
                        "--mixed-precision", "--json-out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["ok"] and all(row["checks"].values()), row["checks"]
    # Mixed precision is asked for: it runs on a GPU, and float32 runs without one.
    from trainer.training import gpu_count
    assert row["gpus"] == gpu_count()
    assert row["policy"] == ("mixed_float16" if row["gpus"] else "float32")
    assert row["trainable_weights_per_epoch"][0] < row["trainable_weights_per_epoch"][1]


def test_builder_benchmark_pairs_have_the_same_shape(tmp_path):
    out = tmp_path / "bench.jsonl"
    result = run_script("benchmark_builders.py", "--families", "brand", "--image-size", "32",
                        "--batch-size", "2", "--steps", "1", "--repeats", "1",
                        "--json-out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["variant"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {"ours", "plain", "plain_no_attention"}
    # The plain graph is the study's architecture: same parameters, same trainable ones.
    assert rows["ours"]["params"] == rows["plain"]["params"] == 15_275_463
    assert rows["ours"]["trainable_params"] == rows["plain"]["trainable_params"] == 560_775
    assert all(row["images_per_s"] > 0 for row in rows.values())
    assert "ratios (ours / plain" in result.stdout


def test_data_parallel_is_refused_outside_jax():
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "jax":
        pytest.skip("this checks the refusal on a non-JAX backend")
    result = run_script("check_accelerator_training.py", "--data-parallel", timeout=120)
    assert result.returncode == 2 and "needs the JAX backend" in result.stderr
