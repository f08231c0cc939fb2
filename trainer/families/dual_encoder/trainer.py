"""TFX Trainer ``run_fn`` of the dual encoder.

It trains on the Transform's letterboxed images and normalised captions (records without a
caption are skipped). The WordPiece vocabulary is learned from the training captions first.
Training follows the image tower's transfer phases (``trainer.transfer``): a phase with the
trunk frozen and ``cached_feature_views`` set trains the image head, the text tower and the
logit scale on trunk features computed once (the images as they are, plus augmented copies);
other phases train on the images. Each phase resumes after a kill (``training.fit``'s
checkpoints) and a finished phase is not redone.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

from schemas import features as F
from trainer import augmentation, checkpoints, feature_cache, training, transfer
from trainer.backbones.efficientnet import builder_name
from trainer.families.dual_encoder import model as dual
from trainer.families.dual_encoder.config import DualEncoderConfig
from trainer.families.dual_encoder.features import CAPTION
from trainer.input_pipeline import matching_files
from trainer.kinds.classifier import trainer_inputs, training_phases
from trainer.preprocessing import decode_transformed_image
from trainer.weights import build_with_weights

FAMILY = "dual_encoder"
MONITOR = "val_loss"
STAGE_DONE = "stage-{index}.done.json"
STAGE_WEIGHTS = "stage-{index}.weights.h5"


@dataclasses.dataclass
class Towers:
    """The dual encoder's parts (their layers shared by the training models built on them)."""

    trunk: keras.Model  # images → pooled features
    image_head: keras.Model  # pooled features → image embedding
    text: keras.Model  # captions → text embedding
    logits: dual.ContrastiveLogits
    vocabulary: list

    def image_embedder(self) -> keras.Model:
        """Images → embeddings (what the export serves)."""
        images = keras.Input(self.trunk.input.shape[1:], name="images")
        return keras.Model(images, self.image_head(self.trunk(images)), name="image_tower")

    def on_images(self) -> keras.Model:
        """``{images, caption}`` → logits, through the trunk."""
        return dual.contrastive_model(self.image_embedder(), self.trunk.input.shape[1:],
                                      self.text, self.logits, "dual_encoder")

    def on_features(self) -> keras.Model:
        """``{cached trunk features, caption}`` → logits."""
        return dual.contrastive_model(self.image_head, self.trunk.output.shape[1:], self.text,
                                      self.logits, "dual_encoder_on_features")


def caption_hash(captions: tf.Tensor) -> tf.Tensor:
    """The loss's caption ids: equal captions, equal ids."""
    return tf.strings.to_hash_bucket_fast(captions, 2 ** 31 - 1)


def read_captions(file_patterns, compression_type: str = "GZIP") -> list[str]:
    """Every captioned example's normalised caption, in order."""
    spec = {CAPTION: tf.io.FixedLenFeature([], tf.string),
            F.label_weight_feature(CAPTION): tf.io.FixedLenFeature([], tf.float32)}
    dataset = tf.data.TFRecordDataset(matching_files(file_patterns),
                                      compression_type=compression_type)
    captions = []
    for batch in dataset.map(lambda s: tf.io.parse_single_example(s, spec)).batch(
            4096).as_numpy_iterator():
        captions += [c.decode() for c, w in zip(batch[CAPTION],
                                                 batch[F.label_weight_feature(CAPTION)]) if w > 0]
    return captions


