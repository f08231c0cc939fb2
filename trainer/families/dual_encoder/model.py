"""The dual encoder (pipeline study: CLIP/ALIGN-style) in Keras 3: an EfficientNet image tower,
a small BERT text tower (keras-hub) over a WordPiece vocabulary learned from the training
captions, projection heads, L2-normalised embeddings, and a learned logit scale (CLIP's
temperature, clipped) with the symmetric softmax loss or the sigmoid (SigLIP) loss.

Pairs whose captions are identical are positives of each other (the loss's ``y_true`` holds a
hash of each caption): a catalog repeats captions ("a person wearing a red dress"), and
treating those repeats as negatives would train the towers to tell identical texts apart.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import keras
from keras import ops

from trainer.backbones.efficientnet import pooled_features
from trainer.transfer import FEATURES_LAYER

RESERVED_TOKENS = ("[PAD]", "[UNK]")
CAPTION_INPUT = "caption"
FEATURES_INPUT = "image_features"


def learn_vocabulary(captions: Sequence[str], size: int) -> list[str]:
    """A WordPiece vocabulary of at most ``size`` tokens learned from ``captions`` (keras-hub,
    offline), ``[PAD]`` first (id 0) and ``[UNK]``."""
    import keras_hub
    import tensorflow as tf
    captions = [caption for caption in captions if caption]
    if not captions:
        raise ValueError("no captions to learn a vocabulary from")
    return list(keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(captions).batch(256), vocabulary_size=size,
        reserved_tokens=list(RESERVED_TOKENS), lowercase=True))


def projection(name: str, layers: int, dim: int, dropout: float) -> keras.Sequential:
    """``layers`` - 1 Dense+GELU+dropout blocks, then a linear layer to ``dim``, then L2
    normalisation."""
    blocks = []
    for index in range(layers - 1):
        blocks += [keras.layers.Dense(dim, activation="gelu", name=f"{name}_hidden{index}"),
                   keras.layers.Dropout(dropout, name=f"{name}_dropout{index}")]
    blocks += [keras.layers.Dense(dim, name=f"{name}_out", dtype="float32"),
               keras.layers.UnitNormalization(axis=-1, name=f"{name}_l2", dtype="float32")]
    return keras.Sequential(blocks, name=name)


class MaskedMeanPooling(keras.layers.Layer):
    """The mean of a sequence's vectors over its non-padding tokens."""

    def call(self, sequence, mask):
        weights = ops.cast(mask, sequence.dtype)[..., None]
        return ops.sum(sequence * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


def text_tower(config, vocabulary: Sequence[str]) -> keras.Model:
    """Captions (normalised strings) → L2-normalised embeddings: WordPiece tokens → BERT
    (``text_layers``, ``text_hidden``, ``text_heads``) → masked mean → projection; or, with
    ``config.text_encoder_dir``, that local SavedModel's sentence vector → projection."""
    import keras_hub
    captions = keras.Input((), dtype="string", name=CAPTION_INPUT)
    if config.text_encoder_dir:
        encoder = keras.layers.TFSMLayer(config.text_encoder_dir,
                                         call_endpoint="serving_default",
                                         trainable=config.train_text_tower, name="text_encoder")
        outputs = encoder(captions)
        if isinstance(outputs, dict):
            key = next((k for k in ("pooled_output", "default", "outputs") if k in outputs),
                       sorted(outputs)[0])
            outputs = outputs[key]
        sentence = outputs
    else:
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=list(vocabulary), sequence_length=config.max_sequence_length,
            lowercase=True, name="wordpiece")
        tokens = tokenizer(captions)
        mask = keras.layers.Lambda(lambda t: ops.not_equal(t, 0), name="padding_mask")(tokens)
        bert = keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary), num_layers=config.text_layers,
            num_heads=config.text_heads, hidden_dim=config.text_hidden,
            intermediate_dim=config.text_intermediate,
            max_sequence_length=config.max_sequence_length, name="bert")
        sequence = bert({"token_ids": tokens, "segment_ids": ops.zeros_like(tokens),
                         "padding_mask": mask})["sequence_output"]
        sentence = MaskedMeanPooling(name="mean_pool")(sequence, mask)
        # BERT's pooler (a dense layer on [CLS]) is unused: the sentence is the masked mean.
        # Keras would warn at every compile that it gets no gradients.
        bert.get_layer("pooled_dense").trainable = False
    embedding = projection("text_projection", config.projection_layers, config.embedding_dim,
                           config.projection_dropout)(sentence)
    return keras.Model(captions, embedding, name="text_tower")


