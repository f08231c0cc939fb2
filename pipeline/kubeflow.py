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
    output_path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_path), output_filename=os.path.basename(output_path))
    runner.run(create_pipeline(config, local_metadata=False))
    return output_path
