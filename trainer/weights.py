"""Backbone weights: what a config's ``weights`` value means, and a clear error when the
weights cannot be had (this machine is offline)."""

from __future__ import annotations

import os


class WeightsUnavailableError(RuntimeError):
    """Backbone weights were asked for but cannot be had (offline, missing file)."""


def resolve_weights(weights: str):
    """Maps a config ``weights`` value to what ``keras.applications`` accepts.

    ``none`` → None (random init); ``imagenet`` → 'imagenet' (keras downloads it unless cached);
    anything else must be an existing local weights file.
    """
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    path = os.path.abspath(os.path.expanduser(weights))
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"backbone weights file {path} does not exist; use weights='none' for random "
            "initialisation or give the path of a backbone .weights.h5 file")
    return path


def build_with_weights(build, weights: str):
    """Calls ``build(resolved_weights)``; turns a failed ImageNet download into a clear error."""
    resolved = resolve_weights(weights)
    try:
        return build(resolved)
    except Exception as err:  # keras raises a bare Exception on URL fetch failure
        if resolved == "imagenet" and ("URL fetch failure" in str(err) or "urlopen" in str(err)
                                       or isinstance(err, OSError)):
            raise WeightsUnavailableError(
                "ImageNet weights are not cached and cannot be downloaded (this machine is "
                "offline). Use weights='none' to train from scratch, or weights='/path/to/"
                "backbone.weights.h5' to load a local file.") from err
        raise
