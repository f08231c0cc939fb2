#!/usr/bin/env python
"""Detector / composite serving benchmark (not a test): latency and throughput through
``fashion serve`` over gRPC, as a client sees them.

Usage (after a pipeline run has pushed them):
    .venv/bin/python scripts/benchmark_detection.py --model garments \\
        [--model-base-path workspace/serving/garments] [--records 'workspace/catalog/span-*/eval/*']

The server runs as a subprocess, as in production. Measured: p50/p90 latency of one image per
request (``--requests`` of them, after warm-up), and images/s with ``--batch`` images per request.
Prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="garments")
    parser.add_argument("--model-base-path", default=None,
                        help="default: workspace/serving/<model>")
    parser.add_argument("--records", default="workspace/catalog/span-*/eval/*")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--input-name", default="inputs")
    args = parser.parse_args()
    import portpicker

    from serving.client import ServingClient
    from trainer.export.records import read_record_images
    base = os.path.abspath(args.model_base_path or os.path.join("workspace", "serving",
                                                                 args.model))
    images = [image for _, image in read_record_images(args.records, args.requests)]
    port = portpicker.pick_unused_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", f"--model_name={args.model}",
         f"--model_base_path={base}", f"--port={port}", "--rest_api_port=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with ServingClient(f"127.0.0.1:{port}", timeout=300) as client:
            client.wait_until_available(args.model, 600)

            def ask(batch):
                return client.predict(args.model, {args.input_name: np.array(batch,
                                                                            dtype=object)})
            ask(images[:1])
            ask(images[:args.batch])  # warm both batch sizes
            latencies = []
            for image in images:
                start = time.perf_counter()
                ask([image])
                latencies.append(time.perf_counter() - start)
            batches = [images[i:i + args.batch] for i in range(0, len(images), args.batch)]
            start = time.perf_counter()
            for batch in batches:
                ask(batch)
            elapsed = time.perf_counter() - start
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    figures = {"model": args.model, "requests": len(latencies),
               "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
               "p90_ms": round(1000 * float(np.percentile(latencies, 90)), 1),
               "batch": args.batch,
               "images_per_second": round(sum(len(b) for b in batches) / elapsed, 2),
               "images_per_second_batch_1": round(1 / float(np.median(latencies)), 2)}
    print(f"{args.model} through fashion serve (gRPC), {len(latencies)} images:")
    print(f"  batch 1: p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms "
          f"({figures['images_per_second_batch_1']} images/s)")
    print(f"  batch {args.batch}: {figures['images_per_second']} images/s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
