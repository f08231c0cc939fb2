"""The OfflineEvaluator TFX component: a family's own metrics where TFMA has none (COCO for the
detector, retrieval for an embedding model), and a ModelBlessing the Pusher respects.

It serves the candidate SavedModel with the family's offline evaluator (the spec's
``offline_evaluator``, the same one ``fashion evaluate`` runs) on the eval split and, when a
blessed model of the family exists, the baseline on the same records; the verdict applies the
family config's ``blessing_threshold`` and ``min_improvement`` to the spec's blessing metric
(:mod:`components.offline_evaluator.logic`). An evaluator that takes ``output_dir`` writes its
figures (e.g. a gallery) there, into the ModelEvaluation artifact the report reads. It knows no
family by name.
"""

import inspect
import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components.model_artifacts import saved_model_dir
from components.offline_evaluator import logic


@component
def OfflineEvaluator(
        examples: InputArtifact[standard_artifacts.Examples],
        model: InputArtifact[standard_artifacts.Model],
        evaluation: OutputArtifact[standard_artifacts.ModelEvaluation],
        blessing: OutputArtifact[standard_artifacts.ModelBlessing],
        family: Parameter[str],
        blessing_threshold: Parameter[float],
        min_improvement: Parameter[float] = 0.0,
        baseline_model: InputArtifact[standard_artifacts.Model] = None):
    """Evaluates ``model`` (and ``baseline_model``) on the eval split; blesses or not."""
    from trainer.evaluation.reports import OFFLINE_METRICS_FILE, record_blessing
    from trainer.families import registry
    from trainer.families.spec import resolve
    spec = registry.get(family)
    evaluate = resolve(spec.offline_evaluator)
    data = os.path.join(artifact_utils.get_split_uri([examples], "eval"), "*")
    os.makedirs(evaluation.uri, exist_ok=True)
    options = ({"output_dir": evaluation.uri}
               if "output_dir" in inspect.signature(evaluate).parameters else {})
    candidate = evaluate(saved_model_dir(model), data, **options)
    baseline = None
    if baseline_model is not None and baseline_model.uri != model.uri:
        baseline = evaluate(saved_model_dir(baseline_model), data)
    metric = spec.evaluation.blessing_metric
    blessed, failures = logic.verdict(candidate, baseline, metric, blessing_threshold,
                                      min_improvement)
    with open(os.path.join(evaluation.uri, OFFLINE_METRICS_FILE), "w") as handle:
        json.dump({"family": family, "blessing_metric": metric,
                   "blessing_threshold": blessing_threshold,
                   "min_improvement": min_improvement, "blessed": blessed,
                   "failures": failures, "candidate": candidate, "baseline": baseline},
                  handle, indent=2, default=str)
    record_blessing(blessing, blessed, model, baseline_model)
    print(f"OfflineEvaluator: {family}: {metric} {candidate[metric]:.4f} "
          f"{'BLESSED' if blessed else 'NOT BLESSED'}" + "".join(f"; {f}" for f in failures))

