#!/usr/bin/env python
"""Beam worker speed-up (not a test): StatisticsGen and Transform on one synthetic span, run by
LocalDagRunner on the DirectRunner in one process, then with N worker processes
(``--direct_running_mode=multi_processing``), then on a local Beam cluster with N SDK workers
(``pipeline.beam_cluster``: a job service and a worker pool in processes of their own).

Usage:
    .venv/bin/python scripts/benchmark_beam_workers.py [--images 20000] [--workers 2]

Prints each component's seconds (ML Metadata's execution times) for each setting, the
speed-ups, then one JSON line. The span is generated once (default profile's 256 px images).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tfx import v1 as tfx

    import pipeline_config as pc
    from components.catalog_import.spans import SpanWriter
    from components.synthetic_catalog import generator
    from pipeline.beam_cluster import LocalBeamCluster
    from pipeline.beam_staging import skip_staging_for_local_runners
    from pipeline.pipeline import create_preprocessing_pipeline
    from pipeline.runs import list_runs
    skip_staging_for_local_runners()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        catalog = os.path.join(folder, "catalog")
        base = pc.get_config(args.profile, workspace=folder)
        start = time.monotonic()
        with SpanWriter(catalog, num_shards=max(4, args.workers * 2)) as writer:
            for record in generator.generate(base.data.synthetic_seed, args.images,
                                             base.data.synthetic_image_size,
                                             workers=os.cpu_count() or 1):
                writer.add(record)
        print(f"span of {args.images} images written in {time.monotonic() - start:.0f} s")
        # The cluster's services sit idle while the other settings run.
        with LocalBeamCluster(os.path.join(folder, "cluster-state"), args.workers) as cluster:
            settings = {"1 process": pc.BeamConfig(),
                        f"{args.workers} worker processes": pc.BeamConfig(
                            direct_num_workers=args.workers,
                            direct_running_mode="multi_processing"),
                        f"cluster of {args.workers} workers": cluster.beam_config()}
            for n, (name, beam) in enumerate(settings.items()):
                config = dataclasses.replace(base, beam=beam,
                                             workspace=os.path.join(folder, f"setting-{n}"))
                config = pc.replace_nested(config, "data.catalog_root", catalog)
                start = time.monotonic()
                tfx.orchestration.LocalDagRunner().run(create_preprocessing_pipeline(config))
                seconds = list_runs(config.metadata_path, metrics=False)[0]["component_seconds"]
                results[name] = {"StatisticsGen": seconds["StatisticsGen"],
                                 "Transform": seconds["Transform"],
                                 "wall": round(time.monotonic() - start, 1)}
                print(f"{name}: {results[name]}")
    one = results.pop("1 process")
    speedup = {name: {key: round(one[key] / many[key], 2) for key in ("StatisticsGen",
                                                                       "Transform")}
               for name, many in results.items()}
    results["1 process"] = one
    print(f"speed-up: {speedup} (cpus: {os.cpu_count()})")
    print(json.dumps({"images": args.images, "results": results, "speedup": speedup}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
