"""pipeline.beam_staging: TFX's self-packaging is skipped for local runners only."""

import glob
import os
import tempfile

import pytest

from pipeline import beam_staging


@pytest.mark.parametrize("args, name", [
    ([], "DirectRunner"),
    (["--runner=DirectRunner", "--direct_num_workers=1"], "DirectRunner"),
    (["--runner", "DataflowRunner"], "DataflowRunner"),
    (["--runner=apache_beam.runners.portability.flink_runner.FlinkRunner"], "FlinkRunner"),
])
def test_runner_name(args, name):
    assert beam_staging.runner_name(args) == name


@pytest.fixture
def staging(monkeypatch):
    """TFX's dependency flags with its sdist build replaced by a recorder."""
    from tfx.utils import dependency_utils
    built = []

    def build_ephemeral_package():
        built.append(True)
        return "/staged/tfx_ephemeral.tar.gz"

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", build_ephemeral_package)
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags",
                        dependency_utils.make_beam_dependency_flags)
    beam_staging.skip_staging_for_local_runners()
    beam_staging.skip_staging_for_local_runners()  # idempotent: wraps once
    return dependency_utils, built


def test_local_runner_gets_its_arguments_unchanged(staging):
    dependency_utils, built = staging
    args = ["--runner=DirectRunner", "--direct_num_workers=0"]
    assert dependency_utils.make_beam_dependency_flags(args) == args
    assert not built


def test_remote_runner_still_gets_tfx_staged(staging):
    dependency_utils, built = staging
    flags = dependency_utils.make_beam_dependency_flags(["--runner=DataflowRunner"])
    assert "--extra_package=/staged/tfx_ephemeral.tar.gz" in flags
    assert built == [True]


def test_a_beam_executor_on_the_direct_runner_writes_no_package(monkeypatch, tmp_path):
    """The real path: a Beam executor constructed as TFX's launcher constructs it."""
    from tfx.components.statistics_gen.executor import Executor
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    beam_staging.skip_staging_for_local_runners()
    Executor(BaseBeamExecutor.Context(beam_pipeline_args=["--runner=DirectRunner"],
                                      tmp_dir=str(tmp_path / "exec"), unique_id="1"))
    assert not glob.glob(os.path.join(tmp_path, "*", "build", "tfx"))
