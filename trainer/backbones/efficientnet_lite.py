"""EfficientNet-Lite0..4 in Keras 3, and the port of ``efficientnet_pytorch``-style checkpoints.

The Lite variants are EfficientNet for mobile accelerators: no squeeze-and-excitation, ReLU6
instead of swish, a stem (32 filters) and head (1280) that do not scale with the width, and first
and last stages whose repeats do not scale with the depth. Inputs are 0..255 RGB pixels; the
model scales them to ``(x - 127) / 128`` itself, as the reference implementation's preprocessing
does. Convolutions use TensorFlow's "same" padding (the checkpoint was trained with it), batch
normalisation epsilon 1e-3.

Layers are named so that a checkpoint maps onto them by name (:func:`keras_weights_from_torch`):
``stem_conv``/``stem_bn``, ``block{i}_expand_conv``/``_expand_bn`` (absent when the expansion
is 1), ``block{i}_dwconv``/``_dwconv_bn``, ``block{i}_project_conv``/``_project_bn`` for the
i-th block counted over all stages, ``top_conv``/``top_bn`` and ``predictions``.
"""

from __future__ import annotations

import math

import keras
import numpy as np

# variant -> (width multiplier, depth multiplier, input size, top dropout)
LITE_VARIANTS = {
    "lite0": (1.0, 1.0, 224, 0.2), "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3), "lite3": (1.2, 1.4, 280, 0.3),
    "lite4": (1.4, 1.8, 300, 0.3),
}
# (repeats, kernel, stride, expansion, input filters, output filters): EfficientNet-B0's stages.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320))
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # PyTorch's 0.01
DROP_CONNECT_RATE = 0.2
INPUT_MEAN, INPUT_STD = 127.0, 128.0


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    rounded = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * filters:
        rounded += divisor
    return int(rounded)


def block_plan(variant: str) -> list:
    """Per block, in order: ``(kernel, stride, expansion, input filters, output filters)``."""
    width, depth, _, _ = LITE_VARIANTS[variant]
    plan = []
    for index, (repeats, kernel, stride, expansion, filters_in, filters_out) in enumerate(STAGES):
        filters_in = _round_filters(filters_in, width) if index else STEM_FILTERS
        filters_out = _round_filters(filters_out, width)
        if 0 < index < len(STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        for repeat in range(repeats):
            plan.append((kernel, stride if repeat == 0 else 1, expansion,
                         filters_in if repeat == 0 else filters_out, filters_out))
    return plan


def _bn(name: str, api=keras):
    return api.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _block(x, index: int, kernel: int, stride: int, expansion: int, filters_in: int,
           filters_out: int, drop_rate: float, api=keras):
    prefix = f"block{index}_"
    inputs = x
    if expansion != 1:
        x = api.layers.Conv2D(filters_in * expansion, 1, padding="same", use_bias=False,
                              name=prefix + "expand_conv")(x)
        x = _bn(prefix + "expand_bn", api)(x)
        x = api.layers.ReLU(6.0, name=prefix + "expand_activation")(x)
    x = api.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                   name=prefix + "dwconv")(x)
    x = _bn(prefix + "dwconv_bn", api)(x)
    x = api.layers.ReLU(6.0, name=prefix + "activation")(x)
    x = api.layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                          name=prefix + "project_conv")(x)
    x = _bn(prefix + "project_bn", api)(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            # Stochastic depth: drops the whole residual branch per example while training.
            x = api.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1),
                                   name=prefix + "drop")(x)
        x = api.layers.Add(name=prefix + "add")([x, inputs])
    return x


