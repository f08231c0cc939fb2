"""The detector as a TF Model Garden experiment (``tf-models-official``, the TF2 successor of
the Object Detection API).

:func:`experiment_config` turns a :class:`DetectorConfig` into Model Garden's RetinaNet
``ExperimentConfig`` (model, anchors, detection generator, box-aware train-time augmentation,
data and schedule); :func:`build_model` builds its Keras model (Model Garden uses ``tf_keras``
inside, beside the project's Keras 3); :func:`record_decoder` is Model Garden's
``TfExampleDecoder``, which reads our records as they are: they carry the OD API's keys
(``image/object/bbox/*`` normalised, ``image/object/class/label`` = the super-category ids of
``schemas.features.SUPER_CATEGORY_IDS``, 0 being the background). :func:`task` is Model
Garden's RetinaNet or Faster R-CNN task reading only records that annotate boxes.
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


# The family's architectures as Model Garden names their experiments.
EXPERIMENTS = {"retinanet": "retinanet", "faster_rcnn": "fasterrcnn_resnetfpn_coco"}


def experiment_config(config: DetectorConfig, train_files: Sequence[str] = (),
                      eval_files: Sequence[str] = (), compressed: bool = True):
    """Model Garden's RetinaNet or Faster R-CNN experiment for ``config``, reading
    ``train_files`` and ``eval_files`` (TFRecord globs of OD-API examples; GZIP-compressed as
    ExampleGen writes them unless ``compressed`` is False)."""
    from official.core import config_definitions as cfg
    from official.core import exp_factory
    from official.modeling import optimization

    from trainer.backbones import model_garden

    experiment = exp_factory.get_exp_config(EXPERIMENTS[config.architecture])
    task = experiment.task
    kind, options = _BACKBONES[config.backbone]
    if kind == model_garden.BUILDER:
        options = {**options, "weights": config.weights}
    model = task.model
    model.num_classes = NUM_CLASSES
    model.input_size = [config.input_size, config.input_size, 3]
    model.min_level, model.max_level = config.min_level, config.max_level
    model.anchor.num_scales = config.num_scales
    model.anchor.aspect_ratios = list(config.aspect_ratios)
    model.anchor.anchor_size = config.anchor_size
    model.backbone = model_garden.Backbone(type=kind, **{kind: options})
    generator = model.detection_generator
    generator.pre_nms_score_threshold = config.pre_nms_score_threshold
    generator.nms_iou_threshold = config.nms_iou_threshold
    generator.max_num_detections = config.max_detections
    generator.nms_version = config.nms_version
    if config.architecture == "retinanet":
        model.head.num_convs, model.head.num_filters = config.head_convs, config.head_filters
    else:
        model.rpn_head.num_filters = config.head_filters
        model.detection_head.num_convs = config.head_convs
        model.detection_head.num_filters = config.head_filters
        model.detection_head.fc_dims = 4 * config.head_filters
        model.roi_generator.num_proposals = config.proposals
        model.roi_generator.test_num_proposals = config.proposals
        model.roi_generator.use_batched_nms = config.nms_version == "batched"
        # The box head trains on a sample of the proposals (COCO's 512 of 2,000).
        model.roi_sampler.num_sampled_rois = min(512, config.proposals)
    low, high = config.scale_jitter
    file_type = "tfrecord_compressed" if compressed else "tfrecord"
    for data, files, training in ((task.train_data, train_files, True),
                                  (task.validation_data, eval_files, False)):
        data.input_path = ",".join(files)
        data.is_training, data.dtype, data.file_type = training, "float32", file_type
        data.global_batch_size = config.batch_size
        data.seed = config.seed
        # Model Garden's eval parsing wants numeric source ids; ours are names.
        data.decoder.simple_decoder.regenerate_source_id = True
        data.parser.aug_rand_hflip = config.flip and training
        data.parser.aug_scale_min, data.parser.aug_scale_max = (low, high) if training else (
            1.0, 1.0)
    # COCO metrics come from our own evaluator, on the exported model; no checkpoint download.
    task.use_coco_metrics = False
    task.init_checkpoint = None
    task.annotation_file = None
    task.freeze_backbone = config.transfer_mode == "feature_extraction"
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
    # OD API-style outputs: boxes normalised to the input image, classes and counts as floats
    # (RetinaNet's export does this itself; the export module does it for Faster R-CNN).
    if config.architecture == "retinanet":
        export = task.export_config
        export.output_normalized_coordinates = True
        export.cast_num_detections_to_float = True
        export.cast_detection_classes_to_float = True
    experiment.validate()
    return experiment


def build_model(experiment):
    """The ``tf_keras`` detector of an :func:`experiment_config` experiment."""
    import tf_keras
    from official.vision.configs import retinanet as retinanet_cfg
    from official.vision.modeling import factory

    model_config = experiment.task.model
    input_specs = tf_keras.layers.InputSpec(shape=[None] + list(model_config.input_size))
    if isinstance(model_config, retinanet_cfg.RetinaNet):
        return factory.build_retinanet(input_specs=input_specs, model_config=model_config)
    return factory.build_maskrcnn(input_specs=input_specs, model_config=model_config)


def record_decoder(numeric_source_ids: bool = False):
    """Model Garden's OD-API decoder, reading our records' keys as they are.

    ``numeric_source_ids``: replace each record's ``source_id`` by a number derived from the
    image (Model Garden's eval parsing wants numbers; ours are names such as ``ccp-0042``).
    """
    from official.vision.dataloaders import tf_example_decoder
    return tf_example_decoder.TfExampleDecoder(include_mask=False,
                                               regenerate_source_id=numeric_source_ids)


def has_boxes(serialized):
    """True for a serialized record that annotates at least one box. A record without boxes
    says nothing about where its garments are (it may carry image-level labels only):
    training on it would teach the detector that every garment in it is background."""
    import tensorflow as tf
    labels = tf.io.parse_single_example(
        serialized, {F.OBJECT_CLASS_LABEL: tf.io.VarLenFeature(tf.int64)})[F.OBJECT_CLASS_LABEL]
    return tf.size(labels.values) > 0


def records_with_boxes(file_type: str):
    """A Model Garden ``dataset_fn`` for ``file_type`` that reads only records with boxes."""
    from official.common import dataset_fn
    read = dataset_fn.pick_dataset_fn(file_type)
    return lambda files: read(files).filter(has_boxes)


def task(experiment, logging_dir=None):
    """Model Garden's task for ``experiment`` (RetinaNet or Faster R-CNN), reading only
    records with boxes (see :func:`has_boxes`)."""
    from official.vision.configs import retinanet as retinanet_cfg
    from official.vision.tasks import maskrcnn, retinanet

    if isinstance(experiment.task.model, retinanet_cfg.RetinaNet):
        class DetectorTask(retinanet.RetinaNetTask):
            def build_inputs(self, params, input_context=None):
                return _retinanet_inputs(self.task_config.model, params, input_context)
    else:
        class DetectorTask(maskrcnn.MaskRCNNTask):
            def build_inputs(self, params, input_context=None, dataset_fn=None):
                return super().build_inputs(params, input_context,
                                            dataset_fn=records_with_boxes(params.file_type))
    return DetectorTask(experiment.task, logging_dir=logging_dir)


def _retinanet_inputs(model, params, input_context):
    """RetinaNetTask.build_inputs with :func:`records_with_boxes` (it takes no dataset_fn)."""
    from official.vision.dataloaders import input_reader, input_reader_factory, retinanet_input
    parser = retinanet_input.Parser(
        output_size=model.input_size[:2], min_level=model.min_level,
        max_level=model.max_level, num_scales=model.anchor.num_scales,
        aspect_ratios=model.anchor.aspect_ratios, anchor_size=model.anchor.anchor_size,
        dtype=params.dtype, match_threshold=params.parser.match_threshold,
        unmatched_threshold=params.parser.unmatched_threshold,
        box_coder_weights=model.detection_generator.box_coder_weights,
        aug_rand_hflip=params.parser.aug_rand_hflip,
        aug_scale_min=params.parser.aug_scale_min, aug_scale_max=params.parser.aug_scale_max,
        skip_crowd_during_training=params.parser.skip_crowd_during_training,
        max_num_instances=params.parser.max_num_instances)
    reader = input_reader_factory.input_reader_generator(
        params, dataset_fn=records_with_boxes(params.file_type),
        decoder_fn=record_decoder(params.decoder.simple_decoder.regenerate_source_id).decode,
        combine_fn=input_reader.create_combine_fn(params),
        parser_fn=parser.parse_fn(params.is_training))
    return reader.read(input_context=input_context)
