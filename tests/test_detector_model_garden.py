"""The detector family's Model Garden experiment (issue 11, first part): the experiment follows
the family config, Model Garden's OD-API decoder reads our records as they are, and the
RetinaNet it builds returns the OD API's detection outputs."""

import numpy as np
import pytest
import tensorflow as tf

from components.catalog_import.records import to_example
from components.synthetic_catalog.generator import render
from pipeline_config import ConfigError
from schemas import features as F
from trainer.families.detector import config as detector_config
from trainer.families.detector import model_garden


def test_the_experiment_follows_the_family_config():
    config = detector_config.DetectorConfig(
        input_size=192, min_level=3, max_level=6, num_scales=2, aspect_ratios=(0.5, 2.0),
        anchor_size=3.0, head_filters=32, head_convs=1, pre_nms_score_threshold=0.2,
        nms_iou_threshold=0.4, max_detections=7, flip=False, scale_jitter=(0.9, 1.1),
        batch_size=4, epochs=3, steps_per_epoch=5, learning_rate=2e-3)
    experiment = model_garden.experiment_config(config, ["train-*"], ["eval-*"])
    model = experiment.task.model
    assert model.num_classes == len(F.SUPER_CATEGORIES) + 1  # with the background
    assert model.input_size == [192, 192, 3]
    assert (model.min_level, model.max_level) == (3, 6)
    assert (model.anchor.num_scales, model.anchor.aspect_ratios, model.anchor.anchor_size) == (
        2, [0.5, 2.0], 3.0)
    assert (model.head.num_filters, model.head.num_convs) == (32, 1)
    generator = model.detection_generator
    assert (generator.pre_nms_score_threshold, generator.nms_iou_threshold,
            generator.max_num_detections) == (0.2, 0.4, 7)
    assert (model.backbone.type, model.backbone.efficientnet_lite.model_id) == (
        "efficientnet_lite", "lite0")
    assert generator.nms_version == "batched"
    parser = experiment.task.train_data.parser
    assert (parser.aug_rand_hflip, parser.aug_scale_min, parser.aug_scale_max) == (
        False, 0.9, 1.1)
    assert experiment.task.train_data.input_path == "train-*"
    assert experiment.task.validation_data.is_training is False
    assert experiment.trainer.train_steps == 15
    assert experiment.trainer.optimizer_config.learning_rate.cosine.initial_learning_rate == 2e-3
    full = model_garden.experiment_config(detector_config.full()).task.model
    assert (full.input_size, full.max_level, full.backbone.efficientnet_lite.weights) == (
        [512, 512, 3], 7, "efficientnet-lite0-imagenet")
    resnet = model_garden.experiment_config(detector_config.DetectorConfig(
        backbone="resnet50")).task.model
    assert (resnet.backbone.type, resnet.backbone.resnet.model_id) == ("resnet", 50)


@pytest.mark.parametrize("fields, message", [
    ({"input_size": 100}, "multiple of 2\\*\\*max_level"),
    ({"backbone": "vgg"}, "backbone"),
    ({"nms_iou_threshold": 0.0}, "NMS IoU"),
    ({"scale_jitter": (1.2, 1.5)}, "scale_jitter"),
    ({"backbone": "resnet50", "weights": "efficientnet-lite0-imagenet"}, "no offline weights"),
    ({"nms_version": "v9"}, "nms_version"),
    ({"min_level": 1}, "levels"),
])
def test_bad_detector_configs_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        detector_config.DetectorConfig(**fields)


def test_model_gardens_decoder_reads_our_records():
    record = render(seed=3, index=1, size=96)
    assert record.objects
    decoded = model_garden.record_decoder().decode(
        tf.constant(to_example(record).SerializeToString()))
    boxes = decoded["groundtruth_boxes"].numpy()
    expected = np.array([[o.box[1], o.box[0], o.box[3], o.box[2]] for o in record.objects])
    np.testing.assert_allclose(boxes, expected, atol=1e-6)  # [ymin, xmin, ymax, xmax]
    assert decoded["groundtruth_classes"].numpy().tolist() == [
        F.SUPER_CATEGORY_IDS[F.GARMENT_SUPER_CATEGORY[o.garment]] for o in record.objects]
    assert decoded["image"].shape == (96, 96, 3)
    assert decoded["source_id"].numpy().decode() == record.source_id


def test_the_smoke_retinanet_returns_the_od_api_outputs():
    config = detector_config.smoke()
    model = model_garden.build_model(model_garden.experiment_config(config))
    images = tf.random.uniform([2, config.input_size, config.input_size, 3], 0, 255)
    outputs = model(images, training=False)
    assert outputs["detection_boxes"].shape == (2, config.max_detections, 4)
    assert outputs["detection_scores"].shape == (2, config.max_detections)
    assert outputs["detection_classes"].shape == (2, config.max_detections)
    assert outputs["num_detections"].shape == (2,)
    trained = model(images, training=True)
    levels = range(config.min_level, config.max_level + 1)
    assert sorted(trained["cls_outputs"]) == [str(level) for level in levels]


def test_the_model_garden_backbone_is_the_pretrained_lite0_trunk():
    """Model Garden's ``efficientnet_lite`` backbone (tf_keras) with the shipped ImageNet
    weights computes what the project's Keras 3 Lite0 computes on the same pixels, given as
    Model Garden's parser normalises them; its levels are the strides 4..32."""
    from official.vision.ops import preprocess_ops

    from trainer.backbones import efficientnet_lite as lite
    from trainer.backbones import model_garden as mg_backbones
    from trainer.backbones.torch_checkpoint import read_legacy_checkpoint
    from trainer.weights import PRESETS
    import tf_keras
    pixels = tf.random.stateless_uniform([1, 64, 64, 3], seed=(1, 2), maxval=255.0)
    backbone = mg_backbones.EfficientNetLiteBackbone(
        "lite0", tf_keras.layers.InputSpec(shape=[None, 64, 64, 3]),
        weights="efficientnet-lite0-imagenet")
    assert {level: tuple(shape[1:3]) for level, shape in backbone.output_specs.items()} == {
        "2": (16, 16), "3": (8, 8), "4": (4, 4), "5": (2, 2)}
    ours = lite.efficientnet_lite("lite0", input_size=64, include_top=False, pooling=None,
                                  weights=lite.keras_weights_from_torch(read_legacy_checkpoint(
                                      PRESETS["efficientnet-lite0-imagenet"].path())))
    normalised = preprocess_ops.normalize_image(pixels[0], offset=preprocess_ops.MEAN_RGB,
                                                scale=preprocess_ops.STDDEV_RGB)[None]
    np.testing.assert_allclose(backbone(normalised, training=False)["5"].numpy(),
                               ours(pixels, training=False).numpy(), rtol=1e-3, atol=1e-3)
    untrained = mg_backbones.EfficientNetLiteBackbone(
        "lite0", tf_keras.layers.InputSpec(shape=[None, 64, 64, 3]))
    assert not np.allclose(untrained(normalised)["5"].numpy(), ours(pixels).numpy(), atol=1e-2)
