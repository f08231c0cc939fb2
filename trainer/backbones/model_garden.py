"""TF Model Garden backbones around the project's pretrained trunks.

Model Garden builds its detectors (RetinaNet, Faster R-CNN, ...) from a backbone config and a
builder registered with ``official.vision.modeling.backbones.factory``. Its own backbones start
from checkpoints that this offline machine cannot download; this module registers the
EfficientNet-Lite trunk of ``trainer.backbones.efficientnet_lite`` (the same layers, built with
``tf_keras``, which Model Garden uses) so a detector starts from the shipped ImageNet weights.

Importing it registers the builder ``efficientnet_lite``; :class:`Backbone` is Model Garden's
backbone one-of config with that choice added (``type="efficientnet_lite"``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tf_keras
from official.modeling import hyperparams
from official.vision.configs import backbones
from official.vision.modeling.backbones import factory
from official.vision.ops import preprocess_ops

from trainer.backbones import efficientnet_lite as lite

BUILDER = "efficientnet_lite"


@dataclasses.dataclass
class EfficientNetLite(hyperparams.Config):
    """``model_id``: lite0..lite4; ``weights``: as a family config's ``weights`` (``none``, a
    preset such as ``efficientnet-lite0-imagenet``, or a full-model ``.weights.h5``)."""

    model_id: str = "lite0"
    weights: str = "none"


@dataclasses.dataclass
class Backbone(backbones.Backbone):
    """Model Garden's backbone choice plus ``efficientnet_lite``."""

    efficientnet_lite: EfficientNetLite = dataclasses.field(default_factory=EfficientNetLite)


class EfficientNetLiteBackbone(tf_keras.Model):
    """The Lite trunk as a Model Garden backbone: Model Garden's normalised images in, the
    feature maps of levels 2..5 (strides 4..32) out, keyed ``"2"``..``"5"`` as its decoders
    expect."""

    def __init__(self, model_id: str = "lite0", input_specs=None, weights: str = "none",
                 **kwargs):
        input_specs = input_specs or tf_keras.layers.InputSpec(shape=[None, None, None, 3])
        inputs = tf_keras.Input(shape=input_specs.shape[1:])
        # Model Garden's parser normalises with ImageNet's mean and deviation; the trunk was
        # trained on (pixel - 127) / 128.
        std, mean = np.array(preprocess_ops.STDDEV_RGB), np.array(preprocess_ops.MEAN_RGB)
        scaled = tf_keras.layers.Rescaling(
            (std / lite.INPUT_STD).astype(np.float32),
            offset=((mean - lite.INPUT_MEAN) / lite.INPUT_STD).astype(np.float32),
            name="scale_pixels")(inputs)
        maps = lite.trunk(scaled, model_id, api=tf_keras)
        endpoints = {str(level): feature for level, feature in enumerate(maps, start=1)
                     if level >= 2}
        super().__init__(inputs=inputs, outputs=endpoints, **kwargs)
        self._config = {"model_id": model_id, "input_specs": input_specs, "weights": weights}
        self._output_specs = {level: feature.get_shape() for level, feature in endpoints.items()}
        if weights.lower() != "none":
            load_weights(self, model_id, weights)

    @property
    def output_specs(self):
        """The feature maps' shapes by level, as Model Garden's decoders read them."""
        return self._output_specs

    def get_config(self):
        return dict(self._config)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def load_weights(model: tf_keras.Model, variant: str, weights: str) -> None:
    """Puts ``weights`` (a preset name or a full-model ``.weights.h5``) into ``model``'s trunk
    layers, by layer name; the preset must fit the variant."""
    from trainer.backbones.torch_checkpoint import read_legacy_checkpoint
    from trainer.weights import WeightPreset, resolve_weights
    resolved = resolve_weights(weights, builder=f"efficientnet-{variant}")
    if isinstance(resolved, WeightPreset):
        by_layer = lite.keras_weights_from_torch(read_legacy_checkpoint(resolved.path()))
    elif resolved == "imagenet":
        raise ValueError("EfficientNet-Lite has no Keras ImageNet download; use the "
                         "efficientnet-lite0-imagenet preset")
    else:
        by_layer = lite.weights_by_layer_name(variant, resolved)
    lite.load_by_layer_name(model, by_layer)


@factory.register_backbone_builder(BUILDER)
def build_efficientnet_lite(input_specs, backbone_config, norm_activation_config,
                            l2_regularizer=None) -> tf_keras.Model:
    """Model Garden's builder of the ``efficientnet_lite`` backbone (batch normalisation keeps
    the trunk's own epsilon and momentum: its weights were trained with them)."""
    del norm_activation_config, l2_regularizer
    options = backbone_config.get()
    return EfficientNetLiteBackbone(model_id=options.model_id, input_specs=input_specs,
                                    weights=options.weights)