def efficientnet_lite(variant: str = "lite0", *, input_size: int | None = None,
                      include_top: bool = True, classes: int = 1000, pooling: str | None = "avg",
                      weights=None, name: str | None = None) -> keras.Model:
    """An EfficientNet-Lite model on 0..255 RGB images of ``input_size``² pixels (default: the
    variant's own size).

    ``include_top``: global average pooling → dropout → ``classes`` softmax (``predictions``);
    otherwise the head's feature map, average pooled when ``pooling='avg'``. ``weights``: None
    (random), a Keras ``.weights.h5`` of the full model (with top, as
    ``fashion weights convert`` writes it; loaded by layer name, so a model without top takes
    its trunk) or a ``{layer name: [arrays]}`` mapping (see :func:`keras_weights_from_torch`).
    """
    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from "
                         f"{list(LITE_VARIANTS)}")
    _, _, default_size, top_dropout = LITE_VARIANTS[variant]
    size = input_size or default_size
    inputs = keras.Input((size, size, 3), name="image", dtype="float32")
    x = trunk(keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD,
                                     name="scale_pixels")(inputs), variant)[-1]
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(top_dropout, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, x, name=name or f"efficientnet_{variant}")
    if weights is not None:
        load_by_layer_name(model, weights if isinstance(weights, dict)
                           else weights_by_layer_name(variant, weights))
    return model


def trunk(scaled, variant: str, api=keras) -> list:
    """The feature maps of the ``variant``'s trunk on ``scaled`` pixels (``(x - 127) / 128``):
    one per stride 2, 4, 8, 16 and 32 — the last block of each stride, and at stride 32 the
    head (``top_activation``) — built with the Keras API module ``api`` (Keras 3, or
    ``tf_keras`` for TF Model Garden; the layer names are the same, so the same weights load).
    """
    x = api.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False,
                          name="stem_conv")(scaled)
    x = _bn("stem_bn", api)(x)
    x = api.layers.ReLU(6.0, name="stem_activation")(x)
    plan = block_plan(variant)
    by_stride, stride = {}, 2
    for index, block in enumerate(plan):
        x = _block(x, index, *block, drop_rate=DROP_CONNECT_RATE * index / len(plan), api=api)
        stride *= block[1]
        by_stride[stride] = x
    x = api.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _bn("top_bn", api)(x)
    by_stride[stride] = api.layers.ReLU(6.0, name="top_activation")(x)
    return [by_stride[s] for s in sorted(by_stride)]


def weights_by_layer_name(variant: str, path: str) -> dict:
    """``{layer name: [arrays]}`` of a Keras ``.weights.h5`` saved from the full ``variant``."""
    full = efficientnet_lite(variant, include_top=True,
                             classes=_classes_in_weights_file(path))
    full.load_weights(path)
    return {layer.name: [np.asarray(w) for w in layer.get_weights()]
            for layer in full.layers if layer.weights}


def _classes_in_weights_file(path: str) -> int:
    import h5py
    with h5py.File(path, "r") as file:
        found = []
        # Keras 3 names a weights file's groups by layer class: the classifier is the one Dense
        # layer, its bias the 1-d variable.
        file.visititems(lambda name, obj: found.append(obj.shape[-1]) if (
            "/dense/" in f"/{name}" and getattr(obj, "ndim", 0) == 1) else None)
    if not found:
        raise ValueError(f"{path} is not the weights file of a full EfficientNet-Lite (no "
                         "classifier layer)")
    return int(found[0])


def load_by_layer_name(model: keras.Model, weights: dict, skip: tuple = ("predictions",)) -> None:
    """Assigns ``weights`` (layer name → arrays) to ``model``'s layers of those names.

    Every layer of ``model`` that has weights must be given (a silently random layer would go
    unnoticed); a source layer that ``model`` lacks is an error unless it is in ``skip`` (the
    classifier top, absent from a trunk).
    """
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(layers) - set(weights))
    unused = sorted(set(weights) - set(layers) - set(skip))
    if missing or unused:
        raise ValueError(f"weights do not fit {model.name}: layers without weights {missing[:5]}"
                         f"{'…' if len(missing) > 5 else ''}, unknown source layers "
                         f"{unused[:5]}{'…' if len(unused) > 5 else ''}")
    for name, layer in layers.items():
        expected = [tuple(w.shape) for w in layer.weights]
        given = [tuple(np.shape(w)) for w in weights[name]]
        if expected != given:
            raise ValueError(f"layer {name}: weights of shapes {given}, expected {expected}")
        layer.set_weights(weights[name])


