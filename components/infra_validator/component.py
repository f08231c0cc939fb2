"""The ServingInfraValidator TFX component: a thin wrapper around
:mod:`components.infra_validator.logic`.

It takes the Trainer's model and the eval examples and writes an ``InfraBlessing``; the Pusher
(given it as ``infra_blessing``) refuses to push a model the server could not load and answer.
TFX's own InfraValidator needs Docker or Kubernetes to run TF Serving; this one runs the
project's TF-Serving-compatible server as a subprocess.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components.infra_validator import logic


def _eval_examples(examples_artifact, count: int) -> list:
    from serving.evaluate import record_dataset
    split_uri = artifact_utils.get_split_uri([examples_artifact], "eval")
    pattern = os.path.join(split_uri, "*")
    return [record.numpy() for record in record_dataset(pattern).take(count)]


@component
def ServingInfraValidator(
        model: InputArtifact[standard_artifacts.Model],
        examples: InputArtifact[standard_artifacts.Examples],
        blessing: OutputArtifact[standard_artifacts.InfraBlessing],
        num_examples: Parameter[int] = 4,
        timeout_seconds: Parameter[int] = 180):
    """Blesses ``model`` only if ``fashion serve`` loads it and answers real eval examples."""
    serving_dir = os.path.join(model.uri, "Format-Serving")
    report = logic.validate(serving_dir if os.path.isdir(serving_dir) else model.uri,
                            _eval_examples(examples, num_examples), timeout_seconds)
    blessing.set_int_custom_property("blessed", int(report.blessed))
    os.makedirs(blessing.uri, exist_ok=True)
    marker = "INFRA_BLESSED" if report.blessed else "INFRA_NOT_BLESSED"
    with open(os.path.join(blessing.uri, marker), "w") as handle:
        json.dump(report.as_dict(), handle, indent=2)
    print(f"ServingInfraValidator: {marker}: {report.reason}")