def image_tower(config, source_size: int, weights=None,
                augment: Optional[keras.Sequential] = None) -> tuple:
    """``(trunk, head)``: stored-size images (0..255) → pooled EfficientNet features (the
    ``trunk_features`` layer), and features → L2-normalised embeddings (dropout, projection).
    The trunk may be run once and its features cached while it is frozen."""
    inputs, dropped = pooled_features(weights=weights, augment=augment,
                                      **config.trunk_options(source_size))
    # The trunk ends at its pooled features; the head's own dropout replaces the trunk's.
    trunk = keras.Model(inputs, keras.Model(inputs, dropped).get_layer(FEATURES_LAYER).output,
                        name="image_trunk")
    features = keras.Input((trunk.output.shape[-1],), name=FEATURES_INPUT)
    x = keras.layers.Dropout(config.dropout, name="image_dropout")(features)
    embedding = projection("image_projection", config.projection_layers, config.embedding_dim,
                           config.projection_dropout)(x)
    return trunk, keras.Model(features, embedding, name="image_head")


class ContrastiveLogits(keras.layers.Layer):
    """Scaled cosine similarities ``[images, texts]`` of two L2-normalised embedding batches:
    ``min(exp(log_scale), max_scale) * image @ text.T + bias`` (the bias is SigLIP's; it stays
    0 for the softmax loss). The scale starts at ``1 / initial_temperature``."""

    def __init__(self, initial_temperature: float = 0.07, max_scale: float = 100.0,
                 initial_bias: float = 0.0, learn_bias: bool = False, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.max_scale = float(max_scale)
        self.log_scale = self.add_weight(
            shape=(), name="log_scale",
            initializer=keras.initializers.Constant(math.log(1.0 / initial_temperature)))
        self.bias = self.add_weight(shape=(), name="bias", trainable=learn_bias,
                                    initializer=keras.initializers.Constant(
                                        initial_bias if learn_bias else 0.0))

    def scale(self):
        """The logit scale in use: exp(log_scale), clipped at ``max_scale``."""
        return ops.minimum(ops.exp(self.log_scale), self.max_scale)

    def call(self, image_embeddings, text_embeddings):
        return self.scale() * ops.matmul(image_embeddings, ops.transpose(text_embeddings)) \
            + self.bias


def _positives(caption_ids):
    ids = ops.reshape(caption_ids, (-1,))
    return ops.cast(ops.equal(ids[:, None], ids[None, :]), "float32")


def softmax_loss(caption_ids, logits):
    """CLIP's symmetric cross-entropy: each image's softmax over the batch's texts and each
    text's over the images, against the pairs with the same caption (spread evenly over
    them); the mean of the two directions."""
    positives = _positives(caption_ids)
    targets = positives / ops.sum(positives, axis=1, keepdims=True)
    image_to_text = keras.losses.categorical_crossentropy(targets, logits, from_logits=True)
    text_to_image = keras.losses.categorical_crossentropy(ops.transpose(targets),
                                                          ops.transpose(logits),
                                                          from_logits=True)
    return (ops.mean(image_to_text) + ops.mean(text_to_image)) / 2.0


def sigmoid_loss(caption_ids, logits):
    """SigLIP's pairwise loss: every image-text pair is a binary decision (same caption or
    not), ``-mean over images of sum over texts of log sigmoid(±logit)``."""
    signs = 2.0 * _positives(caption_ids) - 1.0
    return -ops.mean(ops.sum(ops.log_sigmoid(signs * logits), axis=1))


def contrastive_model(image_input_model: keras.Model, image_input_shape, text: keras.Model,
                      logits: ContrastiveLogits, name: str) -> keras.Model:
    """``{image input, caption}`` → the batch's similarity logits, through
    ``image_input_model`` (the head on cached features, or trunk and head on images)."""
    images = keras.Input(image_input_shape, name="images")
    captions = keras.Input((), dtype="string", name=CAPTION_INPUT)
    return keras.Model({"images": images, CAPTION_INPUT: captions},
                       logits(image_input_model(images), text(captions)), name=name)


class InBatchRetrieval(keras.metrics.Metric):
    """The share of images whose most similar text in the batch has their caption."""

    def __init__(self, name="retrieval_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hits = self.add_weight(shape=(), name="hits", initializer="zeros")
        self.count = self.add_weight(shape=(), name="count", initializer="zeros")

    def update_state(self, caption_ids, logits, sample_weight=None):
        positives = _positives(caption_ids)
        best = ops.argmax(logits, axis=1)
        hit = ops.take_along_axis(positives, best[:, None], axis=1)
        self.hits.assign_add(ops.sum(hit))
        self.count.assign_add(ops.cast(ops.shape(logits)[0], "float32"))

    def result(self):
        return self.hits / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.hits.assign(0.0)
        self.count.assign(0.0)
