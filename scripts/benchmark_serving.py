#!/usr/bin/env python
"""Serving benchmark (not a test): latency of in-process vs gRPC vs REST, and batching throughput.

Usage (after a pipeline run has pushed a category model):
    .venv/bin/python scripts/benchmark_serving.py [--model-base-path workspace/serving/category]

1. p50/p99 latency at batch 1 of the ``serving_images`` signature: a direct call on the loaded
   SavedModel in this process, and the same request through ``fashion serve`` over gRPC
   (tensorflow-serving-api stub) and over REST (JSON with base64), one client, one request at a
   time. The server runs as a subprocess, as in production. The three paths are timed in turn
   (direct, gRPC, REST, direct, ...), so drift on this noisy machine hits them alike; the
   overhead of a path is the median of its per-round differences from the direct call.
2. The same on a model that does almost nothing with the image (its byte length), so the
   server's own overhead (transport, proto/JSON conversion, thread hand-offs) is measured
   without a 15 ms model's jitter around it.
3. Throughput (requests/s) with 1 and with 8 concurrent gRPC clients, batching on
   (``--enable_batching`` with the parameters printed), and 8 clients with batching off.

It prints a table and, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import base64
import glob
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from schemas.serving_api import IMAGES_INPUT, SCORES_OUTPUT, SERVING_IMAGES  # noqa: E402


def percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def latest_version(base: str) -> str:
    from schemas.serving_api import latest_version as newest_saved_model
    try:
        return newest_saved_model(base)
    except FileNotFoundError:
        sys.exit(f"no model version under {base}: run scripts/run_pipeline.sh first "
                 "(or pass --model-base-path)")


def sample_image(args) -> bytes:
    records = sorted(glob.glob(os.path.join(args.catalog, "span-*", "eval", "*")))
    if records:
        from trainer.export.records import read_record_images
        return read_record_images(os.path.join(os.path.dirname(records[0]), "*"), 1)[0][1]
    from components.synthetic_catalog import generator
    return list(generator.generate(1, 1, 256))[0].encoded


def start_server(base: str, name: str, batching_file: str = "") -> tuple:
    import portpicker

    from serving.client import ServingClient
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    command = [sys.executable, "-m", "fashion_cli", "serve", f"--model_name={name}",
               f"--model_base_path={base}", f"--port={grpc_port}",
               f"--rest_api_port={rest_port}"]
    if batching_file:
        command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    with ServingClient(f"127.0.0.1:{grpc_port}") as client:
        client.wait_until_available(name, 180)
    return process, grpc_port, rest_port


def stop_server(process) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def interleaved(calls: dict, count: int, warmup: int) -> dict:
    """Seconds per call of each path, the paths called in turn ``count`` times."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(count):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def write_null_model(export_dir: str) -> None:
    """A SavedModel whose ``serving_images`` answers ``scores`` = [[byte length]]: the request
    and answer travel as with a real model, the model itself costs next to nothing."""
    import tensorflow as tf

    class Null(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
        def images(self, images):
            return {SCORES_OUTPUT: tf.cast(tf.strings.length(images), tf.float32)[:, None]}

    module = Null()
    tf.saved_model.save(module, export_dir,
                        signatures={SERVING_IMAGES: module.images.get_concrete_function()})


def latency(base: str, name: str, image: bytes, args) -> dict:
    """p50/p99 of the direct call, gRPC and REST on ``base``'s latest version, interleaved."""
    import tensorflow as tf
    model = tf.saved_model.load(latest_version(base))
    signature = model.signatures[SERVING_IMAGES]
    images = tf.constant([image])

    def direct():
        signature(**{IMAGES_INPUT: images})[SCORES_OUTPUT].numpy()
    process, grpc_port, rest_port = start_server(base, name)
    try:
        grpc_call, channel = grpc_caller(grpc_port, name, image)
        rest_call, connection = rest_caller(rest_port, name, image)
        times = interleaved({"in_process": direct, "grpc": grpc_call, "rest": rest_call},
                            args.requests, args.warmup)
        channel.close()
        connection.close()
    finally:
        stop_server(process)
    figures = {}
    for label, values in times.items():
        figures[f"{label}_p50_ms"] = round(percentile(values, 50), 3)
        figures[f"{label}_p99_ms"] = round(percentile(values, 99), 3)
    for label in ("grpc", "rest"):
        differences = np.subtract(times[label], times["in_process"])
        figures[f"{label}_p50_overhead_ms"] = round(percentile(differences, 50), 3)
    return figures


def grpc_caller(port: int, name: str, image: bytes):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = SERVING_IMAGES
    request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto([image], tf.string))

    def call():
        response = stub.Predict(request, timeout=60)
        assert response.outputs[SCORES_OUTPUT].tensor_shape.dim[0].size == 1
    return call, channel


