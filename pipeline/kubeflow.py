"""Compiles the pipeline for Kubeflow Pipelines (KFP v2 / Vertex AI Pipelines) as a JSON spec."""

from __future__ import annotations

import os

from pipeline_config import PipelineConfig


def compile_pipeline(config: PipelineConfig, image: str, output_path: str) -> str:
    """Writes the KFP v2 pipeline spec of ``config`` to ``output_path`` and returns the path.

    ``image`` is a container image with this project installed (``pip install .`` over
    ``requirements.lock``); every component runs in it. Workspace paths should be reachable from
    the cluster (e.g. ``gs://bucket/fashion``); ML Metadata is the orchestrator's.
    """
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline
    if not image:
        raise ValueError("a container image with this project installed is required")
    if config.data.window_spans > 1:
        # KFP v2's compiler takes only TFX's Latest/LatestBlessed resolver strategies.
        raise ValueError(f"data.window_spans={config.data.window_spans}: a training window of "
                         "several spans runs only under LocalDagRunner (fashion run/drop); "
                         "Kubeflow's V2 compiler supports no span-window resolver, so compile "
                         "with data.window_spans=1 (each run trains on its newest span)")
    output_path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_path), output_filename=os.path.basename(output_path))
    runner.run(create_pipeline(config, local_metadata=False))
    problems = validate_spec(output_path, image)
    if problems:
        raise ValueError(f"the compiled spec {output_path} is unsound:\n  "
                         + "\n  ".join(problems))
    return output_path


# The entry point TFX's Kubeflow V2 runner gives every component container.
TFX_ENTRYPOINT = ["python", "-m",
                  "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


def _executor_class(args: list) -> str:
    for flag, value in zip(args, args[1:]):
        if flag == "--executor_class_path":
            return value
    return ""


def validate_spec(path: str, image: str) -> list:
    """Problems of a compiled pipeline spec, beyond its compiling: an empty list when it is
    sound.

    The spec is loaded back with the KFP SDK (``kfp.components.load_component_from_text``,
    which parses it into KFP's ``PipelineSpec`` proto); then every task is checked: its
    component and executor exist, each container runs ``image`` with TFX's Kubeflow V2
    entry point and an executor class that this code base has, every artifact input comes
    from a task that declares that output, every required input is given and every task it
    waits for exists.
    """
    import importlib
    import json

    import yaml
    from kfp import components as kfp_components
    with open(path) as handle:
        job = json.load(handle)
    if "pipelineSpec" not in job:
        return [f"{path} holds no pipelineSpec (not a KFP v2 pipeline job)"]
    try:
        loaded = kfp_components.load_component_from_text(yaml.safe_dump(job["pipelineSpec"]))
    except Exception as err:  # noqa: BLE001 (any refusal of the SDK is the finding)
        return [f"the KFP SDK cannot load the spec: {type(err).__name__}: {err}"]
    from google.protobuf import json_format
    spec = loaded.pipeline_spec
    executors = json_format.MessageToDict(spec.deployment_spec).get("executors", {})
    tasks = spec.root.dag.tasks
    problems = []
    for name, task in tasks.items():
        component = spec.components.get(task.component_ref.name)
        if component is None:
            problems.append(f"{name}: no component {task.component_ref.name!r}")
            continue
        executor = executors.get(component.executor_label)
        if executor is None:
            problems.append(f"{name}: no executor {component.executor_label!r}")
            continue
        if "container" in executor:
            container = executor["container"]
            if container.get("image") != image:
                problems.append(f"{name}: image {container.get('image')!r}, not {image!r}")
            if list(container.get("command", [])) != TFX_ENTRYPOINT:
                problems.append(f"{name}: command {list(container.get('command', []))}")
            class_path = _executor_class(list(container.get("args", [])))
            module, _, attribute = class_path.rpartition(".")
            try:
                getattr(importlib.import_module(module), attribute)
            except (ImportError, AttributeError, ValueError):
                problems.append(f"{name}: executor class {class_path!r} cannot be imported")
        elif "resolver" not in executor and "importer" not in executor:
            problems.append(f"{name}: executor is neither a container, a resolver nor an "
                            "importer")
        for dependency in task.dependent_tasks:
            if dependency not in tasks:
                problems.append(f"{name}: waits for a task that does not exist: {dependency}")
        given = task.inputs.artifacts
        for key, artifact in given.items():
            source = artifact.task_output_artifact
            producer = tasks.get(source.producer_task)
            if producer is None:
                problems.append(f"{name}.{key}: from a task that does not exist: "
                                f"{source.producer_task}")
                continue
            outputs = spec.components[producer.component_ref.name].output_definitions.artifacts
            if source.output_artifact_key not in outputs:
                problems.append(f"{name}.{key}: {source.producer_task} has no output "
                                f"{source.output_artifact_key!r}")
        for key, definition in component.input_definitions.artifacts.items():
            if key not in given and not definition.is_optional:
                problems.append(f"{name}: required input {key!r} is not given")
    return problems
