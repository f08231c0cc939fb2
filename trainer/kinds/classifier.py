"""The image-classifier kind: what the category, attribute and brand families share.

A family-kind helper, not the generic path: it assumes a model that maps a batch of stored images
to one score per class (softmax or sigmoid). It reads the family's config and the labelled
transformed images (:func:`prepare`), trains through the shared fit loop and exports
(:func:`fit_and_export`), and its export module answers with TF Serving's classification
convention (:class:`ClassifierModule`). Families with other outputs (boxes, embeddings, images)
build on ``trainer.training`` and ``trainer.export`` directly.

An exported classifier has these signatures (``trainer.kinds.classifier_spec.SIGNATURES``), all
running the Transform graph:

``serving_default``    ``examples``: serialized ``tf.Example`` (only ``image/encoded`` is read)
                       → ``scores`` [batch, classes] float32, ``classes`` [batch, classes]
                       string, ``top_class`` [batch] string, ``top_score`` [batch] float32, plus
                       the family's extra outputs.
``serving_images``     ``images``: raw encoded image bytes (JPEG/PNG/GIF/BMP) → same outputs.
``classify``           ``inputs``: serialized ``tf.Example`` → ``classes`` and ``scores`` only,
                       with TF Serving's classify method name (gRPC ``Classify``,
                       ``MultiInference``, REST ``:classify``).
``transform_features`` ``examples`` → the transformed features, labels included (TFMA).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf

from schemas.serving_api import (CLASS_NAMES_ASSET, CLASSES_OUTPUT, CLASSIFY, CLASSIFY_INPUTS,
                                 CLASSIFY_METHOD, EXAMPLES_INPUT, IMAGES_INPUT, SCORES_OUTPUT,
                                 SERVING_DEFAULT, SERVING_IMAGES, TOP_CLASS_OUTPUT,
                                 TOP_SCORE_OUTPUT, TRANSFORM_FEATURES)
from absl import logging

from trainer import checkpoints, checks, feature_cache, input_pipeline, training, transfer
from trainer.export import saved_model, warmup
from trainer.export.records import image_example

WARMUP_IMAGES = 3


@dataclasses.dataclass
class TrainingJob:
    """What a classifier family's ``run_fn`` needs before it builds its model."""

    config: object
    stored_size: int
    tft_output: object
    feature_spec: dict
    label_names: list
    label_counts: dict  # label id -> labelled training examples
    train_examples: int
    steps_per_epoch: int
    train: object  # tf.data.Dataset of (image, label) batches, repeated
    train_once: object  # the same examples read once, in order (feature caching)
    evaluation: object  # tf.data.Dataset, one pass (or eval_steps batches)
    checkpoint_dir: Optional[str]
    warm_start_from: Optional[str] = None  # the latest blessed model, when warm starting


def trainer_inputs(fn_args, family: str, config_class):
    """``(config, stored_size)`` from the Trainer's ``custom_config`` (see
    ``pipeline.pipeline.trainer_custom_config``)."""
    config = config_class.from_dict(fn_args.custom_config[family])
    return config, int(fn_args.custom_config["stored_size"])


def prepare(fn_args, family: str, config_class, label_key: str,
            vocabulary: Optional[str] = None,
            label_names: Optional[Sequence[str]] = None) -> TrainingJob:
    """Reads the family's config, the Transform output and the labelled train/eval data.

    Labels are named by a TF Transform ``vocabulary`` file or by a closed ``label_names`` list.
    """
    import tensorflow_transform as tft
    config, stored_size = trainer_inputs(fn_args, family, config_class)
    training.seed_everything(config.seed)
    training.set_mixed_precision(config.mixed_precision)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    if vocabulary is not None:
        label_names = [c.decode() if isinstance(c, bytes) else c
                       for c in tft_output.vocabulary_by_name(vocabulary)]
    feature_spec = tft_output.transformed_feature_spec()
    counts = input_pipeline.count_labelled(fn_args.train_files, feature_spec, label_key)
    train_examples = counts.pop(None)
    if train_examples == 0:
        raise ValueError(f"{family}: no labelled training examples in the train split (a "
                         "catalog without these labels, e.g. CCP for brand, is trained with "
                         "--set families=... leaving this family out)")
    if len(label_names) < 2:
        raise ValueError(f"{family}: needs at least 2 labels, found {label_names}")
    balance = sorted(counts) if config.imbalance == "oversample" else ()
    train = input_pipeline.labelled_images(
        fn_args.train_files, feature_spec, label_key, stored_size, config.batch_size,
        training=True, seed=config.seed, balance_classes=balance)
    evaluation = input_pipeline.labelled_images(fn_args.eval_files, feature_spec, label_key,
                                                stored_size, config.batch_size, training=False)
    train_once = input_pipeline.labelled_images(fn_args.train_files, feature_spec, label_key,
                                                stored_size, config.batch_size, training=False)
    if config.eval_steps:
        evaluation = evaluation.take(config.eval_steps)
    checkpoint_dir = checkpoints.for_trainer(
        fn_args, family, {"family": dataclasses.asdict(config), "stored_size": stored_size})
    return TrainingJob(config, stored_size, tft_output, feature_spec, list(label_names), counts,
                       train_examples,
                       training.steps_per_epoch(config.steps_per_epoch, train_examples,
                                                config.batch_size),
                       train, train_once, evaluation, checkpoint_dir,
                       training.warm_start_source(fn_args, config))


