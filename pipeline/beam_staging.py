"""Keeps TFX from packaging itself for Beam runners that run in this Python.

Every Beam-based TFX executor (ExampleGen, StatisticsGen, Transform, Evaluator, ...) given
``beam_pipeline_args`` copies the installed TFX into a new temporary folder and builds an sdist of
it, to stage for remote workers (``tfx.utils.dependency_utils.build_ephemeral_package``). It never
removes that folder: each Beam component of each run costs about 1.8 s and leaves 49 MB in /tmp,
which filled a 64 GB disk over a few days of test runs. A DirectRunner's workers are this
interpreter or its subprocesses, which import the same TFX, so they need no package; remote
runners (Dataflow, Flink, Kubeflow's containers) keep TFX's behaviour.
"""

from __future__ import annotations

import functools

LOCAL_RUNNERS = frozenset({"DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner",
                           "FnApiRunner", "InteractiveRunner"})


def runner_name(beam_pipeline_args: list[str]) -> str:
    """The ``--runner`` named in Beam arguments (Beam's default, DirectRunner, when none is)."""
    name = "DirectRunner"
    for n, arg in enumerate(beam_pipeline_args):
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
        elif arg == "--runner" and n + 1 < len(beam_pipeline_args):
            name = beam_pipeline_args[n + 1]
    return name.rsplit(".", 1)[-1]


def skip_staging_for_local_runners() -> None:
    """Makes TFX's Beam executors skip the TFX package when the runner is a local one.

    Idempotent; call it in the process that runs the executors (LocalDagRunner runs them in its
    own process)."""
    from tfx.utils import dependency_utils
    if getattr(dependency_utils.make_beam_dependency_flags, "skips_local_runners", False):
        return
    stage = dependency_utils.make_beam_dependency_flags

    @functools.wraps(stage)
    def make_beam_dependency_flags(beam_pipeline_args):
        if runner_name(beam_pipeline_args) in LOCAL_RUNNERS:
            return beam_pipeline_args
        return stage(beam_pipeline_args)

    make_beam_dependency_flags.skips_local_runners = True
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
