"""Where a Model artifact's SavedModel is, for the components that serve or evaluate it."""

import os


def saved_model_dir(model) -> str:
    """The artifact's ``Format-Serving`` folder, as TFX's Trainer writes it, or the artifact's
    own folder when it holds the SavedModel directly (a model a user imported)."""
    from tfx.utils import path_utils
    serving = path_utils.serving_model_dir(model.uri)
    return serving if os.path.isdir(serving) else model.uri