def training_phases(config, warm: bool = False) -> list:
    """The transfer phases of ``config``; a warm start (from a blessed model whose head is
    trained already) runs ``warm_start_epochs`` and skips hybrid's frozen phase."""
    if not warm:
        return transfer.phases(config.transfer_mode, config.epochs, config.fine_tune_layers,
                               config.frozen_epochs, config.fine_tune_learning_rate)
    epochs = config.warm_start_epochs or config.epochs
    if config.transfer_mode == "hybrid":
        return [transfer.Phase(epochs, config.fine_tune_layers or None,
                               config.fine_tune_learning_rate or None)]
    return transfer.phases(config.transfer_mode, epochs, config.fine_tune_layers)


def fit(job: TrainingJob, model, compile_model: Callable, monitor: str) -> training.History:
    """Trains ``model`` through the transfer phases of ``job.config``, resumably."""
    config = job.config
    return training.fit(
        model, compile_model, job.train, job.evaluation,
        phases=training_phases(config, warm=bool(job.warm_start_from)),
        warm_start_from=job.warm_start_from,
        steps_per_epoch=job.steps_per_epoch, monitor=monitor,
        patience=config.early_stopping_patience,
        start_from_epoch=config.early_stopping_start_epoch,
        class_weight=(training.class_weights(job.label_counts, len(job.label_names),
                                            config.max_class_weight)
                      if config.imbalance == "class_weights" else None),
        checkpoint_dir=job.checkpoint_dir,
        caching=(feature_cache.FeatureCaching(
            job.train_once, config.cached_feature_views, config.batch_size,
            steps_per_epoch=config.steps_per_epoch,
            balance=config.imbalance == "oversample", seed=config.seed)
            if config.cached_feature_views else None))


def fit_and_export(fn_args, family: str, job: TrainingJob, model, compile_model: Callable,
                   monitor: str, export: Optional[Callable] = None) -> training.History:
    """Trains ``model`` and exports the serving SavedModel with warm-up requests from eval
    images. ``export(export_dir, model, job, model_name, warmup_images)`` replaces
    :func:`export_classifier` for a family that adds signatures."""
    history = fit(job, model, compile_model, monitor)
    warmup_images = input_pipeline.sample_images(fn_args.eval_files, job.feature_spec,
                                                 count=WARMUP_IMAGES)
    (export or export_classifier)(fn_args.serving_model_dir, model, job, family, warmup_images)
    training.write_history(fn_args.model_run_dir, history)
    return history


def train_and_export(fn_args, family: str, config_class, label_key: str, build_model: Callable,
                     compiler: Callable, monitor: str, export: Optional[Callable] = None,
                     **labels) -> training.History:
    """A classifier family's whole ``run_fn``: :func:`prepare` (``labels``: its ``vocabulary``
    or ``label_names``), ``build_model(config, num_labels, stored_size)`` inside the
    distribution scope, ``compiler(config, scope, num_labels)``, then :func:`fit_and_export`."""
    job = prepare(fn_args, family, config_class, label_key, **labels)
    scope = training.distribution_scope()
    with scope():
        model = build_model(job.config, len(job.label_names), job.stored_size)
    logging.info("%s: %d labels, %d training examples, %d steps/epoch", family,
                 len(job.label_names), job.train_examples, job.steps_per_epoch)
    return fit_and_export(fn_args, family, job, model,
                          compiler(job.config, scope, len(job.label_names)), monitor, export)


def accelerator_case(build_model: Callable, compiler: Callable, config, source_size: int,
                     num_labels: int, batch: Optional[Callable] = None,
                     probabilities_sum_to_one: bool = True) -> checks.AcceleratorCase:
    """A classifier family's model and training glue on random images (``batch``, default:
    random class ids), built as its ``run_fn`` builds them."""
    scope = training.distribution_scope()
    with scope():
        model = build_model(config, num_labels, source_size)
    return checks.AcceleratorCase(
        model, compiler(config, scope, num_labels),
        batch or checks.single_label_batches(num_labels, source_size),
        probabilities_sum_to_one=probabilities_sum_to_one)


