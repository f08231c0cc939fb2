"""The detector as a TF Model Garden experiment (``tf-models-official``, the TF2 successor of
the Object Detection API).

:func:`experiment_config` turns a :class:`DetectorConfig` into Model Garden's RetinaNet
``ExperimentConfig`` (model, anchors, detection generator, box-aware train-time augmentation,
data and schedule); :func:`build_model` builds its Keras model (Model Garden uses ``tf_keras``
inside, beside the project's Keras 3); :func:`record_decoder` is Model Garden's
``TfExampleDecoder``, which reads our records as they are: they carry the OD API's keys
(``image/object/bbox/*`` normalised, ``image/object/class/label`` = the super-category ids of
``schemas.features.SUPER_CATEGORY_IDS``, 0 being the background). :class:`DetectorTask` is
Model Garden's RetinaNet task reading only records that annotate boxes.
"""

from __future__ import annotations

from typing import Sequence

from schemas import features as F
from trainer.families.detector.config import DetectorConfig

# Model Garden counts the background as class 0.
NUM_CLASSES = len(F.SUPER_CATEGORIES) + 1
_BACKBONES = {"efficientnet_lite0": ("efficientnet_lite", {"model_id": "lite0"}),
              "mobilenet_v2": ("mobilenet", {"model_id": "MobileNetV2"}),
              "resnet50": ("resnet", {"model_id": 50})}


def experiment_config(config: DetectorConfig, train_files: Sequence[str] = (),
                      eval_files: Sequence[str] = (), compressed: bool = True):
    """Model Garden's RetinaNet experiment for ``config``, reading ``train_files`` and
    ``eval_files`` (TFRecord globs of OD-API examples; GZIP-compressed as ExampleGen writes
    them unless ``compressed`` is False)."""
    from official.core import config_definitions as cfg
    from official.core import exp_factory
    from official.modeling import optimization

    from trainer.backbones import model_garden
    from official.vision.configs import retinanet as retinanet_cfg

    experiment = exp_factory.get_exp_config("retinanet")
    file_type = "tfrecord_compressed" if compressed else "tfrecord"
    kind, options = _BACKBONES[config.backbone]
    if kind == model_garden.BUILDER:
        options = {**options, "weights": config.weights}
    experiment.task.model = retinanet_cfg.RetinaNet(
        num_classes=NUM_CLASSES,
        input_size=[config.input_size, config.input_size, 3],
        min_level=config.min_level, max_level=config.max_level,
        anchor=retinanet_cfg.Anchor(num_scales=config.num_scales,
                                    aspect_ratios=list(config.aspect_ratios),
                                    anchor_size=config.anchor_size),
        backbone=model_garden.Backbone(type=kind, **{kind: options}),
        head=retinanet_cfg.RetinaNetHead(num_convs=config.head_convs,
                                         num_filters=config.head_filters),
        detection_generator=retinanet_cfg.DetectionGenerator(
            pre_nms_score_threshold=config.pre_nms_score_threshold,
            nms_iou_threshold=config.nms_iou_threshold,
            max_num_detections=config.max_detections, nms_version=config.nms_version))
    low, high = config.scale_jitter
    experiment.task.train_data = retinanet_cfg.DataConfig(
        input_path=",".join(train_files), is_training=True, dtype="float32",
        file_type=file_type, seed=config.seed,
        global_batch_size=config.batch_size,
        parser=retinanet_cfg.Parser(aug_rand_hflip=config.flip, aug_scale_min=low,
                                    aug_scale_max=high))
    experiment.task.validation_data = retinanet_cfg.DataConfig(
        input_path=",".join(eval_files), is_training=False, dtype="float32",
        file_type=file_type,
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
    # OD API-style outputs: boxes normalised to the input image, classes and counts as floats.
    export = experiment.task.export_config
    export.output_normalized_coordinates = True
    export.cast_num_detections_to_float = True
    export.cast_detection_classes_to_float = True
    experiment.validate()
    return experiment


def build_model(experiment):
    """The RetinaNet ``tf_keras`` model of an :func:`experiment_config` experiment."""
    import tf_keras
    from official.vision.modeling import factory

    model_config = experiment.task.model
    input_specs = tf_keras.layers.InputSpec(shape=[None] + list(model_config.input_size))
    return factory.build_retinanet(input_specs=input_specs, model_config=model_config)


def record_decoder(numeric_source_ids: bool = False):
    """Model Garden's OD-API decoder, reading our records' keys as they are.

    ``numeric_source_ids``: replace each record's ``source_id`` by a number derived from the
    image (Model Garden's eval parsing wants numbers; ours are names such as ``ccp-0042``).
    """
    from official.vision.dataloaders import tf_example_decoder
    return tf_example_decoder.TfExampleDecoder(include_mask=False,
                                               regenerate_source_id=numeric_source_ids)


def has_boxes(decoded: dict):
    """True for a decoded record that annotates at least one box. A record without boxes says
    nothing about where its garments are (it may carry image-level labels only): training on
    it would teach the detector that every garment in it is background."""
    import tensorflow as tf
    return tf.shape(decoded["groundtruth_classes"])[0] > 0


def task(experiment, logging_dir=None):
    """Model Garden's RetinaNet task for ``experiment``, reading only records with boxes."""
    from official.vision.dataloaders import input_reader
    from official.vision.dataloaders import input_reader_factory
    from official.vision.tasks import retinanet

    class DetectorTask(retinanet.RetinaNetTask):
        """RetinaNetTask whose input skips records without boxes (see :func:`has_boxes`)."""

        def build_inputs(self, params, input_context=None):
            from official.common import dataset_fn
            from official.vision.dataloaders import retinanet_input
            model = self.task_config.model
            parser = retinanet_input.Parser(
                output_size=model.input_size[:2], min_level=model.min_level,
                max_level=model.max_level, num_scales=model.anchor.num_scales,
                aspect_ratios=model.anchor.aspect_ratios, anchor_size=model.anchor.anchor_size,
                dtype=params.dtype, match_threshold=params.parser.match_threshold,
                unmatched_threshold=params.parser.unmatched_threshold,
                box_coder_weights=model.detection_generator.box_coder_weights,
                aug_rand_hflip=params.parser.aug_rand_hflip,
                aug_scale_min=params.parser.aug_scale_min,
                aug_scale_max=params.parser.aug_scale_max,
                skip_crowd_during_training=params.parser.skip_crowd_during_training,
                max_num_instances=params.parser.max_num_instances)
            reader = input_reader_factory.input_reader_generator(
                params, dataset_fn=dataset_fn.pick_dataset_fn(params.file_type),
                decoder_fn=record_decoder(numeric_source_ids=True).decode,
                combine_fn=input_reader.create_combine_fn(params),
                sample_fn=lambda dataset: dataset.filter(has_boxes),
                parser_fn=parser.parse_fn(params.is_training))
            return reader.read(input_context=input_context)

    return DetectorTask(experiment.task, logging_dir=logging_dir)
