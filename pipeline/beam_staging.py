"""Keeps TFX from packaging itself for Beam runners that run in this Python.

Every Beam-based TFX executor (ExampleGen, StatisticsGen, Transform, Evaluator, ...) given
``beam_pipeline_args`` copies the installed TFX into a new temporary folder and builds an sdist of
it, to stage for remote workers (``tfx.utils.dependency_utils.build_ephemeral_package``). It never
removes that folder: each Beam component of each run costs about 1.8 s and leaves 49 MB in /tmp,
which filled a 64 GB disk over a few days of test runs. A DirectRunner's workers are this
interpreter or its subprocesses, which import the same TFX, so they need no package; nor do the
workers of a Beam cluster on this machine (``pipeline.beam_cluster``: an EXTERNAL worker pool
on localhost, started from this environment). Remote runners (Dataflow, Flink, Kubeflow's
containers) keep TFX's behaviour.
"""

from __future__ import annotations

import functools

LOCAL_RUNNERS = frozenset({"DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner",
                           "FnApiRunner", "InteractiveRunner"})


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _flag(beam_pipeline_args: list[str], name: str, default: str = "") -> str:
    """The value of ``--name`` in Beam arguments (``--name=v`` or ``--name v``), the last one
    given, or ``default``."""
    value = default
    for n, arg in enumerate(beam_pipeline_args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and n + 1 < len(beam_pipeline_args):
            value = beam_pipeline_args[n + 1]
    return value


def runner_name(beam_pipeline_args: list[str]) -> str:
    """The ``--runner`` named in Beam arguments (Beam's default, DirectRunner, when none is)."""
    return _flag(beam_pipeline_args, "runner", "DirectRunner").rsplit(".", 1)[-1]


def needs_tfx_package(beam_pipeline_args: list[str]) -> bool:
    """Whether the workers these arguments describe may lack this environment's TFX (so TFX
    must be staged for them): False for local runners and for a portable job service whose
    EXTERNAL worker pool runs on this machine."""
    runner = runner_name(beam_pipeline_args)
    if runner in LOCAL_RUNNERS:
        return False
    if runner == "PortableRunner":
        host = lambda address: address.rsplit(":", 1)[0]  # noqa: E731
        environment = _flag(beam_pipeline_args, "environment_type").upper()
        return not (environment in ("EXTERNAL", "LOOPBACK")
                    and host(_flag(beam_pipeline_args, "job_endpoint")) in LOCAL_HOSTS
                    and (environment == "LOOPBACK" or host(_flag(
                        beam_pipeline_args, "environment_config")) in LOCAL_HOSTS))
    return True


def skip_staging_for_local_runners() -> None:
    """Makes TFX's Beam executors skip the TFX package when the workers are local
    (:func:`needs_tfx_package`).

    Idempotent; call it in the process that runs the executors (LocalDagRunner runs them in its
    own process)."""
    from tfx.utils import dependency_utils
    if getattr(dependency_utils.make_beam_dependency_flags, "skips_local_runners", False):
        return
    stage = dependency_utils.make_beam_dependency_flags

    @functools.wraps(stage)
    def make_beam_dependency_flags(beam_pipeline_args):
        if not needs_tfx_package(beam_pipeline_args):
            return beam_pipeline_args
        return stage(beam_pipeline_args)

    make_beam_dependency_flags.skips_local_runners = True
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
