"""The detector as a TF Model Garden experiment (``tf-models-official``, the TF2 successor of
the Object Detection API).

:func:`experiment_config` turns a :class:`DetectorConfig` into Model Garden's RetinaNet
``ExperimentConfig`` (model, anchors, detection generator, box-aware train-time augmentation,
data and schedule); :func:`build_model` builds its Keras model (Model Garden uses ``tf_keras``
inside, beside the project's Keras 3); :func:`record_decoder` is Model Garden's
``TfExampleDecoder``, which reads our records as they are: they carry the OD API's keys
(``image/object/bbox/*`` normalised, ``image/object/class/label`` = the super-category ids of
``schemas.features.SUPER_CATEGORY_IDS``, 0 being the background).

Work in progress (issue 11): the family is not registered yet; training inside a TFX Trainer,
export, evaluation and the composite come next.
"""

from __future__ import annotations

from typing import Sequence

from schemas import features as F
from trainer.families.detector.config import DetectorConfig

# Model Garden counts the background as class 0.
NUM_CLASSES = len(F.SUPER_CATEGORIES) + 1
_BACKBONES = {"mobilenet_v2": ("mobilenet", {"model_id": "MobileNetV2"}),
              "resnet50": ("resnet", {"model_id": 50})}


def experiment_config(config: DetectorConfig, train_files: Sequence[str] = (),
                      eval_files: Sequence[str] = ()):
    """Model Garden's RetinaNet experiment for ``config``, reading ``train_files`` and
    ``eval_files`` (TFRecord globs of OD-API examples)."""
    from official.core import config_definitions as cfg
    from official.core import exp_factory
    from official.modeling import optimization
    from official.vision.configs import backbones
    from official.vision.configs import retinanet as retinanet_cfg

    experiment = exp_factory.get_exp_config("retinanet")
    kind, options = _BACKBONES[config.backbone]
    experiment.task.model = retinanet_cfg.RetinaNet(
        num_classes=NUM_CLASSES,
        input_size=[config.input_size, config.input_size, 3],
        min_level=config.min_level, max_level=config.max_level,
        anchor=retinanet_cfg.Anchor(num_scales=config.num_scales,
                                    aspect_ratios=list(config.aspect_ratios),
                                    anchor_size=config.anchor_size),
        backbone=backbones.Backbone(type=kind, **{kind: options}),
        head=retinanet_cfg.RetinaNetHead(num_convs=config.head_convs,
                                         num_filters=config.head_filters),
        detection_generator=retinanet_cfg.DetectionGenerator(
            pre_nms_score_threshold=config.pre_nms_score_threshold,
            nms_iou_threshold=config.nms_iou_threshold,
            max_num_detections=config.max_detections))
    low, high = config.scale_jitter
    experiment.task.train_data = retinanet_cfg.DataConfig(
        input_path=",".join(train_files), is_training=True, dtype="float32",
        global_batch_size=config.batch_size,
        parser=retinanet_cfg.Parser(aug_rand_hflip=config.flip, aug_scale_min=low,
                                    aug_scale_max=high))
    experiment.task.validation_data = retinanet_cfg.DataConfig(
        input_path=",".join(eval_files), is_training=False, dtype="float32",
        global_batch_size=config.batch_size)
    # COCO metrics come from our own evaluator, on the exported model.
    experiment.task.use_coco_metrics = False
    experiment.task.freeze_backbone = config.transfer_mode == "feature_extraction"
    steps = config.epochs * max(1, config.steps_per_epoch)
    experiment.trainer = cfg.TrainerConfig(
        train_steps=steps, steps_per_loop=max(1, config.steps_per_epoch),
        checkpoint_interval=max(1, config.steps_per_epoch),
        validation_steps=config.eval_steps or -1,  # -1: the whole eval split
        optimizer_config=optimization.OptimizationConfig({
            "optimizer": {"type": "adam"},
            "learning_rate": {"type": "cosine", "cosine": {
                "initial_learning_rate": config.learning_rate, "decay_steps": steps}}}))
    experiment.runtime.mixed_precision_dtype = "float32"
    experiment.validate()
    return experiment


def build_model(experiment):
    """The RetinaNet ``tf_keras`` model of an :func:`experiment_config` experiment."""
    import tf_keras
    from official.vision.modeling import factory

    model_config = experiment.task.model
    input_specs = tf_keras.layers.InputSpec(shape=[None] + list(model_config.input_size))
    return factory.build_retinanet(input_specs=input_specs, model_config=model_config)


def record_decoder():
    """Model Garden's OD-API decoder, reading our records' keys as they are."""
    from official.vision.dataloaders import tf_example_decoder
    return tf_example_decoder.TfExampleDecoder(include_mask=False)
