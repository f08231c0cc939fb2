#!/usr/bin/env python
"""Hardening figures (not a test): ``fashion serve`` as a real process under hostile and
careless clients, each case with its status, seconds and the server's memory.

Usage:
    .venv/bin/python scripts/benchmark_hardening.py [--repo DIR]

``--repo`` runs the server of another checkout (an older commit, for before/after figures);
the clients are this script's. Every case has a time limit, so a server that hangs is reported
as such rather than hanging the script. It prints one line per case, then one JSON line.

Cases: a 4,096-row gRPC request of tiny "images" (batching off); a REST body of 12 M short
strings (57 MiB); 30 clients without the token announcing 60 MB bodies; a chunked body hiding a
second request; 200 connections opened at once; SIGTERM under keep-alive load with an idle
keep-alive connection open; and, against an image model exported as ours are (the serving
graph's checked decode): a GIF with a 64×64 screen and one 8000×8000 frame, a GIF of 100
frames of 16 MP, and 40 images declaring 30 MP each.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024


def write_model(export_dir: str) -> None:
    from tests.conftest import write_toy_model
    write_toy_model(export_dir)


def write_image_model(export_dir: str) -> None:
    from tests.conftest import write_image_model as write
    write(export_dir)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``python -m serving`` of ``repo`` on the toy model, on loopback ports."""

    def __init__(self, repo: str, base: str, *flags: str):
        import portpicker
        self.grpc_port, self.rest_port = (portpicker.pick_unused_port(),
                                          portpicker.pick_unused_port())
        self.token_file = os.path.join(base, "..", "token")
        with open(self.token_file, "w") as handle:
            handle.write("s3cret")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving", f"--port={self.grpc_port}",
             f"--rest_api_port={self.rest_port}", "--model_name=toy",
             f"--model_base_path={base}", *flags],
            cwd=repo, stderr=subprocess.DEVNULL,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.status(auth=True) == 200:
                return
            if self.process.poll() is not None:
                raise RuntimeError("the server exited at start")
            time.sleep(0.3)
        raise RuntimeError("the server did not become available")

    def status(self, auth: bool = False) -> int:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=5)
            headers = {"Authorization": "Bearer s3cret"} if auth else {}
            connection.request("GET", "/v1/models/toy", headers=headers)
            return connection.getresponse().status
        except OSError:
            return 0

    def peak_mb(self) -> float:
        return peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def timed(case, seconds: float):
    """``(result or "timeout", seconds)`` of ``case()`` run with a time limit."""
    box = {}

    def run():
        try:
            box["result"] = case()
        except Exception as err:  # noqa: BLE001 (reported as the case's outcome)
            box["result"] = f"{type(err).__name__}: {str(err)[:80]}"
    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(seconds)
    return box.get("result", "timeout"), round(time.monotonic() - start, 2)


def in_threads(client, count: int) -> None:
    """Runs ``client`` in ``count`` threads at once and waits for them all."""
    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def amplification_grpc(server: Server):
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "measure"
    request.inputs["data"].CopyFrom(tf.make_tensor_proto(np.array([b"\x89PNG"] * 4096, object)))
    request.inputs["weight"].CopyFrom(tf.make_tensor_proto(np.ones(4096, np.float32)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=120, metadata=[("authorization", "Bearer s3cret")])
            return "OK"
        except grpc.RpcError as err:
            return err.code().name


def amplification_rest(server: Server):
    body = (b'{"signature_name": "measure", "inputs": {"data": ['
            + b",".join([b'"ab"'] * 12_000_000) + b'], "weight": [1.0]}}')
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=300)
    connection.request("POST", "/v1/models/toy:predict", body,
                       {"Authorization": "Bearer s3cret"})
    return connection.getresponse().status


def unauthenticated_bodies(server: Server):
    """30 clients without the token announce 60 MB bodies and send 2 MB of each."""
    statuses = []

    def client():
        try:
            with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
                sock.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 60000000\r\n\r\n")
                try:
                    for _ in range(32):
                        sock.sendall(b"[" * 65536)
                except OSError:
                    pass
                statuses.append(sock.recv(12).decode(errors="replace"))
        except OSError as err:
            statuses.append(type(err).__name__)
    in_threads(client, 30)
    return sorted(set(statuses))


def chunked_smuggling(server: Server):
    smuggled = b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n" % len(smuggled) + smuggled + b"\r\n0\r\n\r\n")
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except socket.timeout:
            pass
    statuses = [line.split()[1].decode() for line in received.split(b"\r\n")
                if line.startswith(b"HTTP/1.1 ")]
    return {"responses": statuses, "smuggled_answered": b"model_version_status" in received}


