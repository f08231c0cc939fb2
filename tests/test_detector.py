"""What is particular to the detector family (the conformance harness covers the rest): the
post-processing rules, box-aware train-time augmentation, records without boxes, the export's
inputs and outputs, COCO metrics and their baseline, resumed training, and the offline
evaluator's verdict."""

import dataclasses
import io

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from components.catalog_import.records import FashionRecord, GarmentObject, to_example  # noqa
from components.offline_evaluator.logic import verdict  # noqa: E402
from schemas import features as F  # noqa: E402
from trainer.families.detector import config as detector_config  # noqa: E402
from trainer.families.detector import evaluation, model_garden, postprocess  # noqa: E402

UPPER, LOWER, FULL, SHOES = (float(F.SUPER_CATEGORY_IDS[n]) for n in F.SUPER_CATEGORIES)


def _detections(rows):
    """One image's OD API outputs from ``(box, score, class)`` rows, padded to 6."""
    boxes = np.zeros((1, 6, 4), np.float32)
    scores = np.zeros((1, 6), np.float32)
    classes = np.zeros((1, 6), np.float32)
    for i, (box, score, label) in enumerate(rows):
        boxes[0, i], scores[0, i], classes[0, i] = box, score, label
    return {"detection_boxes": tf.constant(boxes), "detection_scores": tf.constant(scores),
            "detection_classes": tf.constant(classes),
            "num_detections": tf.constant([float(len(rows))])}


def _kept(rows, **rules):
    config = dataclasses.replace(detector_config.smoke(), **rules)
    out = postprocess.apply(_detections(rows), config)
    count = int(out["num_detections"][0])
    assert not out["detection_scores"].numpy()[0, count:].any()  # the rest is zeroed
    return [(int(c), round(float(s), 2)) for c, s in zip(
        out["detection_classes"].numpy()[0, :count], out["detection_scores"].numpy()[0, :count])]


# A standing figure: upper body on top, lower body below it, shoes at the bottom.
FIGURE = [((0.10, 0.30, 0.45, 0.70), 0.9, UPPER), ((0.45, 0.32, 0.85, 0.68), 0.8, LOWER),
          ((0.88, 0.35, 0.97, 0.48), 0.7, SHOES)]
NO_RULES = dict(score_threshold=0.0, footwear_min_figure_height=0.0,
                drop_footwear_touching_upper_body=False, lower_body_overlap_keep_smaller=0.0)


def test_a_plausible_figure_keeps_every_detection():
    assert _kept(FIGURE, score_threshold=0.05, footwear_min_figure_height=0.5,
                 drop_footwear_touching_upper_body=True, lower_body_overlap_keep_smaller=0.3) \
        == [(1, 0.9), (2, 0.8), (4, 0.7)]


def test_the_score_threshold_drops_weak_detections():
    rows = FIGURE + [((0.5, 0.1, 0.6, 0.2), 0.2, FULL)]
    assert (3, 0.2) in _kept(rows, **NO_RULES)
    assert (3, 0.2) not in _kept(rows, **{**NO_RULES, "score_threshold": 0.5})


def test_footwear_high_on_the_figure_is_dropped():
    hand = ((0.40, 0.05, 0.48, 0.15), 0.95, SHOES)  # mid-figure, clear of the upper body
    assert (4, 0.95) in _kept(FIGURE + [hand], **NO_RULES)
    kept = _kept(FIGURE + [hand], **{**NO_RULES, "footwear_min_figure_height": 0.5})
    assert (4, 0.95) not in kept and (4, 0.7) in kept


def test_footwear_touching_an_upper_body_box_is_dropped():
    hand = ((0.40, 0.66, 0.50, 0.75), 0.6, SHOES)  # at the sleeve's end
    assert (4, 0.6) in _kept(FIGURE + [hand], **NO_RULES)
    kept = _kept(FIGURE + [hand], **{**NO_RULES, "drop_footwear_touching_upper_body": True})
    assert (4, 0.6) not in kept and (4, 0.7) in kept


def test_of_two_overlapping_lower_body_boxes_the_smaller_is_kept():
    legs = ((0.45, 0.30, 0.97, 0.70), 0.85, LOWER)  # shorts plus bare legs
    assert _kept(FIGURE + [legs], **NO_RULES).count  # both kept without the rule
    assert [c for c, _ in _kept(FIGURE + [legs], **NO_RULES)].count(2) == 2
    kept = _kept(FIGURE + [legs], **{**NO_RULES, "lower_body_overlap_keep_smaller": 0.3})
    assert (2, 0.8) in kept and (2, 0.85) not in kept


