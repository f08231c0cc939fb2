"""Transfer-learning modes of the pipeline study (pure Keras 3).

``feature_extraction``: the backbone is frozen, only the head trains. ``fine_tune``: the last
``fine_tune_layers`` layers of the backbone train with the head (0 or more than the backbone
has: all of it). ``hybrid``: ``frozen_epochs`` of feature extraction, then fine-tuning.
BatchNormalization layers stay frozen whenever any part of the backbone is (Keras' fine-tuning
advice: their moving statistics would otherwise be dragged by the small new-data batches).
"""

from __future__ import annotations

import dataclasses

import keras

from pipeline_config import TRANSFER_MODES
from trainer import augmentation

# The layer (an Identity) where a model's frozen trunk ends and its head begins: a
# feature-extraction phase may compute everything before it once (trainer.feature_cache).
FEATURES_LAYER = "trunk_features"


@dataclasses.dataclass(frozen=True)
class Phase:
    """``epochs`` of training with ``trainable_layers`` backbone layers unfrozen (None: all),
    at ``learning_rate`` (None: the optimizer's configured rate)."""

    epochs: int
    trainable_layers: int | None
    learning_rate: float | None = None


def phases(mode: str, epochs: int, fine_tune_layers: int = 0,
           frozen_epochs: int = 0, fine_tune_learning_rate: float = 0.0) -> list[Phase]:
    """The training phases of ``mode`` over ``epochs`` epochs; ``hybrid``'s fine-tuning phase
    runs at ``fine_tune_learning_rate`` when it is set (pretrained weights want a smaller rate
    than a new head)."""
    if mode not in TRANSFER_MODES:
        raise ValueError(f"unknown transfer mode {mode!r}; choose from {TRANSFER_MODES}")
    if epochs < 1:
        raise ValueError("epochs must be >= 1")
    tune = fine_tune_layers if fine_tune_layers > 0 else None
    if mode == "feature_extraction":
        return [Phase(epochs, 0)]
    if mode == "fine_tune":
        return [Phase(epochs, tune)]
    if not 0 < frozen_epochs < epochs:
        raise ValueError(f"hybrid needs 0 < frozen_epochs < epochs, got {frozen_epochs} of "
                         f"{epochs}")
    return [Phase(frozen_epochs, 0),
            Phase(epochs - frozen_epochs, tune, fine_tune_learning_rate or None)]


def find_backbones(model: keras.Model) -> list:
    """The backbone sub-models of a family's model, input side first: every nested
    ``keras.Model`` but the augmentation block (one for an EfficientNet classifier; the two VGG16
    parts around the attention branch for the brand model)."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)
            and layer.name != augmentation.LAYER_NAME]


def find_backbone(model: keras.Model) -> keras.Model:
    """The largest backbone sub-model (raises ValueError when there is none)."""
    candidates = find_backbones(model)
    if not candidates:
        raise ValueError(f"model {model.name} has no backbone sub-model")
    return max(candidates, key=lambda layer: layer.count_params())


def set_trainable_layers(backbones, trainable_layers: int | None) -> int:
    """Freezes the backbone(s) except the last ``trainable_layers`` layers, counted over the
    backbones in order (None: all trainable, 0: all frozen). Returns how many layers train."""
    backbones = [backbones] if isinstance(backbones, keras.Model) else list(backbones)
    layers = [layer for backbone in backbones for layer in backbone.layers]
    for backbone in backbones:
        # Does not thaw layers frozen one by one: each layer is set below.
        backbone.trainable = True
    if trainable_layers is None or trainable_layers >= len(layers):
        for layer in layers:
            layer.trainable = True
        return len(layers)
    first_trainable = len(layers) - trainable_layers
    count = 0
    for index, layer in enumerate(layers):
        thaw = index >= first_trainable and not isinstance(
            layer, keras.layers.BatchNormalization)
        layer.trainable = thaw
        count += thaw
    return count
