#!/usr/bin/env python
"""Drift figures (not a test): what CatalogDriftValidator measures between two spans of one
source, and between a span and a deliberately drifted one.

Usage:
    .venv/bin/python scripts/measure_drift.py [--ccp ../shared/datasets/ccp] [--profile default]

The CCP photos are converted once and split into two halves by a hash of their id; then, each in
a fresh workspace, the validation pipeline (ExampleGen → StatisticsGen → schema gate →
CatalogDriftValidator, LocalDagRunner) runs on the first half and then on the second half as it
is ("halves"), darkened to 60 % ("darker"), or without the photos of their most common garment
("vanished"). It prints every check of the second span, then one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


class _Halves:
    """A writer for ``ccp.convert`` that keeps the records in memory, for two spans."""

    def __init__(self):
        self.records = []

    def add(self, record):
        self.records.append(record)
        return "train"

    def reject(self, *args, **kwargs):
        pass


def _darker(record, factor: float):
    import numpy as np
    from PIL import Image
    pixels = np.asarray(Image.open(io.BytesIO(record.encoded)), np.float32) * factor
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=92)
    return dataclasses.replace(record, encoded=buffer.getvalue(), format="jpeg")


def _validate(config, records_by_span: list) -> dict:
    """Writes each list of records as the next span and validates it; the last span's report."""
    from tfx import v1 as tfx

    from components.catalog_import.spans import SpanWriter
    from pipeline.beam_staging import skip_staging_for_local_runners
    from pipeline.pipeline import create_validation_pipeline
    skip_staging_for_local_runners()
    seconds = []
    for records in records_by_span:
        with SpanWriter(config.catalog_root, num_shards=config.data.num_shards,
                        eval_fraction=config.data.eval_fraction) as writer:
            for record in records:
                writer.add(record)
        start = time.monotonic()
        try:
            tfx.orchestration.LocalDagRunner().run(create_validation_pipeline(config))
        except RuntimeError:
            pass  # a failed check: the report says which
        seconds.append(round(time.monotonic() - start, 1))
        span = writer.summary.span
    with open(os.path.join(config.reports_root, "drift", f"span-{span}", "drift.json")) as f:
        return {**json.load(f), "validation_seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccp", default=os.path.join(REPO_ROOT, "..", "shared", "datasets",
                                                      "ccp"))
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import pipeline_config as pc
    from components.catalog_import import ccp
    collected = _Halves()
    ccp.convert(args.ccp, collected)
    first, second = [], []
    for record in collected.records:
        digest = hashlib.sha256(record.source_id.encode()).digest()[0]
        (first if digest % 2 else second).append(record)
    common = collections.Counter(r.category for r in second if r.category).most_common(1)[0][0]
    scenarios = {"halves": second, "darker": [_darker(r, 0.6) for r in second],
                 "vanished": [r for r in second if r.category != common]}
    results = {}
    for name, drifted in scenarios.items():
        with tempfile.TemporaryDirectory() as workspace:
            config = pc.get_config(args.profile, workspace=workspace)
            results[name] = _validate(config, [first, drifted])
        outcome = ("passed" if results[name]["passed"]
                   else "STOPPED: " + ", ".join(results[name]["failed"]))
        print(f"== {name}: span-2 ({len(drifted)} photos) against span-1 ({len(first)}): "
              f"{outcome}; validation {results[name]['validation_seconds']} s")
        for finding in results[name]["findings"]:
            print(f"   {finding['check']:<45} {finding['value']:>8} (threshold "
                  f"{finding['threshold']}) {'FAILED' if finding['failed'] else ''} "
                  f"{finding['detail'][:70]}")
    print(json.dumps({"vanished_class": common, **{
        name: {"passed": r["passed"], "failed": r["failed"],
               "values": {f["check"]: f["value"] for f in r["findings"]},
               "validation_seconds": r["validation_seconds"]}
        for name, r in results.items()}}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
