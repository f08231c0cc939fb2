"""The ComposeModel TFX component: a composite model (``CompositeSpec.builder``) built from the
latest pushed versions of the families it takes.

It runs after those families' Pushers, so it composes from what is served: this run's models
where they were blessed and pushed, else the versions pushed before. When a family has no pushed
version yet it writes no SavedModel (``composed.json`` says why) and the infra validator after
it refuses the empty model, so nothing is pushed. It knows no composite by name.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

RECORD_FILE = "composed.json"
WARMUP_IMAGES = 2


@component
def ComposeModel(examples: InputArtifact[standard_artifacts.Examples],
                 model: OutputArtifact[standard_artifacts.Model],
                 composite: Parameter[str], builder: Parameter[str],
                 model_dirs: Parameter[str]):
    """Builds ``composite`` with ``builder`` from the newest version under each of
    ``model_dirs`` (JSON ``{family: serving folder}``); warm-up images from ``examples``."""
    from tfx.utils import path_utils

    from schemas.serving_api import latest_version, list_versions
    from trainer.export.records import read_record_images
    from trainer.families.spec import resolve
    folders = json.loads(model_dirs)
    os.makedirs(model.uri, exist_ok=True)
    missing = sorted(family for family, folder in folders.items() if not list_versions(folder))
    record = {"composite": composite, "families": folders, "missing": missing}
    if missing:
        print(f"ComposeModel: {composite}: not composed, no pushed model of {missing}")
    else:
        sources = {family: latest_version(folder) for family, folder in folders.items()}
        images = [image for _, image in read_record_images(
            os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*"), WARMUP_IMAGES)]
        export_dir = path_utils.serving_model_dir(model.uri)
        resolve(builder)(sources, export_dir, images)
        record.update({"sources": sources, "export_dir": export_dir})
        print(f"ComposeModel: {composite} composed from {sources}")
    with open(os.path.join(model.uri, RECORD_FILE), "w") as handle:
        json.dump(record, handle, indent=2)
