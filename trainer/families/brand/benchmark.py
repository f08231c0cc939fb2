"""The brand builder beside the study's graph written directly with
``keras.applications.VGG16``'s layers and core ``keras.layers`` (one flat functional model,
``Softmax`` over the flattened map, ``Multiply``), which isolates what our builder's structure
(two nested VGG parts, custom attention layers) costs; and a frozen plain VGG16 with the same
head and no attention branch, for the attention branch's own cost
(``scripts/benchmark_builders.py``)."""

from __future__ import annotations

import keras

from trainer import augmentation, checks
from trainer.families.brand.config import BrandConfig
from trainer.families.brand.model import build_brand_classifier

BRANDS = 6


def _frozen_vgg(size: int):
    """A frozen random VGG16, a 0..255 image input and its [0, 1] scaling."""
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))
    vgg.trainable = False
    inputs = keras.Input((size, size, 3))
    return vgg, inputs, keras.layers.Rescaling(1.0 / 255.0)(inputs)


def _brand_head(inputs, features, num_brands: int) -> keras.Model:
    x = keras.layers.GlobalMaxPooling2D()(features)
    x = keras.layers.Dropout(0.2)(keras.layers.Dense(512, activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(num_brands, activation="softmax")(x))


def plain_attention_vgg(num_brands: int, size: int) -> keras.Model:
    """The brand study's graph built directly from ``keras.applications.VGG16`` layers."""
    vgg, inputs, x = _frozen_vgg(size)
    for layer in vgg.layers[1:]:
        x = layer(x)
        if layer.name == "block4_conv3":
            side = size // 8
            a = keras.layers.Conv2D(64, 3, padding="same")(x)
            a = keras.layers.Reshape((side * side,))(keras.layers.Dense(1)(a))
            a = keras.layers.Reshape((side, side, 1))(keras.layers.Softmax()(a))
            x = keras.layers.Multiply()([x, a])
    return _brand_head(inputs, x, num_brands)


def plain_vgg_head(num_brands: int, size: int) -> keras.Model:
    """Frozen plain VGG16 with the brand head and no attention branch."""
    vgg, inputs, x = _frozen_vgg(size)
    return _brand_head(inputs, vgg(x), num_brands)


def cases(source_size: int) -> list:
    """``ours``, ``plain``, ``plain_no_attention`` and ``ours_augmented`` (the study's
    augmentation)."""
    loss = "sparse_categorical_crossentropy"
    batch = checks.single_label_batches(BRANDS, source_size)
    study_augmentation = BrandConfig().augmentation
    return [
        checks.BenchmarkCase("ours", lambda: build_brand_classifier(
            BRANDS, backbone_size=source_size), loss, batch),
        checks.BenchmarkCase("plain", lambda: plain_attention_vgg(BRANDS, source_size),
                             loss, batch),
        checks.BenchmarkCase("plain_no_attention", lambda: plain_vgg_head(BRANDS, source_size),
                             loss, batch),
        checks.BenchmarkCase("ours_augmented", lambda: build_brand_classifier(
            BRANDS, backbone_size=source_size,
            augment=augmentation.from_config(study_augmentation, 0)), loss, batch),
    ]
