"""Version management with TF Serving semantics: policies, completeness, safe swaps, errors."""

import os
import time

import pytest

from schemas import serving_api
from serving import model_manager as mm


def _push(base, version, complete=True, shards=1):
    """A fake SavedModel version folder (complete or half-copied)."""
    path = base / str(version)
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"graph")
    (path / "variables" / "variables.index").write_bytes(b"index")
    written = shards if complete else shards - 1
    for i in range(written):
        (path / "variables" / f"variables.data-{i:05d}-of-{shards:05d}").write_bytes(b"data")
    return path


class _Loader:
    def __init__(self, broken=()):
        self.broken = set(broken)
        self.loaded = []

    def __call__(self, path):
        version = int(os.path.basename(path))
        if version in self.broken:
            raise ValueError(f"corrupt SavedModel at {path}")
        self.loaded.append(version)
        return f"model-{version}"


def test_completeness_check(tmp_path):
    assert serving_api.is_complete_saved_model(str(_push(tmp_path, 1)))
    assert not serving_api.is_complete_saved_model(
        str(_push(tmp_path, 2, complete=False, shards=2)))
    (tmp_path / "3").mkdir()
    assert not serving_api.is_complete_saved_model(str(tmp_path / "3"))
    (tmp_path / "notes").mkdir()
    assert serving_api.list_versions(str(tmp_path)) == {1: str(tmp_path / "1")}


def test_version_folders_beyond_int64_are_ignored_with_a_log_line(tmp_path, caplog):
    """Such a folder broke Predict (INTERNAL) and GetModelStatus (UNKNOWN): TF Serving's
    version fields are int64. It is skipped, and reported once, not on every poll."""
    _push(tmp_path, 1)
    _push(tmp_path, 2 ** 63)            # one beyond the range
    _push(tmp_path, "٣")                # a Unicode digit int() would accept
    model = mm.ServedModel("m", str(tmp_path), mm.VersionPolicy("all"), loader=_Loader())
    with caplog.at_level("WARNING"):
        model.poll()
        model.poll()
    assert model.loaded_versions() == [1]
    assert [s.version for s in model.statuses()] == [1]
    assert model.resolve() == (1, "model-1")
    reports = [r for r in caplog.records if "beyond the int64 range" in r.getMessage()]
    assert len(reports) == 1 and str(2 ** 63) in reports[0].getMessage()


def test_latest_policy_swaps_only_after_the_new_version_is_available(tmp_path):
    _push(tmp_path, 1)
    loader = _Loader()
    model = mm.ServedModel("category", str(tmp_path), loader=loader)
    model.poll()
    assert model.resolve() == (1, "model-1")
    _push(tmp_path, 2, complete=False, shards=2)
    model.poll()
    assert model.resolve() == (1, "model-1")  # half-copied version 2 is not loaded
    (tmp_path / "2" / "variables" / "variables.data-00001-of-00002").write_bytes(b"data")
    model.poll()
    assert model.resolve() == (2, "model-2")
    states = {s.version: s.state for s in model.statuses()}
    assert states == {1: mm.END, 2: mm.AVAILABLE}
    with pytest.raises(mm.ModelNotFound, match="Specific"):
        model.resolve(version=1)


def test_broken_new_version_leaves_the_old_one_serving(tmp_path):
    _push(tmp_path, 1)
    loader = _Loader(broken={2})
    model = mm.ServedModel("category", str(tmp_path), loader=loader)
    model.poll()
    _push(tmp_path, 2)
    model.poll()
    model.poll()
    assert model.resolve() == (1, "model-1")
    (status,) = model.statuses(2)
    assert status.state == mm.END and status.error_code == "UNKNOWN"
    assert "corrupt SavedModel" in status.error_message
    assert loader.loaded == [1]  # the broken version is not retried while unchanged


def test_a_version_still_being_copied_is_retried_when_its_files_change(tmp_path, monkeypatch):
    """Before: a version loaded while its data file was still being written failed for good,
    because finishing the write does not change the folder's time. Now any file's size or time
    counts, with a backoff between attempts."""
    monkeypatch.setattr(mm, "RETRY_BACKOFF_SECONDS", 0.2)
    path = _push(tmp_path, 1)
    shard = path / "variables" / "variables.data-00000-of-00001"
    shard.write_bytes(b"da")  # the copy is not finished

    def loader(version_path):
        if shard.read_bytes() != b"data":
            raise ValueError("truncated variables")
        return "model-1"
    model = mm.ServedModel("category", str(tmp_path), loader=loader)
    folder_time = os.stat(path).st_mtime_ns
    model.poll()
    assert model.statuses(1)[0].state == mm.END
    with open(shard, "ab") as handle:  # the copy finishes: only the file changes
        handle.write(b"ta")
    assert os.stat(path).st_mtime_ns == folder_time
    model.poll()  # within the backoff: not yet
    assert model.statuses(1)[0].state == mm.END
    time.sleep(0.3)
    model.poll()
    assert model.resolve() == (1, "model-1")


def test_all_and_specific_policies_and_labels(tmp_path):
    for version in (1, 2, 3):
        _push(tmp_path, version)
    every = mm.ServedModel("m", str(tmp_path), mm.VersionPolicy("all"), loader=_Loader())
    every.poll()
    assert [s.version for s in every.statuses() if s.state == mm.AVAILABLE] == [1, 2, 3]
    pinned = mm.ServedModel("m", str(tmp_path), mm.VersionPolicy("specific", versions=(1, 2)),
                            labels={"stable": 1, "canary": 2}, loader=_Loader())
    pinned.poll()
    assert pinned.resolve() == (2, "model-2")
    assert pinned.resolve(label="stable") == (1, "model-1")
    with pytest.raises(mm.InvalidRequest, match="Unrecognized servable version label"):
        pinned.resolve(label="beta")
    with pytest.raises(mm.ModelNotFound):
        pinned.statuses(7)
    two = mm.ServedModel("m", str(tmp_path), mm.VersionPolicy("latest", 2), loader=_Loader())
    two.poll()
    assert two.resolve(version=2)[0] == 2 and two.resolve(version=3)[0] == 3
    with pytest.raises(mm.ModelNotFound):
        two.resolve(version=1)


def test_invalid_policies_fail():
    with pytest.raises(ValueError):
        mm.VersionPolicy("newest")
    with pytest.raises(ValueError):
        mm.VersionPolicy("specific")


def test_empty_base_path_has_nothing_to_serve(tmp_path):
    model = mm.ServedModel("m", str(tmp_path / "missing"), loader=_Loader())
    model.poll()
    with pytest.raises(mm.ModelNotFound, match="Latest"):
        model.resolve()
    with pytest.raises(mm.ModelNotFound, match="Could not find any versions of model m"):
        model.statuses()  # TF Serving answers 404 / NOT_FOUND, which readiness probes rely on


def test_real_saved_model_loads(tmp_path):
    tf = pytest.importorskip("tensorflow")

    class Doubler(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return x * self.factor

    module = Doubler()
    tf.saved_model.save(module, str(tmp_path / "5"),
                        signatures={"serving_default": module.__call__.get_concrete_function()})
    model = mm.ServedModel("doubler", str(tmp_path))
    model.poll()
    version, servable = model.resolve()
    assert version == 5
    result = servable.signatures["serving_default"](x=tf.constant([1.5]))
    assert float(list(result.values())[0][0]) == 3.0
