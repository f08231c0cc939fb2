"""The ServingInfraValidator TFX component: a thin wrapper around
:mod:`components.infra_validator.logic`.

It takes the Trainer's model and the eval examples and writes an ``InfraBlessing``; the Pusher
(given it as ``infra_blessing``) refuses to push a model the server could not load and answer.
TFX's own InfraValidator needs Docker or Kubernetes to run TF Serving; this one runs the
project's TF-Serving-compatible server as a subprocess. How it asks the candidate (signature,
input, answer check) comes from the family's spec (``InfraProbe``) through the parameters.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components.infra_validator import logic
from components.model_artifacts import saved_model_dir


@component
def ServingInfraValidator(
        model: InputArtifact[standard_artifacts.Model],
        examples: InputArtifact[standard_artifacts.Examples],
        blessing: OutputArtifact[standard_artifacts.InfraBlessing],
        signature_name: Parameter[str],
        input_name: Parameter[str],
        input_kind: Parameter[str],
        check: Parameter[str],
        num_examples: Parameter[int] = 4,
        timeout_seconds: Parameter[int] = 180):
    """Blesses ``model`` only if the model server loads it and answers real eval examples."""
    from trainer.export.records import read_records
    records = read_records(os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*"),
                           num_examples)
    probe = logic.Probe(signature_name, input_name, input_kind, check)
    report = logic.validate(saved_model_dir(model), records, probe, timeout_seconds)
    blessing.set_int_custom_property("blessed", int(report.blessed))
    os.makedirs(blessing.uri, exist_ok=True)
    marker = "INFRA_BLESSED" if report.blessed else "INFRA_NOT_BLESSED"
    with open(os.path.join(blessing.uri, marker), "w") as handle:
        json.dump(report.as_dict(), handle, indent=2)
    print(f"ServingInfraValidator: {marker}: {report.reason}")