def _image(pixels) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _block_record(box=(0.05, 0.2, 0.45, 0.8), size=64, objects=True) -> bytes:
    """A white block on black at ``box`` (xmin, ymin, xmax, ymax), annotated as upper body."""
    pixels = np.zeros((size, size, 3))
    xmin, ymin, xmax, ymax = (round(v * size) for v in box)
    pixels[ymin:ymax, xmin:xmax] = 255
    record = FashionRecord(source_id="block", encoded=_image(pixels), format="png", height=size,
                           width=size, objects=(GarmentObject("coat", box),) if objects else ())
    return to_example(record).SerializeToString()


def _iou(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_train_time_augmentation_moves_the_boxes_with_the_image():
    """Flip and scale jitter (crop) at train time: every anchor the parser labels positive
    overlaps the block where the augmented image shows it — also when the image was mirrored
    or rescaled; eval parsing does neither."""
    from official.vision.dataloaders import retinanet_input
    config = dataclasses.replace(detector_config.smoke(), scale_jitter=(0.7, 1.4))
    experiment = model_garden.experiment_config(config)
    model, data = experiment.task.model, experiment.task.train_data
    record = model_garden.record_decoder(numeric_source_ids=True).decode(
        tf.constant(_block_record()))

    def parse(training):
        parser = retinanet_input.Parser(
            output_size=model.input_size[:2], min_level=model.min_level,
            max_level=model.max_level, num_scales=model.anchor.num_scales,
            aspect_ratios=model.anchor.aspect_ratios, anchor_size=model.anchor.anchor_size,
            aug_rand_hflip=data.parser.aug_rand_hflip, aug_scale_min=data.parser.aug_scale_min,
            aug_scale_max=data.parser.aug_scale_max)
        return parser.parse_fn(training)(dict(record))

    lefts, widths = set(), set()
    for seed in range(12):
        tf.random.set_seed(seed)
        image, labels = parse(training=True)
        bright = np.argwhere(image.numpy().mean(axis=-1) > 0)
        (top, left), (bottom, right) = bright.min(axis=0), bright.max(axis=0) + 1
        block = (top, left, bottom, right)
        lefts.add(int(left))
        widths.add(int(right - left))
        positives = 0
        for level, targets in labels["cls_targets"].items():
            anchors = labels["anchor_boxes"][level].numpy().reshape(-1, 4)
            for anchor in anchors[targets.numpy().reshape(-1) > 0]:
                assert _iou(anchor, block) > 0.3, (seed, anchor, block)
                positives += 1
        assert positives, seed
    assert len(lefts) > 1 and len(widths) > 1  # mirrored and rescaled at least once
    first = parse(training=False)[0].numpy()
    assert np.array_equal(first, parse(training=False)[0].numpy())


def test_records_without_boxes_are_left_out_of_training(tmp_path):
    assert bool(model_garden.has_boxes(tf.constant(_block_record())))
    assert not bool(model_garden.has_boxes(tf.constant(_block_record(objects=False))))
    path = str(tmp_path / "records.gz")
    _write_records(path, [_block_record(), _block_record(objects=False), _block_record()])
    read = model_garden.records_with_boxes("tfrecord_compressed")
    assert sum(1 for _ in read([path])) == 2


def test_coco_metrics_score_perfect_shifted_and_prior_detections():
    rng = np.random.default_rng(0)
    truth = []
    for _ in range(20):
        top, left = rng.uniform(0.0, 0.4, size=2)
        truth.append({"height": 200, "width": 100,
                      "boxes": np.array([[top, left, top + 0.5, left + 0.5],
                                         [0.85, 0.3, 0.95, 0.5]]),
                      "classes": np.array([1, 4])})
    perfect = [{"boxes": t["boxes"], "scores": np.array([0.9, 0.8]), "classes": t["classes"]}
               for t in truth]
    metrics = evaluation.coco_metrics(truth, perfect)
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["AR_100"] == pytest.approx(1.0)
    assert set(k for k in metrics if k.startswith("AP[")) == {"AP[upper_body]", "AP[footwear]"}
    shifted = [dict(p, boxes=p["boxes"] + [0.1, 0.0, 0.1, 0.0]) for p in perfect]
    partly = evaluation.coco_metrics(truth, shifted)
    assert partly["mAP_50"] < 1.0 or partly["mAP"] < 0.9
    assert 0.0 < partly["mAP"] < metrics["mAP"]
    prior = evaluation.coco_metrics(truth, evaluation.prior_detections(truth))
    # The prior finds what never moves (the shoes) and misses what does.
    assert prior["AP[footwear]"] > 0.9 and prior["AP[upper_body]"] < 0.5
    assert evaluation.coco_metrics(truth, [{"boxes": [], "scores": [], "classes": []}] * 20)[
        "mAP"] == 0.0
    with pytest.raises(ValueError, match="no boxes"):
        evaluation.coco_metrics([dict(truth[0], boxes=np.zeros((0, 4)), classes=[])],
                                perfect[:1])


def test_the_offline_verdict_applies_value_and_change_thresholds():
    assert verdict({"mAP": 0.4}, None, "mAP", 0.3, 0.0) == (True, [])
    blessed, failures = verdict({"mAP": 0.2}, None, "mAP", 0.3, 0.0)
    assert not blessed and "value" in failures[0]
    blessed, failures = verdict({"mAP": 0.4}, {"mAP": 0.45}, "mAP", 0.3, 0.0)
    assert not blessed and "change" in failures[0]
    assert verdict({"mAP": 0.4}, {"mAP": 0.45}, "mAP", 0.3, -0.1)[0]
    assert not verdict({"mAP": float("nan")}, None, "mAP", 0.0, 0.0)[0]
    with pytest.raises(KeyError, match="blessing metric"):
        verdict({"AP": 0.4}, None, "mAP", 0.3, 0.0)


def _write_records(path, records):
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """Records of white blocks at random places, a third without boxes."""
    folder = tmp_path_factory.mktemp("blocks")
    rng = np.random.default_rng(1)
    records = []
    for index in range(48):
        left, top = rng.uniform(0.0, 0.5, size=2)
        records.append(_block_record((left, top, left + 0.45, top + 0.45),
                                     objects=index % 3 != 0))
    _write_records(str(folder / "records.gz"), records)
    return str(folder / "records.gz")


def test_a_killed_training_resumes_from_its_checkpoint(blocks, tmp_path):
    from trainer.families.detector.trainer import train
    config = dataclasses.replace(detector_config.smoke(), epochs=1, steps_per_epoch=2)
    _, _, first = train(config, [blocks], [blocks], str(tmp_path))
    assert first.resumed_at_epoch == 0 and len(first["loss"]) == 1
    # The same training, asked for two epochs: it continues after the first.
    _, _, second = train(dataclasses.replace(config, epochs=2), [blocks], [blocks],
                         str(tmp_path))
    assert second.resumed_at_epoch == 1 and len(second["loss"]) == 1
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("-4")


def test_a_warm_start_initialises_every_module_from_the_blessed_models_checkpoint(
        blocks, tmp_path):
    """The checkpoint a training leaves beside its SavedModel initialises a new training's
    whole model (Model Garden's init_checkpoint), not only the pretrained trunk."""
    from trainer.families.detector.trainer import (save_warm_start_checkpoint, train,
                                                   warm_start_checkpoint)
    config = dataclasses.replace(detector_config.smoke(), epochs=1, steps_per_epoch=2,
                                 warm_start=True, warm_start_epochs=1)
    _, blessed, _ = train(config, [blocks], [blocks], str(tmp_path / "first"))
    serving = str(tmp_path / "model" / "Format-Serving")
    assert warm_start_checkpoint(serving) is None
    save_warm_start_checkpoint(blessed, serving)
    checkpoint = warm_start_checkpoint(serving)
    assert checkpoint

    def initialised(init_checkpoint):
        experiment = model_garden.experiment_config(config, [blocks], [blocks])
        experiment.task.init_checkpoint = init_checkpoint
        experiment.task.init_checkpoint_modules = "all"
        task = model_garden.task(experiment)
        model = task.build_model()
        task.initialize(model)
        return [v.numpy() for v in model.variables]  # names get suffixes; the order is fixed

    trained = [v.numpy() for v in blessed.variables]
    warm, cold = initialised(checkpoint), initialised(None)
    assert [w.shape for w in warm] == [t.shape for t in trained]
    # a fresh model differs from the trained one (the pretrained trunk aside: its random
    # decoder and head, the training's steps; 76 of 329 variables when written) ...
    assert sum(not np.array_equal(t, c) for t, c in zip(trained, cold)) >= 20
    # ... the warm-started one is the trained one, every variable
    assert all(np.array_equal(t, w) for t, w in zip(trained, warm))
    # train() takes the blessed model's SavedModel folder and records where it started
    _, _, history = train(config, [blocks], [blocks], str(tmp_path / "second"),
                          warm_start_from=serving)
    assert history.warm_start_result == {"warm_started_from": serving}
    assert len(history["loss"]) == 1  # warm_start_epochs
    _, _, history = train(config, [blocks], [blocks], str(tmp_path / "third"),
                          warm_start_from=str(tmp_path / "nothing" / "Format-Serving"))
    assert "warm_start_skipped" in history.warm_start_result


@pytest.fixture(scope="module")
def exported(blocks, tmp_path_factory):
    from trainer.families.detector import export
    from trainer.families.detector.trainer import train
    folder = tmp_path_factory.mktemp("detector")
    config = dataclasses.replace(detector_config.smoke(), score_threshold=0.0)
    experiment, model, _ = train(config, [blocks], [blocks], str(folder / "checkpoints"))
    export.save(str(folder / "serving"), export.export_module(experiment, model, config))
    return str(folder / "serving"), tf.saved_model.load(str(folder / "serving"))


def test_the_export_takes_images_of_any_size_and_format_in_one_batch(exported):
    from PIL import Image
    _, loaded = exported
    pixels = np.random.default_rng(2).integers(0, 255, (90, 50, 3)).astype(np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, format="JPEG")
    images = [_image(np.zeros((64, 64, 3))), jpeg.getvalue(), _image(np.ones((30, 120, 3)))]
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(images))
    boxes = outputs["detection_boxes"].numpy()
    assert boxes.shape[0] == 3 and boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert outputs["num_detections"].dtype == tf.float32
    assert outputs["detection_classes"].dtype == tf.float32