def single_label_compiler(config, scope):
    """``compile_model`` for a softmax classifier: cross-entropy, accuracy, the configured
    optimizer, inside the distribution ``scope``."""
    def compile_model(model):
        with scope():
            model.compile(optimizer=training.optimizer(config.optimizer, config.learning_rate),
                          loss=keras.losses.SparseCategoricalCrossentropy(),
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return compile_model


class ClassifierModule(saved_model.ExportModule):
    """Export module of a classifier: scores, class names, top class; ``extra_outputs(scores)``
    adds outputs a family derives from the scores (e.g. the tagger's decoded tags)."""

    def __init__(self, model, tft_output, class_names: Sequence[str], stored_size: int,
                 extra_outputs: Optional[Callable] = None):
        super().__init__(model, tft_output, stored_size, name="classifier")
        self._extra_outputs = extra_outputs
        self.class_names = tf.Variable(list(class_names), trainable=False, dtype=tf.string,
                                       name="class_names")

    def classify_images(self, images: tf.Tensor) -> dict:
        """Every output of a batch of stored-size images."""
        scores = tf.cast(self.run_model(images), tf.float32)
        batch = tf.shape(scores)[0]
        top = tf.argmax(scores, axis=1, output_type=tf.int32)
        outputs = {
            SCORES_OUTPUT: scores,
            CLASSES_OUTPUT: tf.tile(self.class_names[tf.newaxis, :], [batch, 1]),
            TOP_CLASS_OUTPUT: tf.gather(self.class_names, top),
            TOP_SCORE_OUTPUT: tf.reduce_max(scores, axis=1),
        }
        if self._extra_outputs is not None:
            outputs.update(self._extra_outputs(scores))
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        return self.classify_images(self.images_from_examples(examples))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
    def classify(self, inputs):
        outputs = self.serve_examples(inputs)
        return {CLASSES_OUTPUT: outputs[CLASSES_OUTPUT], SCORES_OUTPUT: outputs[SCORES_OUTPUT]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(self, images):
        return self.classify_images(self.images_from_bytes(images))

    def signatures(self) -> dict:
        """Signature name → concrete function."""
        return {
            SERVING_DEFAULT: self.serve_examples.get_concrete_function(),
            SERVING_IMAGES: self.serve_images.get_concrete_function(),
            CLASSIFY: self.classify.get_concrete_function(),
            TRANSFORM_FEATURES: self.transform_features.get_concrete_function(),
        }


def classifier_warmup_logs(model_name: str, images: Sequence[bytes]) -> list:
    """Per image: ``serving_default`` with a tf.Example, ``serving_images`` with the bytes and
    ``classify`` with the tf.Example, so a server traces every classifier signature."""
    logs = []
    for image in images:
        example = image_example(image)
        logs += [warmup.predict_log(model_name, SERVING_DEFAULT,
                                    {EXAMPLES_INPUT: [example.SerializeToString()]}),
                 warmup.predict_log(model_name, SERVING_IMAGES, {IMAGES_INPUT: [image]}),
                 warmup.classify_log(model_name, CLASSIFY, [example])]
    return logs


def save_classifier(export_dir: str, module: ClassifierModule, class_names: Sequence[str],
                    warmup_logs: Sequence, extra_signatures: Optional[dict] = None) -> str:
    """Saves a classifier module with its signatures (plus ``extra_signatures``), the classify
    method name, the class-names asset (one per line) and warm-up requests."""
    bad = [name for name in class_names if "\n" in name or not name]
    if bad:
        raise ValueError(f"class names must be non-empty single lines, got {bad}")
    return saved_model.save(
        export_dir, module, {**module.signatures(), **(extra_signatures or {})},
        methods={CLASSIFY: CLASSIFY_METHOD},
        assets={CLASS_NAMES_ASSET: "\n".join(class_names) + "\n"}, warmup_logs=warmup_logs)


def export_classifier(export_dir: str, model, job: TrainingJob, model_name: str,
                      warmup_images: Sequence[bytes] = (),
                      extra_outputs: Optional[Callable] = None) -> str:
    """Exports ``model`` as a classifier SavedModel (see the module docstring)."""
    module = ClassifierModule(model, job.tft_output, job.label_names, job.stored_size,
                              extra_outputs)
    return save_classifier(export_dir, module, job.label_names,
                           classifier_warmup_logs(model_name, warmup_images))
