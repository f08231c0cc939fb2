"""The infra validation step refuses models the server cannot load or answer with."""

import numpy as np
import pytest

from components.infra_validator import logic

PROBE = logic.Probe("serving_default", "examples", "examples",
                    "components.infra_validator.logic.check_finite_rows")


def test_output_checks():
    logic.check_finite_rows({"scores": np.full([2, 3], 0.5, np.float32), "classes": np.array(
        [[b"a"] * 3] * 2)}, 2)
    for outputs, fragment in [({"classes": np.array([[b"a"]])}, "no float output"),
                              ({"scores": np.ones([3, 2], np.float32)}, "expected 2 rows"),
                              ({"scores": np.array([[np.nan], [1.0]])}, "NaN")]:
        with pytest.raises(ValueError, match=fragment):
            logic.check_finite_rows(outputs, 2)


def test_probe_inputs_are_the_records_or_their_images():
    import tensorflow as tf
    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"]))}))
    records = [example.SerializeToString()]
    assert PROBE.inputs(records)["examples"].tolist() == records
    images = logic.Probe("serving_images", "images", "images", PROBE.check)
    assert images.inputs(records)["images"].tolist() == [b"jpeg"]


def test_a_model_that_does_not_load_is_not_blessed(tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    report = logic.validate(str(broken), [b"example"], PROBE, timeout_seconds=120)
    assert not report.blessed
    assert "did not load" in report.reason
    (broken / "variables").mkdir()  # variables folder without its index: incomplete
    report = logic.validate(str(broken), [b"example"], PROBE, timeout_seconds=120)
    assert not report.blessed and "not a complete SavedModel" in report.reason


def test_a_model_without_the_probed_signature_input_is_not_blessed(toy_models):
    # The toy model's serving_default takes floats, not serialized tf.Examples.
    report = logic.validate(f"{toy_models['toy'].base_path}/3", [b"example"], PROBE,
                            timeout_seconds=120)
    assert not report.blessed
    assert "INVALID_ARGUMENT" in report.reason and "examples" in report.reason


def test_no_examples_is_not_blessed(tmp_path):
    assert not logic.validate(str(tmp_path), [], PROBE).blessed
