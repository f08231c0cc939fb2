#!/usr/bin/env python
"""Catalog search benchmark (not a test): the catalog index against exact search, and search
latency through ``fashion serve``, as a client sees it.

Usage (after a pipeline run has pushed and indexed the dual encoder):
    .venv/bin/python scripts/benchmark_search.py [--model-base-path workspace/serving/dual_encoder]
        [--items 100000] [--queries 200] [--requests 50]

Measured, in one run:
* the pushed version's own index (its manifest): items, kind, embedding and build seconds, and
  recall@10 against exact search;
* FAISS on ``--items`` vectors of the model's dimension, random (the worst case) and
  catalog-like (the catalog's embeddings repeated with a little noise): build seconds and
  per-query p50 latency of the exact flat index and of HNSW, and HNSW's recall@10 against exact
  on ``--queries`` queries;
* through ``fashion serve`` (a subprocess, REST ``:search``): p50/p90 of a text search (text
  embedding plus index lookup), beside p50 of the text embedding alone (gRPC Predict on
  ``embed_text``).
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

QUERIES = ("a person wearing a red dress", "blue jeans and a white t-shirt",
           "a striped skirt with a bag", "black boots", "a green coat")


def _latencies(call, count: int) -> np.ndarray:
    seconds = []
    for index in range(count):
        start = time.perf_counter()
        call(index)
        seconds.append(time.perf_counter() - start)
    return np.array(seconds) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dual_encoder")
    parser.add_argument("--model-base-path", default=None,
                        help="default: workspace/serving/<model>")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    import portpicker

    from schemas import catalog_index
    from schemas.serving_api import latest_version
    from serving.client import ServingClient
    base = os.path.abspath(args.model_base_path or os.path.join("workspace", "serving",
                                                                 args.model))
    version = latest_version(base)
    index = catalog_index.CatalogIndex(catalog_index.index_dir(version))
    figures = {"catalog_items": len(index), "catalog_index_kind": index.manifest["kind"],
               "catalog_embed_seconds": index.manifest["embed_seconds"],
               "catalog_build_seconds": index.manifest["build_seconds"],
               "catalog_recall_at_10_vs_exact": index.manifest["recall_at_10_vs_exact"]}

    rng = np.random.default_rng(0)
    catalog = index.vectors()

    def unit(rows):
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    # Random unit vectors: the worst case. Catalog-like: the catalog's own embeddings repeated
    # with noise (each item a near-duplicate cluster), as a larger catalog of the same kind.
    sets = {"random": (unit(rng.normal(size=(args.items, index.dim))),
                       unit(rng.normal(size=(args.queries, index.dim)))),
            "catalog_like": (unit(catalog[rng.integers(len(catalog), size=args.items)]
                                  + rng.normal(0, 0.05, (args.items, index.dim))),
                             unit(catalog[rng.integers(len(catalog), size=args.queries)]
                                  + rng.normal(0, 0.05, (args.queries, index.dim))))}
    for name, (vectors, queries) in sets.items():
        for kind in catalog_index.KINDS:
            start = time.perf_counter()
            built = catalog_index.build(vectors, kind)
            figures[f"{name}_{kind}_build_seconds"] = round(time.perf_counter() - start, 3)
            figures[f"{name}_{kind}_query_p50_ms"] = round(float(np.median(_latencies(
                lambda i: built.search(queries[i % len(queries)][None, :], 10),
                args.queries))), 3)
            if kind == "hnsw":
                figures[f"{name}_hnsw_recall_at_10_vs_exact"] = \
                    catalog_index.recall_against_exact(built, vectors, queries, 10)
    figures["scale_items"] = args.items

    port, rest = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", f"--model_name={args.model}",
         f"--model_base_path={base}", f"--port={port}", f"--rest_api_port={rest}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with ServingClient(f"127.0.0.1:{rest}", "rest", timeout=300) as client:
            client.wait_until_available(args.model, 600)
            client.search(args.model, text=QUERIES[0])  # warm
            searched = _latencies(lambda i: client.search(
                args.model, text=QUERIES[i % len(QUERIES)], k=10), args.requests)
        with ServingClient(f"127.0.0.1:{port}", timeout=300) as client:
            embedded = _latencies(lambda i: client.predict(
                args.model, {"text": np.array([QUERIES[i % len(QUERIES)].encode()],
                                              dtype=object)},
                signature="embed_text"), args.requests)
        figures.update({"search_p50_ms": round(float(np.median(searched)), 2),
                        "search_p90_ms": round(float(np.percentile(searched, 90)), 2),
                        "embed_text_p50_ms": round(float(np.median(embedded)), 2)})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:{width}s}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
