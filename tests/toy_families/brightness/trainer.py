"""run_fn and export: generic parts only (no classifier kind)."""

import dataclasses

import keras
import tensorflow as tf
import tensorflow_transform as tft

from schemas.serving_api import (CLASSIFY_INPUTS, EXAMPLES_INPUT, IMAGES_INPUT, REGRESS_METHOD,
                                 REGRESS_OUTPUTS, SERVING_DEFAULT, SERVING_IMAGES,
                                 TRANSFORM_FEATURES)
from trainer import checkpoints, input_pipeline, training, transfer
from trainer.export import saved_model, warmup
from trainer.export.records import image_example
from toy_families.brightness.config import BrightnessConfig
from toy_families.brightness.model import build
from toy_families.brightness.spec import REGRESS
from toy_families.brightness.transform import BRIGHTNESS


class Module(saved_model.ExportModule):
    def _predict(self, images):
        return {BRIGHTNESS: tf.reshape(self.run_model(images), [-1])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        return self._predict(self.images_from_examples(examples))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(self, images):
        return self._predict(self.images_from_bytes(images))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
    def regress(self, inputs):
        return {REGRESS_OUTPUTS: self.serve_examples(inputs)[BRIGHTNESS]}


def run_fn(fn_args):
    config = BrightnessConfig.from_dict(fn_args.custom_config["brightness"])
    stored_size = int(fn_args.custom_config["stored_size"])
    training.seed_everything(config.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    spec = tft_output.transformed_feature_spec()
    train = input_pipeline.labelled_images(fn_args.train_files, spec, BRIGHTNESS, stored_size,
                                           config.batch_size, training=True, seed=config.seed)
    evaluation = input_pipeline.labelled_images(fn_args.eval_files, spec, BRIGHTNESS,
                                                stored_size, config.batch_size, training=False)
    model = build(stored_size)

    def compile_model(m):
        m.compile(optimizer=training.optimizer(config.optimizer, config.learning_rate),
                  loss="mse", metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    history = training.fit(
        model, compile_model, train, evaluation,
        phases=transfer.phases(config.transfer_mode, config.epochs), monitor="val_mae",
        mode="min", steps_per_epoch=config.steps_per_epoch,
        patience=config.early_stopping_patience,
        checkpoint_dir=checkpoints.checkpoint_dir(
            fn_args.custom_config.get("checkpoint_root"), "brightness",
            dataclasses.asdict(config), list(fn_args.train_files)))
    module = Module(model, tft_output, stored_size)
    images = input_pipeline.sample_images(fn_args.eval_files, spec, count=2)
    logs = []
    for image in images:
        example = image_example(image)
        logs += [warmup.predict_log("brightness", SERVING_DEFAULT,
                                    {EXAMPLES_INPUT: [example.SerializeToString()]}),
                 warmup.predict_log("brightness", SERVING_IMAGES, {IMAGES_INPUT: [image]}),
                 warmup.regress_log("brightness", REGRESS, [example])]
    saved_model.save(fn_args.serving_model_dir, module, {
        SERVING_DEFAULT: module.serve_examples.get_concrete_function(),
        SERVING_IMAGES: module.serve_images.get_concrete_function(),
        REGRESS: module.regress.get_concrete_function(),
        TRANSFORM_FEATURES: module.transform_features.get_concrete_function()},
        methods={REGRESS: REGRESS_METHOD}, warmup_logs=logs)
    training.write_history(fn_args.model_run_dir, history)
