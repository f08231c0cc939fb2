"""Export base: a serving SavedModel that carries the TF Transform graph, so serving
preprocessing cannot drift from training.

:class:`ExportModule` is what every family's export module extends (as Model Garden's
``export_base.ExportModule``): it holds the Transform layer and the model's variables and turns
the inputs clients send — serialized ``tf.Example`` protos or encoded image bytes — into what the
model takes; a family adds the signatures that fit its outputs (scores, boxes, embeddings, ...).
:func:`save` writes the SavedModel with its signatures, their TF Serving method names, assets
and warm-up requests. Nothing here knows a family or a server.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import tensorflow as tf

from schemas import features as F
from schemas.serving_api import ASSETS_EXTRA, EXAMPLES_INPUT
from trainer.preprocessing import decode_transformed_image


class ExportModule(tf.Module):
    """Base of the families' export modules: Transform layer, model variables, input parsing.

    Only the model's variables are tracked, not the model object: tracking it would also save
    its optimizer state (3x the size). ``model.variables`` includes the RNG seed state of
    dropout/augmentation layers, which the traced functions capture too.
    """

    def __init__(self, model, tft_output, stored_size: int, name: str = "export"):
        super().__init__(name=name)
        # A lambda, not an attribute holding the model: tf.Module would track the model.
        self._call_model = lambda images: model(images, training=False)
        self.model_variables = [getattr(v, "value", v) for v in model.variables]
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_feature_spec = tft_output.raw_feature_spec()
        self._stored_size = stored_size

    def run_model(self, images):
        """The Keras model on a float32 image batch, in inference mode."""
        return self._call_model(images)

    def images_from_raw(self, raw_features: dict) -> tf.Tensor:
        """Raw features (at least ``image/encoded``) → float32 [batch, stored, stored, 3]
        through the Transform graph (decode, bomb checks, letterbox)."""
        transformed = self.tft_layer(raw_features)
        return tf.map_fn(lambda png: decode_transformed_image(png, self._stored_size),
                         transformed[F.TRANSFORMED_IMAGE], fn_output_signature=tf.float32)

    def images_from_examples(self, examples: tf.Tensor) -> tf.Tensor:
        """Serialized tf.Examples (only ``image/encoded`` is read) → image batch."""
        parsed = tf.io.parse_example(
            examples, {F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string)})
        return self.images_from_raw(parsed)

    def images_from_bytes(self, images: tf.Tensor) -> tf.Tensor:
        """Encoded image bytes → image batch."""
        return self.images_from_raw({F.IMAGE_ENCODED: images})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_features(self, examples):
        """Serialized tf.Examples → every transformed feature, labels included (TFMA's
        preprocessing function, to read labels the way training did)."""
        parsed = tf.io.parse_example(examples, self._raw_feature_spec)
        return self.tft_layer(parsed)


def set_signature_methods(export_dir: str, methods: Mapping[str, str]) -> None:
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


def save(export_dir: str, module: tf.Module, signatures: Mapping[str, object],
         methods: Optional[Mapping[str, str]] = None,
         assets: Optional[Mapping[str, str]] = None,
         warmup_logs: Sequence = ()) -> str:
    """Saves ``module`` with ``signatures`` (name → concrete function) as a serving SavedModel.

    ``methods`` sets TF Serving method names (name → method) where a signature is not a plain
    predict; ``assets`` are text files written to ``assets.extra/``; ``warmup_logs`` are
    ``PredictionLog`` protos written as TF Serving warm-up requests.
    """
    from trainer.export.warmup import write_warmup_requests
    tf.saved_model.save(module, export_dir, signatures=dict(signatures))
    if methods:
        set_signature_methods(export_dir, methods)
    extra = os.path.join(export_dir, ASSETS_EXTRA)
    tf.io.gfile.makedirs(extra)
    for name, text in (assets or {}).items():
        with tf.io.gfile.GFile(os.path.join(extra, name), "w") as handle:
            handle.write(text)
    if warmup_logs:
        write_warmup_requests(export_dir, warmup_logs)
    return export_dir
