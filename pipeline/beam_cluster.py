"""A local Beam cluster: a job service and a pool of SDK workers, each its own process, which
the pipeline reaches only through Beam's portability APIs (the Job API to submit, the Fn API to
run bundles), the way it reaches Flink or Spark.

Why this engine: Flink's and Spark's Beam job servers are Java jars that Beam fetches from Maven
at submission, and nothing may be downloaded here; Beam's Dask runner cannot run TFDV (no side
inputs). Beam's own portable job service (the FnApiRunner behind the Job API) ships with Beam.
The SDK workers come from an external worker pool (``--environment_type=EXTERNAL``), as Python
workers do in Flink and Spark deployments on Kubernetes. Swapping in a real cluster changes the
endpoints, not the pipeline.

Beam's stock job service runs every job on one SDK worker. ``ParallelBeamJob`` hands bundles to
``--direct_num_workers`` workers at once, as the DirectRunner does in multi_processing mode.

    python -m pipeline.beam_cluster start --state DIR [--workers N]   # prints the --set flags
    python -m pipeline.beam_cluster stop --state DIR

or, in Python, ``with LocalBeamCluster(DIR, workers=2) as cluster: cluster.beam_config()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_FILE = "cluster.json"
_LOGGER = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str, log_path: str,
                   timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Beam {name} exited with status {process.returncode} at "
                               f"start (its log: {log_path})")
        with socket.socket() as probe:
            if probe.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the Beam {name} did not listen on port {port} within {timeout:.0f} s "
                       f"(its log: {log_path})")


@dataclasses.dataclass
class LocalBeamCluster:
    """A job service and an SDK worker pool on this machine, their state (pids, ports, logs)
    kept in ``state_dir`` so that another process (a script's ``stop``) can end them."""

    state_dir: str
    workers: int = 2

    @property
    def state_path(self) -> str:
        return os.path.join(self.state_dir, STATE_FILE)

    def _spawn(self, module_args: list, log_name: str) -> tuple:
        log_path = os.path.join(self.state_dir, log_name)
        # The pool starts its workers as ``python`` from PATH: this interpreter, so they import
        # this environment's Beam, TFX and (PYTHONPATH) this project.
        env = {**os.environ,
               "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               "PYTHONPATH": os.pathsep.join(
                   p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        with open(log_path, "ab") as log:
            process = subprocess.Popen([sys.executable, *module_args], stdout=log,
                                       stderr=subprocess.STDOUT, env=env, cwd=self.state_dir,
                                       start_new_session=True)
        return process, log_path

    def start(self) -> dict:
        """Starts both services (refuses when a cluster's state is already in ``state_dir``);
        returns the state written."""
        os.makedirs(self.state_dir, exist_ok=True)
        if os.path.exists(self.state_path):
            raise RuntimeError(f"a Beam cluster is already recorded in {self.state_path}; stop "
                               "it first")
        job_port, pool_port = _free_port(), _free_port()
        job, job_log = self._spawn(["-m", "pipeline.beam_cluster", "serve-jobs", "--port",
                                    str(job_port)], "job_service.log")
        pool, pool_log = self._spawn(["-m", "apache_beam.runners.worker.worker_pool_main",
                                      "--service_port", str(pool_port)], "worker_pool.log")
        state = {"job_endpoint": f"localhost:{job_port}",
                 "worker_pool": f"localhost:{pool_port}", "workers": self.workers,
                 "pids": [job.pid, pool.pid], "logs": [job_log, pool_log]}
        try:
            _wait_for_port(job_port, job, "job service", job_log)
            _wait_for_port(pool_port, pool, "worker pool", pool_log)
        except RuntimeError:
            _stop_groups(state["pids"])
            raise
        with open(self.state_path, "w") as handle:
            json.dump(state, handle, indent=2)
        return state

    def stop(self) -> bool:
        """Ends the services and every worker they started; False when none was recorded."""
        if not os.path.exists(self.state_path):
            return False
        _stop_groups(self.state()["pids"])
        os.remove(self.state_path)
        return True

    def state(self) -> dict:
        with open(self.state_path) as handle:
            return json.load(handle)

    def beam_config(self):
        """The :class:`pipeline_config.BeamConfig` that runs on this cluster."""
        import pipeline_config as pc
        state = self.state()
        return pc.BeamConfig(runner="PortableRunner", job_endpoint=state["job_endpoint"],
                             worker_pool=state["worker_pool"],
                             direct_num_workers=state["workers"])

    def __enter__(self) -> "LocalBeamCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_groups(pids: list, timeout: float = 10.0) -> None:
    """SIGTERM to each process group (a service and the workers it spawned), SIGKILL to what
    is left after ``timeout``."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            try:  # reap it when it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def serve_jobs(port: int) -> None:
    """Beam's local job service, running each job's bundles on ``--direct_num_workers`` SDK
    workers (Beam's stock service uses one)."""
    from apache_beam.options import pipeline_options
    from apache_beam.runners.portability import local_job_service
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.portability.api import beam_job_api_pb2

    class ParallelBeamJob(local_job_service.BeamJob):
        def _invoke_runner(self):
            self.set_state(beam_job_api_pb2.JobState.RUNNING)
            options = self.pipeline_options()
            # options from the Job API come as strings
            workers = int(options.view_as(pipeline_options.DirectOptions).direct_num_workers
                          or 0)
            runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
            # run_via_runner_api skips the num_workers option that run_pipeline reads
            runner._num_workers = workers or os.cpu_count() or 1
            return runner.run_via_runner_api(self._pipeline_proto, options)

    servicer = local_job_service.LocalJobServicer(beam_job_type=ParallelBeamJob)
    bound = servicer.start_grpc_server(port)
    _LOGGER.info("Beam job service listening on port %d", bound)
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        servicer.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="a local Beam cluster (job service + SDK "
                                                 "worker pool)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status"):
        command = sub.add_parser(name)
        command.add_argument("--state", required=True, help="folder of the cluster's state")
        if name == "start":
            command.add_argument("--workers", type=int, default=2)
    serve = sub.add_parser("serve-jobs")
    serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "serve-jobs":
        logging.basicConfig(level=logging.INFO)
        serve_jobs(args.port)
        return 0
    cluster = LocalBeamCluster(args.state, getattr(args, "workers", 2))
    if args.command == "start":
        state = cluster.start()
        print(f"Beam cluster up: job service {state['job_endpoint']}, worker pool "
              f"{state['worker_pool']}, {state['workers']} workers. Run the pipeline on it with")
        print(" ".join(f"--set beam.{key}={value}" for key, value in (
            ("runner", "PortableRunner"), ("job_endpoint", state["job_endpoint"]),
            ("worker_pool", state["worker_pool"]), ("direct_num_workers", state["workers"]))))
        return 0
    if args.command == "stop":
        print("stopped" if cluster.stop() else f"no cluster recorded in {args.state}")
        return 0
    print(json.dumps(cluster.state(), indent=2) if os.path.exists(cluster.state_path)
          else f"no cluster recorded in {args.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