def test_the_tf_example_signature_answers_as_the_image_signature(exported):
    _, loaded = exported
    record = _block_record()
    image = tf.train.Example.FromString(record).features.feature[
        F.IMAGE_ENCODED].bytes_list.value[0]
    by_example = loaded.signatures["tf_example"](inputs=tf.constant([record]))
    by_image = loaded.signatures["serving_default"](inputs=tf.constant([image]))
    for key in by_image:
        np.testing.assert_allclose(by_example[key].numpy(), by_image[key].numpy(), atol=1e-5)


def test_corrupt_images_and_bombs_get_a_clear_error(exported):
    _, loaded = exported
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(inputs=tf.constant([b"not an image"]))
    bomb = bytearray(_image(np.zeros((8, 8, 3))))
    bomb[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")  # IHDR claims 3.6 GP
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
        serve(inputs=tf.constant([bytes(bomb)]))


def test_the_label_map_names_the_classes(exported):
    from trainer.families.detector.export import read_label_map
    serving_dir, _ = exported
    assert read_label_map(serving_dir) == {F.SUPER_CATEGORY_IDS[n]: n
                                           for n in F.SUPER_CATEGORIES}


def test_evaluate_skips_records_without_boxes_and_draws_a_gallery(exported, blocks, tmp_path):
    import os
    serving_dir, _ = exported
    result = evaluation.evaluate(serving_dir, blocks, batch_size=8, output_dir=str(tmp_path),
                                 gallery_size=3)
    assert result["examples"] == 32 and result["skipped_without_boxes"] == 16
    for key in evaluation.COCO_STATS:
        assert 0.0 <= result[key] <= 1.0 and 0.0 <= result["prior_boxes_" + key] <= 1.0
    assert len(os.listdir(tmp_path / evaluation.GALLERY_FOLDER)) == 3


def test_faster_rcnn_trains_and_exports_the_same_outputs(blocks, tmp_path):
    """The study's best detector, through the same family: Model Garden's Faster R-CNN on the
    Lite0 trunk trains, and its export answers normalised OD API outputs like RetinaNet's."""
    from trainer.families.detector import export
    from trainer.families.detector.trainer import train
    config = dataclasses.replace(detector_config.smoke(), architecture="faster_rcnn",
                                 proposals=32, epochs=1, steps_per_epoch=2)
    experiment, model, history = train(config, [blocks], [blocks], str(tmp_path / "ckpt"))
    assert {"loss", "rpn_score_loss", "frcnn_cls_loss"} <= set(history)
    export.save(str(tmp_path / "serving"), export.export_module(experiment, model, config))
    loaded = tf.saved_model.load(str(tmp_path / "serving"))
    out = loaded.signatures["tf_example"](inputs=tf.constant([_block_record()] * 2))
    assert sorted(out) == sorted(export.OUTPUTS)
    boxes = out["detection_boxes"].numpy()
    assert boxes.shape == (2, config.max_detections, 4)
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert out["detection_classes"].dtype == tf.float32