def burst(server: Server):
    answered = []

    def client():
        try:
            with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
                sock.sendall(b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Bearer s3cret\r\nConnection: close\r\n\r\n")
                answered.append(sock.recv(12) == b"HTTP/1.1 200")
        except OSError:
            answered.append(False)
    in_threads(client, 200)
    return f"{sum(answered)}/200 answered"


def _gif_frames(side: int) -> bytes:
    """A one-colour GIF of ``side``² as PIL writes it: ``(header up to the first frame, the
    frame's descriptor and LZW data)``."""
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("P", (side, side), 0).save(buffer, format="GIF")
    data = buffer.getvalue()
    start = data.index(b"\x2c", 13)
    return data[:start], data[start:-1]  # without the trailer


def gif_bomb_frame() -> bytes:
    """A real 8000×8000 frame in a GIF that declares a 64×64 logical screen."""
    header, frame = _gif_frames(8000)
    header = header[:6] + (64).to_bytes(2, "little") * 2 + header[10:]
    return header + frame + b";"


def gif_100_frames() -> bytes:
    """100 real frames of 4000×4000 (16 MP each)."""
    header, frame = _gif_frames(4000)
    return header + frame * 100 + b";"


def declared_30mp_pngs() -> list:
    """40 PNG signatures and headers declaring 6000×5000 each (no pixel data)."""
    import struct
    return [b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + struct.pack(">II", 6000, 5000)
            + b"\x08\x02\0\0\0"] * 40


def predict_images(server: Server, images: list):
    import base64
    body = json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}
                                     for image in images]})
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=300)
    connection.request("POST", "/v1/models/toy:predict", body,
                       {"Authorization": "Bearer s3cret"})
    response = connection.getresponse()
    answer = json.loads(response.read() or b"{}")
    return f"{response.status} {answer.get('error', '')[:60]}".strip()


def sigterm_under_load(server: Server):
    idle = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    idle.request("GET", "/v1/models/toy", headers={"Authorization": "Bearer s3cret"})
    idle.getresponse().read()
    stop, after, sent_at = threading.Event(), [], []

    def load():
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        while not stop.is_set():
            try:
                connection.request("POST", "/v1/models/toy:predict", '{"instances": [1.0]}',
                                   {"Authorization": "Bearer s3cret"})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return
            if sent_at and response.status == 200:
                after.append(1)
    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    sent_at.append(time.monotonic())
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=45)
        outcome = f"exited in {time.monotonic() - sent_at[0]:.1f} s"
    except subprocess.TimeoutExpired:
        outcome = "still running after 45 s"
    stop.set()
    return f"{outcome}; {len(after)} requests answered after SIGTERM"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=REPO_ROOT, help="checkout whose server to run")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        base = os.path.join(folder, "toy")
        write_model(os.path.join(base, "1"))
        token_flags = [f"--auth_token_file={os.path.join(folder, 'token')}"]
        cases = [("grpc_4096_rows", amplification_grpc, 180),
                 ("rest_12M_values", amplification_rest, 300),
                 ("30_unauthenticated_60MB_bodies", unauthenticated_bodies, 120),
                 ("chunked_smuggling", chunked_smuggling, 30),
                 ("burst_200_connections", burst, 60)]
        for name, case, limit in cases:
            server = Server(args.repo, base, *token_flags)
            try:
                before = server.peak_mb()
                outcome, seconds = timed(lambda: case(server), limit)
                results[name] = {"outcome": outcome, "seconds": seconds,
                                 "peak_rss_growth_mb": round(server.peak_mb() - before)}
            finally:
                server.stop()
        image_base = os.path.join(folder, "images")
        write_image_model(os.path.join(image_base, "1"))
        image_cases = [("gif_8000x8000_frame_in_64x64_screen", [gif_bomb_frame()]),
                       ("gif_100_frames_of_16MP", [gif_100_frames()]),
                       ("40_images_declaring_30MP", declared_30mp_pngs())]
        for name, images in image_cases:
            server = Server(args.repo, image_base, *token_flags)
            try:
                before, cpu = server.peak_mb(), cpu_seconds(server.process.pid)
                outcome, seconds = timed(lambda: predict_images(server, images), 300)
                results[name] = {"outcome": outcome, "seconds": seconds,
                                 "request_bytes": sum(len(image) for image in images),
                                 "cpu_seconds": round(cpu_seconds(server.process.pid) - cpu, 2),
                                 "peak_rss_growth_mb": round(server.peak_mb() - before)}
            finally:
                server.stop()
        server = Server(args.repo, base, *token_flags)
        try:
            outcome, seconds = timed(lambda: sigterm_under_load(server), 60)
            results["sigterm_under_keep_alive_load"] = {"outcome": outcome}
        finally:
            server.stop()
    for name, figures in results.items():
        print(f"{name:<34} {json.dumps(figures)}")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
