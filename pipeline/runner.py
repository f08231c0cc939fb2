"""Local execution: make sure the catalog has data, then run the pipeline with LocalDagRunner,
and summarise what each family's branch produced (read through the family registry)."""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Callable, Optional

from components.catalog_import.spans import SpanWriter, existing_spans
from pipeline_config import PipelineConfig
from trainer.families import registry
from trainer.families.spec import resolve


def ensure_catalog(config: PipelineConfig, log: Callable[[str], None] = print) -> Optional[dict]:
    """Writes span 1 when the catalog root has no span yet: the embedded synthetic catalog, or
    the CCP photos converted from ``data.ccp_dir`` (``data.source``).

    Returns the conversion summary (``to_json``) when data was written, else None.
    """
    if existing_spans(config.catalog_root):
        return None
    data = config.data
    if data.source == "ccp":
        return _convert_ccp(config, log)
    from components.synthetic_catalog import generator
    log(f"generating {data.synthetic_images} synthetic catalog images (seed {data.synthetic_seed})"
        f" into {config.catalog_root}")
    os.makedirs(config.catalog_root, exist_ok=True)
    with SpanWriter(config.catalog_root, num_shards=data.num_shards,
                    eval_fraction=data.eval_fraction) as writer:
        for n, record in enumerate(generator.generate(data.synthetic_seed, data.synthetic_images,
                                                      data.synthetic_image_size,
                                                      workers=os.cpu_count() or 1)):
            writer.add(record)
            if (n + 1) % 250 == 0:
                log(f"  {n + 1}/{data.synthetic_images} images")
    return writer.summary.to_json()


def _convert_ccp(config: PipelineConfig, log: Callable[[str], None]) -> dict:
    from components.catalog_import import ccp
    source = config.data.resolved_ccp_dir
    if not os.path.isdir(os.path.join(source, "photos")):
        raise FileNotFoundError(f"the ccp profile reads the CCP data set from {source}, which "
                                "has no photos/ folder; set --set data.ccp_dir=/path/to/ccp")
    log(f"converting the CCP photos of {source} into {config.catalog_root}")
    os.makedirs(config.catalog_root, exist_ok=True)
    with SpanWriter(config.catalog_root, num_shards=config.data.num_shards,
                    eval_fraction=config.data.eval_fraction) as writer:
        details = ccp.convert(source, writer)
    return {**writer.summary.to_json(), "ccp": details}


def run(config: PipelineConfig, log: Callable[[str], None] = print) -> dict:
    """Runs the whole pipeline locally; returns a summary of what it produced."""
    from tfx import v1 as tfx

    from pipeline.beam_staging import skip_staging_for_local_runners
    from pipeline.pipeline import create_pipeline
    from trainer.weights import resolve_weights
    start = time.monotonic()
    skip_staging_for_local_runners()
    for family in config.families:  # a missing weights package fails now, not in a Trainer
        resolve_weights(config.family(family).weights)
    generated = ensure_catalog(config, log)
    os.makedirs(config.workspace_dir, exist_ok=True)
    log(f"running pipeline {config.name!r} (profile {config.profile}) in {config.workspace_dir}")
    served = list(config.families) + [c.name for c in registry.composite_specs()
                                      if set(c.families) <= set(config.families)]
    before = {name: set(glob.glob(os.path.join(config.serving_model_dir(name), "*")))
              for name in served}
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    # Only a version this run wrote counts: an unblessed model leaves the serving dir as it was.
    pushed = {}
    for name in served:
        new = set(glob.glob(os.path.join(config.serving_model_dir(name), "*"))) - before[name]
        pushed[name] = max(new, key=lambda p: int(os.path.basename(p))) if new else None
    specs = [registry.get(family) for family in config.families]
    reports = {}
    for spec in specs:
        reports[f"{spec.name}_evaluation"] = _report_index(config.pipeline_root,
                                                           spec.node_id("EvaluationReport"))
        for extra in spec.extra_components:
            reports[f"{spec.name}_{_snake(extra.id_suffix)}"] = _report_index(
                config.pipeline_root, spec.node_id(extra.id_suffix))
    return {
        "evaluation": {spec.name: latest_evaluation(config.pipeline_root, spec)
                       for spec in specs},
        "infra_validation": {spec.name: latest_infra_validation(
            config.pipeline_root, spec.node_id("InfraValidator")) for spec in specs},
        "profile": config.profile,
        "workspace": config.workspace_dir,
        "catalog_root": config.catalog_root,
        "generated": generated,
        "metadata": config.metadata_path,
        "pushed_models": pushed,
        "models_config": write_models_config(config),
        "reports": reports,
        "seconds": round(time.monotonic() - start, 1),
    }


def _snake(name: str) -> str:
    """``AttentionReport`` → ``attention_report``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def write_models_config(config: PipelineConfig) -> Optional[str]:
    """Writes ``<serving root>/models.config`` (TF Serving's ModelServerConfig text proto) for
    every registered family and composite with a pushed version, so ``fashion serve
    --model_config_file`` serves them all.
    """
    names = list(registry.family_names()) + [c.name for c in registry.composite_specs()]
    families = [f for f in names
                if glob.glob(os.path.join(config.serving_model_dir(f), "[0-9]*"))]
    if not families:
        return None
    path = os.path.join(config.serving_root, "models.config")
    with open(path, "w") as handle:
        handle.write("model_config_list {\n")
        for family in families:
            handle.write(f'  config {{ name: "{family}" base_path: '
                         f'"{config.serving_model_dir(family)}" model_platform: "tensorflow" }}\n')
        handle.write("}\n")
    return path


def newest_output(pipeline_root: str, node_id: str, output: str) -> Optional[str]:
    """The newest execution's folder of a node's output (``<root>/<node>/<output>/<id>``)."""
    runs = glob.glob(os.path.join(pipeline_root, node_id, output, "*"))
    runs = [r for r in runs if os.path.basename(r).isdigit()]
    return max(runs, key=lambda r: int(os.path.basename(r))) if runs else None


def _report_index(pipeline_root: str, node_id: str) -> Optional[str]:
    newest = newest_output(pipeline_root, node_id, "report")
    index = os.path.join(newest, "index.html") if newest else None
    return index if index and os.path.exists(index) else None


def latest_infra_validation(pipeline_root: str, validator_id: str) -> Optional[dict]:
    """The report of an infra validator's newest execution (``blessed``, ``reason``, ...)."""
    newest = newest_output(pipeline_root, validator_id, "blessing")
    if newest is None:
        return None
    for marker in ("INFRA_BLESSED", "INFRA_NOT_BLESSED"):
        path = os.path.join(newest, marker)
        if os.path.exists(path):
            with open(path) as handle:
                return json.load(handle)
    return None


def latest_evaluation(pipeline_root: str, spec) -> Optional[dict]:
    """A family's newest evaluation as its spec reads it: metrics per slice (per-class results
    named ``metric[class name]``), failed thresholds and the blessing verdict."""
    from trainer.evaluation.reports import is_blessed
    evaluation = newest_output(pipeline_root, spec.node_id("Evaluator"), "evaluation")
    model = newest_output(pipeline_root, spec.node_id("Trainer"), "model")
    if evaluation is None or model is None:
        return None
    summary = resolve(spec.report)(evaluation, model)
    blessing = os.path.join(pipeline_root, spec.node_id("Evaluator"), "blessing",
                            os.path.basename(evaluation))
    return {"path": evaluation, "blessed": is_blessed(blessing),
            "blessing_metric": spec.evaluation.blessing_metric, "slices": summary.slices,
            "failures": summary.failures}
