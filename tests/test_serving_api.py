"""The serving contract shared by export and server: class names, version folders."""

import pytest

from schemas import serving_api


def test_class_names_are_one_per_line_and_keep_spaces(tmp_path):
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "assets.extra" / "class_names.txt").write_text("Saint Laurent\nlumen\n")
    assert serving_api.read_class_names(str(tmp_path)) == ["Saint Laurent", "lumen"]
    assert serving_api.read_class_names(str(tmp_path / "missing")) == []


def test_latest_complete_version(tmp_path):
    for version in ("1", "7", "12"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "13" / "variables").mkdir(parents=True)  # half-copied: skipped
    (tmp_path / "13" / "saved_model.pb").write_bytes(b"graph")
    assert set(serving_api.list_versions(str(tmp_path))) == {1, 7, 12}
    assert serving_api.latest_version(str(tmp_path)) == str(tmp_path / "12")
    assert serving_api.latest_version(str(tmp_path / "7")) == str(tmp_path / "7")
    with pytest.raises(FileNotFoundError):
        serving_api.latest_version(str(tmp_path / "13" / "variables"))