def _torch_layer_name(name: str) -> tuple:
    """``(keras layer, torch parameter)`` of an efficientnet_pytorch state-dict key."""
    parts = name.split(".")
    if parts[0] == "_blocks":
        index, module, parameter = int(parts[1]), parts[2], parts[3]
        suffix = {"_expand_conv": "expand_conv", "_bn0": "expand_bn",
                  "_depthwise_conv": "dwconv", "_bn1": "dwconv_bn",
                  "_project_conv": "project_conv", "_bn2": "project_bn"}.get(module)
        if suffix is None:
            raise ValueError(f"unexpected checkpoint tensor {name} (EfficientNet-Lite has no "
                             "squeeze-excitation)")
        return f"block{index}_{suffix}", parameter
    module, parameter = parts[0], parts[1]
    layer = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv",
             "_bn1": "top_bn", "_fc": "predictions"}.get(module)
    if layer is None:
        raise ValueError(f"unexpected checkpoint tensor {name}")
    return layer, parameter


def keras_weights_from_torch(state: dict) -> dict:
    """``{keras layer name: [arrays in Keras order]}`` from an ``efficientnet_pytorch``-style
    state dict of an EfficientNet-Lite (names → numpy arrays).

    Convolutions go from PyTorch's (out, in, h, w) to Keras' (h, w, in, out), depthwise ones from
    (channels, 1, h, w) to (h, w, channels, 1), the classifier from (classes, features) to
    (features, classes); batch normalisation gives gamma, beta, moving mean and variance.
    """
    by_layer: dict = {}
    for name, array in state.items():
        layer, parameter = _torch_layer_name(name)
        if parameter == "num_batches_tracked":
            continue
        by_layer.setdefault(layer, {})[parameter] = np.asarray(array, dtype=np.float32)
    converted = {}
    for layer, tensors in by_layer.items():
        if layer.endswith("bn"):
            converted[layer] = [tensors["weight"], tensors["bias"], tensors["running_mean"],
                                tensors["running_var"]]
        elif layer == "predictions":
            converted[layer] = [tensors["weight"].T, tensors["bias"]]
        elif layer.endswith("dwconv"):
            converted[layer] = [tensors["weight"].transpose(2, 3, 0, 1)]
        else:
            converted[layer] = [tensors["weight"].transpose(2, 3, 1, 0)]
    return converted


def load_preset(model: keras.Model, checkpoint: str) -> None:
    """Loads an ``efficientnet_pytorch``-style legacy checkpoint (the
    ``efficientnet-lite0-imagenet`` preset's file) into ``model``, a Lite model with or without
    its classifier top."""
    from trainer.backbones.torch_checkpoint import read_legacy_checkpoint
    load_by_layer_name(model, keras_weights_from_torch(read_legacy_checkpoint(checkpoint)))


def convert_torch_checkpoint(checkpoint: str, output: str, variant: str = "lite0") -> str:
    """Writes the Keras ``.weights.h5`` of the full ``variant`` from a legacy PyTorch
    checkpoint (read with pickle and numpy, see ``torch_checkpoint``); returns ``output``."""
    if not output.endswith(".weights.h5"):
        raise ValueError(f"Keras weights files end in .weights.h5, got {output}")
    from trainer.backbones.torch_checkpoint import read_legacy_checkpoint
    weights = keras_weights_from_torch(read_legacy_checkpoint(checkpoint))
    classes = weights["predictions"][1].shape[0]
    model = efficientnet_lite(variant, include_top=True, classes=classes)
    load_by_layer_name(model, weights, skip=())
    model.save_weights(output)
    return output
