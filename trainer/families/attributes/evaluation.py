"""How the attribute family is evaluated: masked multi-label metrics in TFMA (micro F1
blesses), its report, and ``fashion evaluate``'s offline metrics."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from schemas import features as F
from schemas.serving_api import CLASSES_OUTPUT, TAGS_OUTPUT
from trainer.evaluation import metrics
from trainer.families.attributes.features import ATTRIBUTE_LABELS
from trainer.kinds import classifier_evaluation

TFMA_MODULE = "trainer.families.attributes.tfma_metrics"


def eval_config(config):
    """TFMA: per-attribute precision, recall, F1 and binary accuracy, micro F1 (blesses),
    micro binary accuracy and exact match, all over known entries only."""
    import tensorflow_model_analysis as tfma

    from trainer.evaluation import tfma_config
    from trainer.families.attributes.tfma_metrics import MICRO_F1, config_json
    return tfma.EvalConfig(
        model_specs=[tfma_config.model_spec(ATTRIBUTE_LABELS)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            *tfma_config.counts(),
            tfma.MetricConfig(
                class_name="MaskedMultiLabelMetrics", module=TFMA_MODULE,
                config=config_json(config.threshold, len(F.ATTRIBUTE_VOCABULARY), MICRO_F1),
                threshold=tfma_config.blessing_threshold(config.blessing_threshold,
                                                         config.min_improvement)),
        ])])


def report(evaluation_uri: str, model_uri: str):
    """Metrics and F1 per attribute."""
    return classifier_evaluation.per_class_f1_report(evaluation_uri, model_uri)


def record_truth(values: Sequence[bytes], names: Sequence[str]) -> tuple:
    """``(on, known)`` 0/1 rows over ``names`` from a record's ``fashion/attributes``: an
    attribute is known when the record annotates any attribute of its family."""
    index = {name: i for i, name in enumerate(names)}
    on = np.zeros(len(names), bool)
    annotated = set()
    for value in values:
        name = value.decode() if isinstance(value, bytes) else value
        if name in index:
            on[index[name]] = True
            annotated.add(name.split(":", 1)[0])
    known = np.array([name.split(":", 1)[0] in annotated for name in names], bool)
    return on, known


def evaluate(model_dir: str, data_pattern: str, batch_size: int = 64,
             progress: Optional[Callable] = None,
             attribute_families: Sequence[str] = ()) -> dict:
    """The tagger's decoded ``tags`` against the records' ``fashion/attributes``, over known
    entries only (attribute families a record does not annotate are masked), with the
    frequent-tags baseline. ``attribute_families`` restricts the figures to those families."""
    export_dir, outputs, labels, unlabelled = classifier_evaluation.serve_labelled_records(
        model_dir, data_pattern, F.ATTRIBUTES, batch_size, progress)
    names = [c.decode() for c in outputs[0][CLASSES_OUTPUT][0]]
    rows = [record_truth(values, names) for values in labels]
    truth, known = np.stack([on for on, _ in rows]), np.stack([k for _, k in rows])
    predicted = np.concatenate([batch[TAGS_OUTPUT] for batch in outputs])
    if attribute_families:
        keep = [i for i, name in enumerate(names)
                if name.split(":", 1)[0] in set(attribute_families)]
        if not keep:
            raise ValueError(f"no attribute of the families {list(attribute_families)}")
        truth, known, predicted = truth[:, keep], known[:, keep], predicted[:, keep]
        names = [names[i] for i in keep]
    result = metrics.multilabel_metrics(truth, predicted, names, known)
    result.update({"model": export_dir, "data": data_pattern, "unlabelled_skipped": unlabelled,
                   "attribute_families": list(attribute_families) or "all"})
    return result
