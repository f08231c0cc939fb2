"""The dual encoder's serving SavedModel: image and text embeddings (L2-normalised, so a dot
product is the cosine similarity), the Transform graph inside.

Signatures (names in ``schemas.serving_api``):

``serving_default``  ``examples``: serialized tf.Examples (only ``image/encoded`` is read) →
                     ``embedding`` [batch, d] float32
``serving_images``   ``images``: encoded image bytes → ``embedding``
``embed_text``       ``text``: strings (captions, queries, prompts; normalised inside as the
                     training captions were) → ``embedding``

``assets.extra/embedding.json`` holds the embedding size, the zero-shot prompt and the loss; the
learned vocabulary is ``assets.extra/vocabulary.txt``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import tensorflow as tf

from schemas.serving_api import (EMBED_TEXT, EMBEDDING_INFO_ASSET, EMBEDDING_OUTPUT,
                                 EXAMPLES_INPUT, IMAGES_INPUT, SERVING_DEFAULT, SERVING_IMAGES,
                                 TEXT_INPUT)
from trainer.export import saved_model, warmup
from trainer.export.records import image_example
from trainer.families.dual_encoder.captions import normalize

VOCABULARY_ASSET = "vocabulary.txt"


class EmbeddingModule(saved_model.ExportModule):
    """Export module of the dual encoder (see the module docstring)."""

    def __init__(self, image_embedder, text_tower, tft_output, stored_size: int, logits):
        super().__init__(image_embedder, tft_output, stored_size, name="dual_encoder")
        # As the base class does for the image tower: the variables, not the Keras model.
        self._embed_text = lambda text: text_tower(text, training=False)
        self.text_variables = list(text_tower.variables)
        # The learnt logit scale (and SigLIP bias): unused in serving, kept to warm-start from.
        self.logit_variables = [getattr(v, "value", v) for v in logits.variables]

    def _embedding(self, images):
        return {EMBEDDING_OUTPUT: tf.cast(self.run_model(images), tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        return self._embedding(self.images_from_examples(examples))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(self, images):
        return self._embedding(self.images_from_bytes(images))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
    def embed_text(self, text):
        return {EMBEDDING_OUTPUT: tf.cast(self._embed_text(normalize(text)), tf.float32)}

    def signatures(self) -> dict:
        return {SERVING_DEFAULT: self.serve_examples.get_concrete_function(),
                SERVING_IMAGES: self.serve_images.get_concrete_function(),
                EMBED_TEXT: self.embed_text.get_concrete_function()}


def warmup_logs(model_name: str, images: Sequence[bytes], texts: Sequence[str]) -> list:
    """Per image a ``serving_default`` and a ``serving_images`` request; per text an
    ``embed_text`` request."""
    logs = []
    for image in images:
        logs += [warmup.predict_log(model_name, SERVING_DEFAULT, {
                     EXAMPLES_INPUT: [image_example(image).SerializeToString()]}),
                 warmup.predict_log(model_name, SERVING_IMAGES, {IMAGES_INPUT: [image]})]
    logs += [warmup.predict_log(model_name, EMBED_TEXT, {TEXT_INPUT: [text]}) for text in texts]
    return logs


def export(export_dir: str, towers, tft_output, stored_size: int, config,
           warmup_images: Sequence[bytes] = (), warmup_texts: Sequence[str] = (),
           model_name: str = "dual_encoder") -> str:
    """Saves the towers of a trained dual encoder (``trainer.Towers``) as a serving
    SavedModel."""
    module = EmbeddingModule(towers.image_embedder(), towers.text, tft_output, stored_size,
                             towers.logits)
    info = {"embedding_dim": config.embedding_dim, "prompt": config.prompt,
            "loss": config.loss, "logit_scale": float(towers.logits.scale()),
            "text_tower": (config.text_encoder_dir or
                           f"bert L-{config.text_layers} H-{config.text_hidden} "
                           f"A-{config.text_heads}"),
            "config": dataclasses.asdict(config)}
    return saved_model.save(
        export_dir, module, module.signatures(),
        assets={EMBEDDING_INFO_ASSET: json.dumps(info, indent=2, default=str),
                VOCABULARY_ASSET: "\n".join(towers.vocabulary) + "\n"},
        warmup_logs=warmup_logs(model_name, warmup_images, warmup_texts))


def read_vocabulary(export_dir: str) -> list:
    """The text tower's vocabulary an exported dual encoder was trained with ([] when none)."""
    from schemas.serving_api import ASSETS_EXTRA
    path = os.path.join(export_dir, ASSETS_EXTRA, VOCABULARY_ASSET)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as handle:
        return [line.rstrip("\n") for line in handle if line.rstrip("\n")]


def read_info(export_dir: str) -> dict:
    """The ``embedding.json`` asset of an exported embedding model ({} when it has none)."""
    from schemas.serving_api import ASSETS_EXTRA
    path = os.path.join(export_dir, ASSETS_EXTRA, EMBEDDING_INFO_ASSET)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)
