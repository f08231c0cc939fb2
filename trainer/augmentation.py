"""Train-time random augmentation (Keras preprocessing layers: identity at inference).

Deterministic image work (decode, letterbox, resize) happens once in TF Transform; only the
random part runs here, inside the model, so it is active when ``training=True`` and nowhere else.
"""

from __future__ import annotations

import keras

LAYER_NAME = "augmentation"  # the block's name: transfer and feature caching find it by it


def augmentation(flip: bool = True, rotation: float = 0.0, zoom: float = 0.0,
                 translation: float = 0.0, seed: int = 0) -> keras.Sequential:
    """Random horizontal flip, rotation (fraction of a full turn), zoom and translation (fractions
    of the side); a zero turns that layer off. Layer ``i`` is seeded ``seed + i``."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="constant", seed=seed + 1))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="constant", seed=seed + 2))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation,
                                                     fill_mode="constant", seed=seed + 3))
    return keras.Sequential(layers, name=LAYER_NAME)


def from_config(config, seed: int) -> keras.Sequential:
    """The augmentation an ``AugmentationConfig`` describes."""
    return augmentation(config.flip, config.rotation, config.zoom, config.translation, seed=seed)
