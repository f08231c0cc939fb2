"""Serving signatures of exported classifiers.

An exported classifier is a TF2 SavedModel with three signatures, all running the same TF
Transform graph as training, so serving preprocessing cannot drift from training:

``serving_default``  ``examples``: serialized ``tf.train.Example`` (only ``image/encoded`` is
                     read) → ``scores`` [batch, classes] float32, ``classes`` [batch, classes]
                     string, ``top_class`` [batch] string, ``top_score`` [batch] float32.
``serving_images``   ``images``: raw encoded image bytes (JPEG/PNG/GIF/BMP) → same outputs.
``attention``        (brand model) ``images`` → ``scores`` and ``attention`` [batch, H, W], the
                     spatial attention map.
``classify``         ``inputs``: serialized ``tf.Example`` → ``classes`` and ``scores`` only, with
                     TF Serving's classify method name, so the gRPC ``Classify`` and
                     ``MultiInference`` APIs and REST ``:classify`` work on it.
``transform_features`` ``examples`` → the transformed features, labels included (used by TFMA as
                     its preprocessing function to get labels).

The output names follow TF Serving's classification convention (``classes``/``scores``).
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import tensorflow as tf

from schemas import features as F
from serving.inference import CLASSIFY_METHOD, REGRESS_METHOD  # noqa: F401 (re-exported)
from serving.warmup import WARMUP_FILE

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
CLASSIFY = "classify"
TRANSFORM_FEATURES = "transform_features"
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "images"
CLASS_NAMES_ASSET = "class_names.txt"
ATTENTION = "attention"


def decode_transformed_image(png: tf.Tensor, image_size: int) -> tf.Tensor:
    """PNG bytes written by the Transform → float32 [image_size, image_size, 3] in 0..255."""
    image = tf.ensure_shape(tf.io.decode_png(png, channels=3), [image_size, image_size, 3])
    return tf.cast(image, tf.float32)


class _ClassifierModule(tf.Module):
    def __init__(self, model, tft_output, class_names: Sequence[str], image_size: int,
                 extra_outputs: Optional[Callable] = None, attention_model=None):
        super().__init__(name="classifier")
        self._extra_outputs = extra_outputs
        if attention_model is not None:
            # Only a model with an attention map gets the signature (saving traces every
            # tf.function the module holds).
            self._attention = lambda images: attention_model(images, training=False)
            self.attention = tf.function(self._serve_attention, input_signature=[
                tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
        # Only the model's variables are tracked, not the model object: tracking it would also
        # save its optimizer state (3x the size). model.variables includes the RNG seed state of
        # dropout/augmentation layers, which the traced functions capture too.
        self._predict = lambda images: model(images, training=False)
        self.model_variables = [getattr(v, "value", v) for v in model.variables]
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_feature_spec = tft_output.raw_feature_spec()
        self._image_size = image_size
        self.class_names = tf.Variable(list(class_names), trainable=False, dtype=tf.string,
                                       name="class_names")

    def _images(self, raw_features):
        transformed = self.tft_layer(raw_features)
        return tf.map_fn(lambda png: decode_transformed_image(png, self._image_size),
                         transformed[F.TRANSFORMED_IMAGE], fn_output_signature=tf.float32)

    def _classify(self, raw_features):
        scores = tf.cast(self._predict(self._images(raw_features)), tf.float32)
        batch = tf.shape(scores)[0]
        top = tf.argmax(scores, axis=1, output_type=tf.int32)
        outputs = {
            "scores": scores,
            "classes": tf.tile(self.class_names[tf.newaxis, :], [batch, 1]),
            "top_class": tf.gather(self.class_names, top),
            "top_score": tf.reduce_max(scores, axis=1),
        }
        if self._extra_outputs is not None:
            outputs.update(self._extra_outputs(scores))
        return outputs

    def _serve_attention(self, images):
        scores, attention = self._attention(self._images({F.IMAGE_ENCODED: images}))
        return {"scores": tf.cast(scores, tf.float32),
                "attention": tf.cast(attention, tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        parsed = tf.io.parse_example(
            examples, {F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string)})
        return self._classify(parsed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        outputs = self.serve_examples(inputs)
        return {"classes": outputs["classes"], "scores": outputs["scores"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(self, images):
        return self._classify({F.IMAGE_ENCODED: images})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_features(self, examples):
        parsed = tf.io.parse_example(examples, self._raw_feature_spec)
        return self.tft_layer(parsed)


def set_signature_methods(export_dir: str, methods: dict) -> None:
    """Sets the ``method_name`` of signatures in a saved ``saved_model.pb``.

    ``tf.saved_model.save`` marks every signature as a Predict signature; TF Serving's
    Classify/Regress APIs need ``tensorflow/serving/classify`` or ``.../regress``. TF's own loader
    ignores the method name, so changing it keeps the model loadable everywhere.
    """
    from tensorflow.core.protobuf import saved_model_pb2
    path = os.path.join(export_dir, "saved_model.pb")
    with tf.io.gfile.GFile(path, "rb") as handle:
        saved = saved_model_pb2.SavedModel.FromString(handle.read())
    for meta_graph in saved.meta_graphs:
        for name, method in methods.items():
            if name not in meta_graph.signature_def:
                raise KeyError(f"{export_dir} has no signature {name!r}")
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path + ".tmp", "wb") as handle:
        handle.write(saved.SerializeToString())
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def write_warmup_requests(export_dir: str, model_name: str, images: Sequence[bytes]) -> str:
    """Writes TF Serving warm-up records (``assets.extra/tf_serving_warmup_requests``).

    For each encoded image, one ``PredictionLog`` calls ``serving_default`` with a serialized
    ``tf.Example`` holding it, one calls ``serving_images`` with the bytes and one
    ``ClassifyLog`` calls ``classify``, so a server traces and warms every serving signature
    before it reports the version AVAILABLE.
    """
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

    from schemas.features import IMAGE_ENCODED
    assets = os.path.join(export_dir, "assets.extra")
    tf.io.gfile.makedirs(assets)
    path = os.path.join(assets, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for image in images:
            example = tf.train.Example(features=tf.train.Features(feature={
                IMAGE_ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
            for signature, input_name, value in (
                    (SERVING_DEFAULT, EXAMPLES_INPUT, example.SerializeToString()),
                    (SERVING_IMAGES, IMAGES_INPUT, image)):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = model_name
                request.model_spec.signature_name = signature
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto([value], tf.string))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
            classify = classification_pb2.ClassificationRequest()
            classify.model_spec.name = model_name
            classify.model_spec.signature_name = CLASSIFY
            classify.input.example_list.examples.add().CopyFrom(example)
            log = prediction_log_pb2.PredictionLog(
                classify_log=prediction_log_pb2.ClassifyLog(request=classify))
            writer.write(log.SerializeToString())
    return path


def export_classifier(export_dir: str, model, tft_output, class_names: Sequence[str],
                      image_size: int, warmup_images: Sequence[bytes] = (),
                      model_name: str = "", extra_outputs: Optional[Callable] = None,
                      attention_model=None) -> str:
    """Saves ``model`` with the transform graph and class names as a serving SavedModel.

    ``warmup_images`` (encoded images) become TF Serving warm-up requests for ``model_name``.
    ``extra_outputs(scores)`` adds outputs to ``serving_default``/``serving_images`` (e.g. the
    decoded tags of a multi-label model). ``attention_model`` (images → scores, attention map)
    adds the ``attention`` signature: encoded images → ``scores`` and ``attention``.
    """
    module = _ClassifierModule(model, tft_output, class_names, image_size, extra_outputs,
                               attention_model)
    signatures = {
        SERVING_DEFAULT: module.serve_examples.get_concrete_function(),
        SERVING_IMAGES: module.serve_images.get_concrete_function(),
        CLASSIFY: module.classify.get_concrete_function(),
        TRANSFORM_FEATURES: module.transform_features.get_concrete_function(),
    }
    if attention_model is not None:
        signatures[ATTENTION] = module.attention.get_concrete_function()
    tf.saved_model.save(module, export_dir, signatures=signatures)
    set_signature_methods(export_dir, {CLASSIFY: CLASSIFY_METHOD})
    assets = os.path.join(export_dir, "assets.extra")
    tf.io.gfile.makedirs(assets)
    with tf.io.gfile.GFile(os.path.join(assets, CLASS_NAMES_ASSET), "w") as handle:
        handle.write("\n".join(class_names) + "\n")
    if warmup_images:
        write_warmup_requests(export_dir, model_name, warmup_images)
    return export_dir