def rest_caller(port: int, name: str, image: bytes):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"signature_name": SERVING_IMAGES,
                       "instances": [{"b64": base64.b64encode(image).decode()}]})
    path = f"/v1/models/{name}:predict"

    def call():
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        assert response.status == 200, payload[:200]
    return call, connection


def throughput(port: int, name: str, image: bytes, clients: int, seconds: float) -> float:
    callers = [grpc_caller(port, name, image) for _ in range(clients)]
    for call, _ in callers:
        call()
    counts = [0] * clients
    stop = threading.Event()

    def loop(index):
        call = callers[index][0]
        while not stop.is_set():
            call()
            counts[index] += 1
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for _, channel in callers:
        channel.close()
    return sum(counts) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base-path", default=os.path.join(REPO_ROOT, "workspace",
                                                                  "serving", "category"))
    parser.add_argument("--catalog", default=os.path.join(REPO_ROOT, "workspace", "catalog"))
    parser.add_argument("--model-name", default="category")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per path")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=15.0, help="per throughput run")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout-micros", type=int, default=3000)
    parser.add_argument("--batch-threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    base = os.path.abspath(args.model_base_path)
    export_dir = latest_version(base)
    image = sample_image(args)
    results = {"model": export_dir, "image_bytes": len(image), "cpus": os.cpu_count()}

    results.update(latency(base, args.model_name, image, args))
    with tempfile.TemporaryDirectory() as folder:
        write_null_model(os.path.join(folder, "null", "1"))
        null = latency(os.path.join(folder, "null"), "null", image, args)
    results.update({f"null_model_{key}": value for key, value in null.items()})
    process, grpc_port, _ = start_server(base, args.model_name)
    try:
        results["throughput_8_clients_no_batching"] = throughput(
            grpc_port, args.model_name, image, 8, args.seconds)
    finally:
        stop_server(process)

    with tempfile.TemporaryDirectory() as folder:
        batching_file = os.path.join(folder, "batching.txt")
        with open(batching_file, "w") as handle:
            handle.write(f"max_batch_size {{ value: {args.max_batch_size} }}\n"
                         f"batch_timeout_micros {{ value: {args.batch_timeout_micros} }}\n"
                         f"num_batch_threads {{ value: {args.batch_threads} }}\n"
                         "max_enqueued_batches { value: 64 }\n")
        results["batching"] = open(batching_file).read().strip().replace("\n", "; ")
        process, grpc_port, _ = start_server(base, args.model_name, batching_file)
        try:
            results["throughput_1_client"] = throughput(grpc_port, args.model_name, image, 1,
                                                        args.seconds)
            results["throughput_8_clients"] = throughput(grpc_port, args.model_name, image, 8,
                                                         args.seconds)
        finally:
            stop_server(process)
    for key in [k for k in results if k.startswith("throughput")]:
        results[key] = round(results[key], 1)
    results["throughput_ratio_8_vs_1"] = round(
        results["throughput_8_clients"] / results["throughput_1_client"], 2)

    print(f"model {export_dir} ({results['cpus']} CPUs), one {len(image)}-byte image")
    print(f"{'path':<22}{'p50 ms':>10}{'p99 ms':>10}{'p50 overhead':>15}")
    for prefix, title in (("", ""), ("null_model_", "null model ")):
        for label in ("in_process", "grpc", "rest"):
            overhead = results.get(f"{prefix}{label}_p50_overhead_ms", 0.0)
            print(f"{title + label:<22}{results[f'{prefix}{label}_p50_ms']:>10.2f}"
                  f"{results[f'{prefix}{label}_p99_ms']:>10.2f}{overhead:>15.2f}")
    print(f"throughput, batching on ({results['batching']}):")
    print(f"  1 client  {results['throughput_1_client']:8.1f} req/s")
    print(f"  8 clients {results['throughput_8_clients']:8.1f} req/s "
          f"({results['throughput_ratio_8_vs_1']}x)")
    print(f"  8 clients, batching off {results['throughput_8_clients_no_batching']:8.1f} req/s")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
