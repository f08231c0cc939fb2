"""The local Beam cluster (pipeline.beam_cluster): started and stopped as a script would, it
runs a Beam pipeline submitted through the Job API on several SDK workers of its own, and
leaves no process behind."""

import json
import os
import subprocess
import sys

import pytest

import pipeline_config as pc
from pipeline.beam_cluster import LocalBeamCluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tag_with_worker(value):
    return value % 5, os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_a_pipeline_runs_on_the_cluster_workers_and_stop_leaves_nothing(tmp_path):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    state = tmp_path / "state"
    # the workers import this module (its _tag_with_worker) from PYTHONPATH, as they would a
    # project installed in their environment
    started = subprocess.run(
        [sys.executable, "-m", "pipeline.beam_cluster", "start", "--state", str(state),
         "--workers", "2"], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "tests")})
    assert started.returncode == 0, started.stderr[-3000:]
    assert "--set beam.runner=PortableRunner --set beam.job_endpoint=localhost:" in \
        started.stdout
    cluster = LocalBeamCluster(str(state))
    recorded = cluster.state()
    try:
        with pytest.raises(RuntimeError, match="already recorded"):
            LocalBeamCluster(str(state)).start()
        beam_config = cluster.beam_config()
        assert beam_config.runner == "PortableRunner" and beam_config.direct_num_workers == 2
        output = tmp_path / "out"
        with beam.Pipeline(options=PipelineOptions(beam_config.args())) as pipeline:
            _ = (pipeline | beam.Create(range(20000)) | beam.Reshuffle()
                 | beam.Map(_tag_with_worker) | beam.GroupByKey()
                 | beam.MapTuple(lambda key, pids: json.dumps([key, sorted(set(pids)),
                                                                len(pids)]))
                 | beam.io.WriteToText(str(output)))
        rows = [json.loads(line) for path in tmp_path.glob("out*")
                for line in open(path)]
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "pipeline.beam_cluster", "stop", "--state", str(state)],
            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert sorted(key for key, _, _ in rows) == [0, 1, 2, 3, 4]
    assert sum(count for _, _, count in rows) == 20000  # none dropped, none duplicated
    workers = {pid for _, pids, _ in rows for pid in pids}
    assert len(workers) == 2, workers  # both SDK workers took bundles
    assert os.getpid() not in workers  # ... and neither is this process
    assert not any(_alive(pid) for pid in recorded["pids"])
    assert not any(_alive(pid) for pid in workers)
    assert not os.path.exists(cluster.state_path)
    assert "no cluster recorded" in subprocess.run(
        [sys.executable, "-m", "pipeline.beam_cluster", "status", "--state", str(state)],
        capture_output=True, text=True, cwd=ROOT, timeout=60).stdout


def test_portable_beam_arguments_and_staging():
    from pipeline.beam_staging import needs_tfx_package
    portable = pc.BeamConfig(runner="PortableRunner", job_endpoint="localhost:8099",
                             worker_pool="localhost:50000", direct_num_workers=2)
    args = portable.args()
    assert {"--runner=PortableRunner", "--job_endpoint=localhost:8099",
            "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
            "--direct_num_workers=2", f"--job_server_timeout={pc.PORTABLE_JOB_TIMEOUT_S}"} \
        <= set(args)  # a job longer than Beam's default 60 s must not time out its state
    # workers of a pool on this machine import this environment's TFX: nothing to stage
    assert not needs_tfx_package(args)
    remote = pc.BeamConfig(runner="PortableRunner", job_endpoint="flink-jobs:8099",
                           worker_pool="localhost:50000")
    assert needs_tfx_package(remote.args())
    assert needs_tfx_package(["--runner=DataflowRunner"])
    assert not needs_tfx_package(pc.BeamConfig().args())
    with pytest.raises(pc.ConfigError, match="job_endpoint"):
        pc.BeamConfig(runner="PortableRunner")
    with pytest.raises(pc.ConfigError, match="only with runner PortableRunner"):
        pc.BeamConfig(job_endpoint="localhost:8099")
