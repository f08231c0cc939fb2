"""Catalog drift between spans: the checks on their own, then CatalogDriftValidator run by
LocalDagRunner on consecutive synthetic spans (one like the last, one that drifted)."""

import dataclasses
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

import pipeline_config as pc
from components.catalog_drift import logic
from components.catalog_drift.profile import SpanProfile, profile_span
from components.catalog_import.spans import SpanWriter
from components.synthetic_catalog import generator


def _jpeg(pixels, quality=90):
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG",
                                                                  quality=quality)
    return buffer.getvalue()


def _scenes(seed, count, brightness=1.0, size=64):
    """Distinct seeded images: a few random rectangles each."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = np.full((size, size, 3), rng.uniform(60, 200, 3))
        for _ in range(4):
            top, left = rng.integers(0, size - 8, 2)
            pixels[top:top + rng.integers(6, 30), left:left + rng.integers(6, 30)] = \
                rng.uniform(0, 255, 3)
        yield f"{seed}-{index}", _jpeg(pixels * brightness)


def test_js_divergence_is_zero_for_one_distribution_and_high_for_a_shift():
    rng = np.random.default_rng(0)
    edges = logic.IMAGE_DISTRIBUTIONS["brightness"][1]
    same = logic.js_divergence(rng.normal(120, 20, 2000), rng.normal(120, 20, 2000), edges)
    shifted = logic.js_divergence(rng.normal(120, 20, 2000), rng.normal(60, 20, 2000), edges)
    assert same < 0.02 and shifted > 0.5


def test_brightness_shift_is_found_and_a_like_span_passes():
    before = profile_span(1, _scenes(1, 80))
    like = profile_span(2, _scenes(2, 80))
    darker = profile_span(3, _scenes(3, 80, brightness=0.4))
    passed = {f.check: f for f in logic.image_distribution_findings(before, like, 0.2)}
    failed = {f.check: f for f in logic.image_distribution_findings(before, darker, 0.2)}
    assert not any(f.failed for f in passed.values()), passed
    assert failed["brightness"].failed and not failed["resolution"].failed
    assert "→" in failed["brightness"].detail


def test_near_and_exact_duplicates_within_and_across_spans():
    originals = list(_scenes(5, 40))
    earlier = profile_span(1, originals[:20])
    pixels = lambda data: np.asarray(Image.open(io.BytesIO(data)))  # noqa: E731
    copies = [(f"copy-{i}", _jpeg(pixels(data), quality=60))  # re-encoded: near duplicates
              for i, (_, data) in enumerate(originals[:10])]
    resized = [(f"small-{i}", _jpeg(np.asarray(Image.fromarray(pixels(data)).resize((48, 48)))))
               for i, (_, data) in enumerate(originals[20:25])]
    current = profile_span(2, originals[20:40] + copies + resized + [originals[30]])
    within, against = logic.duplicate_findings(current, [earlier], threshold=0.2, bits=4)
    # originals 20..24 and their resized copies, and original 30 listed twice (exact)
    assert within.check == "duplicates_within_span" and "2 exact" in within.detail
    assert within.value == pytest.approx(12 / len(current), abs=1e-3)
    assert against.value == pytest.approx(10 / len(current), abs=1e-3)
    assert "10 near" in against.detail
    assert within.failed and against.failed  # a third and over a quarter: past 0.2
    distinct = profile_span(3, _scenes(6, 40))
    assert [f.value for f in logic.duplicate_findings(distinct, [earlier], 0.2, 4)] == [0, 0]


def test_profile_round_trip(tmp_path):
    profile = profile_span(4, _scenes(4, 12), embed=lambda images: np.ones([len(images), 3]),
                           max_embedded=5, conversion={"inputs": 13,
                                                       "reject_reasons": {"corrupt_image": 1}})
    profile.save(str(tmp_path / "p.npz"))
    loaded = SpanProfile.load(str(tmp_path / "p.npz"))
    assert loaded.span == 4 and len(loaded) == 12 and loaded.embeddings.shape == (5, 3)
    for name, values in profile.columns.items():
        assert loaded.columns[name].tolist() == [
            str(v) for v in values] if name == "source_id" else values.tolist(), name
    assert logic.corrupt_finding(loaded, 0.05).value == pytest.approx(1 / 13, abs=1e-3)


def test_only_the_embedded_sample_is_held_and_it_is_uniform_and_seeded():
    """Profiling keeps a reservoir of max_embedded images, not the span: the embedder gets
    exactly that many, drawn from the whole span (not its first rows), the same ones for the
    same seed."""
    given = []

    def embed(images):
        given.append(list(images))
        return np.zeros([len(images), 2])

    def encoded_once(count):  # each record's bytes handed out once, like a reader's
        for index, (source_id, _) in enumerate(_scenes(9, count, size=16)):
            yield source_id, _jpeg(np.full((16, 16, 3), index % 256))

    first = profile_span(1, encoded_once(400), embed, max_embedded=20, seed=3)
    again = profile_span(1, encoded_once(400), embed, max_embedded=20, seed=3)
    other = profile_span(1, encoded_once(400), embed, max_embedded=20, seed=4)
    assert len(first) == 400 and [len(images) for images in given] == [20, 20, 20]
    rows = first.embedded_rows.tolist()
    assert rows == sorted(set(rows)) and rows == again.embedded_rows.tolist()
    assert rows != other.embedded_rows.tolist()
    assert max(rows) >= 200 and min(rows) < 200  # from across the span
    assert given[0] == given[1]


def test_embedding_drift_tells_new_content_from_the_same_content():
    """The pretrained trunk's features: another kind of picture is told apart (AUC near 1);
    more pictures of the same kind are not (AUC near 0.5)."""
    from trainer.backbones.efficientnet import image_embedder
    embed = image_embedder("efficientnet-lite0-imagenet", 64)
    rng = np.random.default_rng(0)
    stripes = [(f"s{i}", _jpeg(np.tile((np.arange(64) // rng.integers(2, 8) % 2 * 255)[None, :,
                                                                                       None],
                                       (64, 1, 3)) * rng.uniform(0.3, 1, 3)))
               for i in range(60)]
    before = profile_span(1, _scenes(1, 60), embed, max_embedded=60)
    like = profile_span(2, _scenes(2, 60), embed, max_embedded=60)
    other = profile_span(3, stripes, embed, max_embedded=60)
    same = logic.embedding_finding(before, like, 0.9)
    moved = logic.embedding_finding(before, other, 0.9)
    assert same.value < 0.75 and not same.failed, same
    assert moved.value > 0.95 and moved.failed, moved


# --- the component, run by LocalDagRunner on consecutive spans ------------------------------

def _write_span(root, records):
    with SpanWriter(root, num_shards=1, eval_fraction=0.2) as writer:
        for record in records:
            writer.add(record)
    return writer.summary.span


def _darker(record):
    pixels = np.asarray(Image.open(io.BytesIO(record.encoded))).astype(np.float32) * 0.35
    return dataclasses.replace(record, encoded=_jpeg(pixels), format="jpeg")


def _run(config):
    """The ingestion and validation nodes of the pipeline (schema gate, then drift), run by
    LocalDagRunner."""
    from tfx import v1 as tfx

    from pipeline.beam_staging import skip_staging_for_local_runners
    from pipeline.pipeline import create_validation_pipeline
    skip_staging_for_local_runners()
    tfx.orchestration.LocalDagRunner().run(create_validation_pipeline(config))


def test_consecutive_spans_pass_or_stop_the_run_with_a_report_naming_the_cause(tmp_path):
    config = pc.get_config("smoke", workspace=str(tmp_path / "ws"))
    root = config.catalog_root
    first = list(generator.generate(7, 80, 96))
    assert _write_span(root, first) == 1
    _run(config)  # the first span: nothing to compare with, accepted
    assert os.path.isfile(os.path.join(config.drift_history_root, "span-1", "ACCEPTED"))

    second = list(generator.generate(8, 80, 96))
    assert _write_span(root, second) == 2  # more of the same
    _run(config)
    verdict = json.load(open(os.path.join(config.reports_root, "drift", "span-2",
                                          "drift.json")))
    assert verdict["passed"] and verdict["baseline_span"] == 1, verdict["failed"]

    import collections
    vanished = collections.Counter(r.category for r in first).most_common(1)[0][0]
    drifted = [_darker(r) for r in generator.generate(9, 160, 96) if r.category != vanished]
    assert _write_span(root, drifted) == 3
    with pytest.raises(RuntimeError) as err:
        _run(config)
    message = str(err.value)
    assert "span-3 drifted from span-2" in message and "brightness" in message
    assert "jumpsuit" in message or vanished in message
    report = os.path.join(config.reports_root, "drift", "span-3")
    verdict = json.load(open(os.path.join(report, "drift.json")))
    assert not verdict["passed"] and verdict["baseline_span"] == 2
    assert "brightness" in verdict["failed"]
    assert any(check.startswith("vanished_classes") for check in verdict["failed"])
    vanished_finding = next(f for f in verdict["findings"]
                            if f["check"].startswith("vanished_classes"))
    assert vanished in vanished_finding["detail"]
    assert os.path.isfile(os.path.join(report, "index.html"))
    assert os.path.isfile(os.path.join(report, "distributions.png"))
    assert not os.path.exists(os.path.join(config.drift_history_root, "span-3"))

    # A flood of re-encoded copies of the accepted span-2: near duplicates of an earlier span.
    copies = [dataclasses.replace(r, source_id=r.source_id + "-again", encoded=_jpeg(
        np.asarray(Image.open(io.BytesIO(r.encoded))), quality=70), format="jpeg")
        for r in second]
    assert _write_span(root, copies) == 4
    with pytest.raises(RuntimeError, match="duplicates_of_earlier_spans"):
        _run(config)
    verdict = json.load(open(os.path.join(config.reports_root, "drift", "span-4",
                                          "drift.json")))
    assert verdict["baseline_span"] == 2 and verdict["failed"] == [
        "duplicates_of_earlier_spans"], verdict["failed"]