def captioned_images(file_patterns, stored_size: int, batch_size: int, *, training: bool,
                     seed: int = 0, compression_type: str = "GZIP") -> tf.data.Dataset:
    """``(image, caption)`` batches of the captioned transformed examples: shuffled, repeated
    and with full batches for training; one ordered pass otherwise."""
    weight = F.label_weight_feature(CAPTION)
    spec = {F.TRANSFORMED_IMAGE: tf.io.FixedLenFeature([], tf.string),
            CAPTION: tf.io.FixedLenFeature([], tf.string),
            weight: tf.io.FixedLenFeature([], tf.float32)}
    dataset = tf.data.TFRecordDataset(matching_files(file_patterns),
                                      compression_type=compression_type)
    if training:
        dataset = dataset.shuffle(2048, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(lambda s: tf.io.parse_single_example(s, spec),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    dataset = dataset.filter(lambda f: f[weight] > 0).map(
        lambda f: (decode_transformed_image(f[F.TRANSFORMED_IMAGE], stored_size), f[CAPTION]),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    # A contrastive batch of one has no negatives: training batches are full.
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def contrastive_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``(inputs, caption ids)`` of ``(images or features, caption)`` batches."""
    return dataset.map(lambda images, captions: (
        {"images": tf.cast(images, tf.float32), dual.CAPTION_INPUT: captions},
        caption_hash(captions)))


def build_towers(config: DualEncoderConfig, stored_size: int, vocabulary: list) -> Towers:
    """The configured towers and logit scale (call inside the distribution scope)."""
    trunk, head = build_with_weights(
        lambda weights: dual.image_tower(
            config, stored_size, weights=weights,
            augment=augmentation.from_config(config.augmentation, config.seed)),
        config.weights, builder_name(config.backbone))
    text = dual.text_tower(config, vocabulary)
    text.trainable = config.train_text_tower
    sigmoid = config.loss == "sigmoid"
    logits = dual.ContrastiveLogits(config.initial_temperature, config.max_logit_scale,
                                    config.initial_sigmoid_bias if sigmoid else 0.0,
                                    learn_bias=sigmoid, name="contrastive_logits")
    return Towers(trunk, head, text, logits, vocabulary)


def warm_start(towers: Towers, saved_model_dir: str) -> dict:
    """Loads an exported dual encoder's image tower, text tower and logit scale into
    ``towers`` (all of them, or nothing when any differs in shape); what happened, for the
    history."""
    return training.warm_start_groups(saved_model_dir, {
        "model_variables": list(towers.image_embedder().variables),
        "text_variables": list(towers.text.variables),
        "logit_variables": list(towers.logits.variables)})


def compiler(config: DualEncoderConfig, scope):
    """``compile_model``: the configured contrastive loss and in-batch retrieval accuracy."""
    loss = dual.sigmoid_loss if config.loss == "sigmoid" else dual.softmax_loss

    def compile_model(model):
        with scope():
            model.compile(optimizer=training.optimizer(config.optimizer, config.learning_rate),
                          loss=loss, metrics=[dual.InBatchRetrieval()])
    return compile_model


def train(towers: Towers, config: DualEncoderConfig, train_once, train_images, evaluation,
          compile_model, steps_per_epoch: int, checkpoint_dir,
          warm: bool = False) -> training.History:
    """Trains through the image tower's transfer phases (see the module docstring); ``warm``:
    the towers hold a blessed model's weights (the classifiers' warm schedule)."""
    phases = training_phases(config, warm)
    on_images = towers.on_images()
    history = training.History()
    cached = None
    gfile = tf.io.gfile
    for index, phase in enumerate(phases):
        done = os.path.join(checkpoint_dir, STAGE_DONE.format(index=index)) \
            if checkpoint_dir else None
        if done and gfile.exists(done):
            on_images.load_weights(os.path.join(checkpoint_dir,
                                                STAGE_WEIGHTS.format(index=index)))
            with gfile.GFile(done) as handle:
                for key, values in json.load(handle).items():
                    history.setdefault(key, []).extend(values)
            history.resumed_at_epoch = len(next(iter(history.values()), []))
            logging.info("dual encoder phase %d finished before an interruption: kept", index)
            continue
        stage_dir = os.path.join(checkpoint_dir, f"phase-{index}") if checkpoint_dir else None
        if phase.trainable_layers == 0 and config.cached_feature_views:
            if cached is None:
                cached = _cache_features(towers, config, train_once, evaluation)
            towers.trunk.trainable = False
            result = training.fit(
                towers.on_features(), compile_model, cached[0], cached[1],
                phases=[transfer.Phase(phase.epochs, None, phase.learning_rate)],
                steps_per_epoch=steps_per_epoch, monitor=MONITOR, mode="min",
                patience=config.early_stopping_patience, checkpoint_dir=stage_dir,
                backbones=[])
        else:
            # A cached phase froze the whole trunk; the phase's own trainable layers apply to
            # its backbone (training.fit sets them).
            towers.trunk.trainable = True
            result = training.fit(
                on_images, compile_model, contrastive_batches(train_images),
                contrastive_batches(evaluation), phases=[phase],
                steps_per_epoch=steps_per_epoch, monitor=MONITOR, mode="min",
                patience=config.early_stopping_patience, checkpoint_dir=stage_dir,
                backbones=[transfer.find_backbone(towers.trunk)])
        for key, values in result.items():
            history.setdefault(key, []).extend(values)
        history.resumed_at_epoch = max(history.resumed_at_epoch, result.resumed_at_epoch)
        if done:
            on_images.save_weights(os.path.join(checkpoint_dir,
                                                STAGE_WEIGHTS.format(index=index)))
            with gfile.GFile(done, "w") as handle:
                json.dump(dict(result), handle)
    if checkpoint_dir and gfile.exists(checkpoint_dir):
        gfile.rmtree(checkpoint_dir)
    return history


def _cache_features(towers: Towers, config: DualEncoderConfig, train_once, evaluation):
    """In-memory ``(train, evaluation)`` contrastive datasets of trunk features computed once
    (``cached_feature_views`` views of the training images)."""
    aug = next((layer for layer in towers.trunk.layers
                if layer.name == augmentation.LAYER_NAME), None)
    train_features, train_captions = feature_cache.extract(
        towers.trunk, train_once, config.cached_feature_views, aug)
    eval_features, eval_captions = feature_cache.extract(towers.trunk, evaluation)
    logging.info("dual encoder: cached trunk features of %d training and %d eval images",
                 len(train_captions), len(eval_captions))
    train = tf.data.Dataset.from_tensor_slices((train_features, train_captions)).shuffle(
        len(train_captions), seed=config.seed, reshuffle_each_iteration=True).repeat().batch(
        config.batch_size, drop_remainder=True)
    evaluation = tf.data.Dataset.from_tensor_slices((eval_features, eval_captions)).batch(
        config.batch_size)
    return (contrastive_batches(train).prefetch(tf.data.AUTOTUNE),
            contrastive_batches(evaluation).prefetch(tf.data.AUTOTUNE))


def run_fn(fn_args) -> None:
    """Trains, evaluates and exports the dual encoder.

    ``fn_args.custom_config`` carries ``{"dual_encoder": asdict(DualEncoderConfig),
    "stored_size": int, "checkpoint_root": str}``.
    """
    import tensorflow_transform as tft

    from trainer.families.dual_encoder import export
    from trainer.input_pipeline import sample_images
    config, stored_size = trainer_inputs(fn_args, FAMILY, DualEncoderConfig)
    training.seed_everything(config.seed)
    training.set_mixed_precision(config.mixed_precision)
    captions = read_captions(fn_args.train_files)
    if len(captions) < 2:
        raise ValueError(f"{FAMILY}: needs captioned training examples (fashion/caption), "
                         f"found {len(captions)}")
    warm_from = training.warm_start_source(fn_args, config)
    # A warm start keeps the blessed model's vocabulary: its text tower's rows are its tokens
    # (words new in this span map to [UNK] until a cold retraining).
    vocabulary = (warm_from and export.read_vocabulary(warm_from)) or \
        dual.learn_vocabulary(captions, config.vocabulary_size)
    batch_size = min(config.batch_size, len(captions))
    train_images = captioned_images(fn_args.train_files, stored_size, batch_size,
                                    training=True, seed=config.seed)
    train_once = captioned_images(fn_args.train_files, stored_size, batch_size, training=False)
    evaluation = captioned_images(fn_args.eval_files, stored_size, batch_size, training=False)
    if config.eval_steps:
        evaluation = evaluation.take(config.eval_steps)
    checkpoint_dir = checkpoints.for_trainer(
        fn_args, FAMILY, {"family": dataclasses.asdict(config), "stored_size": stored_size})
    scope = training.distribution_scope()
    with scope():
        towers = build_towers(config, stored_size, vocabulary)
    steps = training.steps_per_epoch(config.steps_per_epoch,
                                     len(captions) * max(1, config.cached_feature_views),
                                     batch_size)
    logging.info("%s: %d captioned training examples, vocabulary %d, %d steps/epoch", FAMILY,
                 len(captions), len(vocabulary), steps)
    warm_result = warm_start(towers, warm_from) if warm_from else None
    history = train(towers, config, train_once, train_images, evaluation,
                    compiler(config, scope), steps, checkpoint_dir,
                    warm="warm_started_from" in (warm_result or {}))
    history.warm_start_result = warm_result
    warmup = sample_images(fn_args.eval_files, {F.TRANSFORMED_IMAGE: tf.io.FixedLenFeature(
        [], tf.string)}, count=2)
    export.export(fn_args.serving_model_dir, towers, tft.TFTransformOutput(
        fn_args.transform_output), stored_size, config, warmup, captions[:2])
    training.write_history(fn_args.model_run_dir, history)

