"""``fashion serve`` as a real process under careless and hostile clients (loopback only)."""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import portpicker
import pytest

pytest.importorskip("tensorflow")

from conftest import REPO_ROOT, write_image_model, write_toy_model  # noqa: E402


def _start_process(base, *flags, tls=None, token=None):
    """``python -m serving`` on loopback: ``(process, rest port, grpc port)`` once available
    (asked over HTTPS with the ``ssl.SSLContext`` ``tls``, with the bearer ``token``)."""
    grpc_port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    log = tempfile.TemporaryFile(mode="w+")  # a pipe nobody reads could fill and block it
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=toy", f"--model_base_path={base}", *flags],
        cwd=REPO_ROOT, stderr=log, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = (http.client.HTTPSConnection("localhost", rest_port, timeout=5,
                                                      context=tls) if tls else
                          http.client.HTTPConnection("127.0.0.1", rest_port, timeout=5))
            connection.request("GET", "/v1/models/toy", headers={
                "Authorization": f"Bearer {token}"} if token else {})
            if connection.getresponse().status == 200:
                connection.close()
                return process, rest_port, grpc_port
        except (OSError, http.client.HTTPException):
            pass
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(log.read())
        time.sleep(0.2)
    process.kill()
    raise AssertionError("fashion serve did not become available")


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("hardening") / "toy"
    write_toy_model(str(base / "1"))
    return base


def test_sigterm_under_keep_alive_load_stops_within_the_grace_period(toy_base):
    """Before: with REST clients connected SIGTERM never completed (SIGKILL after 45 s), and
    under keep-alive load the server answered thousands of requests after SIGTERM. Now it
    stops taking requests, closes idle keep-alives, lets in-flight work finish and exits
    within --shutdown_grace_seconds."""
    process, port, _ = _start_process(toy_base, "--shutdown_grace_seconds=5")
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    idle.request("GET", "/v1/models/toy")
    assert idle.getresponse().read()  # now an idle keep-alive connection
    answered_after, sigterm_at, stop = [], [], threading.Event()

    def load():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"instances": [1.0]})
        while not stop.is_set():
            try:
                connection.request("POST", "/v1/models/toy:predict", body)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return
            if sigterm_at and response.status == 200:
                answered_after.append(time.monotonic())
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    time.sleep(1.0)
    sigterm_at.append(time.monotonic())
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("fashion serve did not exit within its grace period")
    finally:
        stop.set()
    assert time.monotonic() - sigterm_at[0] < 5 + 3
    assert process.returncode == 0
    # The signal reaches the server's main thread a few milliseconds late: a handful of
    # requests may still be answered then, none after.
    assert len(answered_after) <= 20, f"{len(answered_after)} requests answered after SIGTERM"
    assert not answered_after or answered_after[-1] - sigterm_at[0] < 1.0


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_one_request_cannot_amplify_without_bound(toy_base):
    """Before, with batching off: a 2.8 MB gRPC request of 4,096 tiny PNGs ran for 66 s and
    took 9 GB; a 57 MiB REST body of 12 M short strings took 3.9 GB. Rows per request and JSON
    values per body are bounded (flags), refused before any tensor is made."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    process, rest_port, grpc_port = _start_process(toy_base)
    try:
        before = _peak_rss_mb(process.pid)
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "toy", "measure"
        request.inputs["data"].CopyFrom(tf.make_tensor_proto(
            np.array([b"\x89PNG tiny"] * 4096, object)))
        request.inputs["weight"].CopyFrom(tf.make_tensor_proto(np.ones(4096, np.float32)))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max_request_rows" in err.value.details()
            assert time.monotonic() - start < 5
        body = b'{"signature_name": "measure", "inputs": {"data": [' + b",".join(
            [b'"ab"'] * 12_000_000) + b'], "weight": [1.0]}}'
        assert len(body) > 50 * 2 ** 20
        connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=60)
        start = time.monotonic()
        connection.request("POST", "/v1/models/toy:predict", body)
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 413 and "--max_json_values" in answer["error"]
        assert time.monotonic() - start < 10
        growth = _peak_rss_mb(process.pid) - before
        assert growth < 300, f"peak RSS grew by {growth:.0f} MB"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _write_heavy_model(export_dir: str) -> None:
    """A model with 100 MB of weights, so a version that is not released shows in the RSS."""
    import tensorflow as tf

    class Heavy(tf.Module):
        def __init__(self):
            super().__init__()
            self.weights = tf.Variable(tf.fill([25_000_000], 0.5))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def score(self, x):
            return {"y": x * tf.reduce_mean(self.weights)}

    module = Heavy()
    tf.saved_model.save(module, export_dir, signatures={
        "serving_default": module.score.get_concrete_function()})


def test_ten_version_swaps_under_load_release_their_memory(tmp_path):
    """Before: each swap kept ~300 MB (1.1 -> 2.7 GB over 5 swaps of the category model).
    Unloaded versions are collected and their heap pages handed back to the system."""
    import shutil
    source = tmp_path / "heavy-source"
    _write_heavy_model(str(source))
    base = tmp_path / "heavy"
    shutil.copytree(source, base / "1")
    process, port, _ = _start_process(base, "--model_name=toy")
    stop, failures = threading.Event(), []

    def load():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            try:
                connection.request("POST", "/v1/models/toy:predict", '{"instances": [2.0]}')
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(response.status)
            except (OSError, http.client.HTTPException) as err:
                failures.append(repr(err))
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def current_rss_mb():
        with open(f"/proc/{process.pid}/status") as handle:
            return next(int(line.split()[1]) for line in handle
                        if line.startswith("VmRSS:")) / 1024

    def serving(version):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/v1/models/toy/versions/{version}")
        response = connection.getresponse()
        return response.status == 200 and b"AVAILABLE" in response.read()

    clients = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        rss = []
        for version in range(2, 12):
            shutil.copytree(source, base / str(version))
            deadline = time.monotonic() + 60
            while not serving(version):
                assert time.monotonic() < deadline, f"version {version} never served"
                time.sleep(0.2)
            shutil.rmtree(base / str(version - 1))
            time.sleep(1.5)  # the old version is unloaded after the new one serves
            rss.append(current_rss_mb())
    finally:
        stop.set()
        process.terminate()
        process.wait(timeout=30)
    assert not failures, failures[:5]
    # Ten swaps of a 100 MB model: the process may hold two versions during a swap, not ten.
    assert max(rss[2:]) - rss[1] < 250, [round(r) for r in rss]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_work_whose_caller_is_gone_is_stopped(toy_base):
    """Before: after a 2 s gRPC deadline the server spent another 15 CPU-seconds on the
    request, and a REST 504 did not stop the work either. The model call is now cancelled
    between two of its ops when the gRPC call ends or the REST timeout passes."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    process, rest_port, grpc_port = _start_process(toy_base, "--rest_api_timeout_in_ms=1000")
    endless = np.array([10 ** 12], np.int64)  # a loop of a trillion steps: hours of work
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "toy", "slow"
        request.inputs["work"].CopyFrom(tf.make_tensor_proto(endless))
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.Predict(request, timeout=1.0)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.5)
        spent = _cpu_seconds(process.pid)
        time.sleep(2.0)
        assert _cpu_seconds(process.pid) - spent < 0.5, "the abandoned gRPC call kept running"

        connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=30)
        connection.request("POST", "/v1/models/toy:predict", json.dumps(
            {"signature_name": "slow", "instances": [int(endless[0])]}))
        response = connection.getresponse()
        assert response.status == 504
        response.read()
        time.sleep(0.5)
        spent = _cpu_seconds(process.pid)
        time.sleep(2.0)
        assert _cpu_seconds(process.pid) - spent < 0.5, "the timed-out REST call kept running"
        connection.request("GET", "/v1/models/toy")  # and the server still answers
        assert connection.getresponse().status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def _write_tf1_endless_model(export_dir: str) -> None:
    """A TF1 session export (a reference variable makes tf.saved_model.load fail, so it is
    served by the session loader, whose runs cannot be cancelled) with ``slow``: a loop of
    ``work`` steps."""
    import tensorflow as tf
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        calls = v1.Variable(0, dtype=tf.int64, name="calls", use_resource=False)
        work = v1.placeholder(tf.int64, [None], name="work")
        (steps,) = tf.while_loop(lambda i: i < tf.reduce_max(work), lambda i: (i + 1,),
                                 (tf.constant(0, tf.int64),))
        with tf.control_dependencies([v1.assign_add(calls, 1)]):
            done = tf.fill(tf.shape(work), steps)
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(export_dir)
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
                "serving_default": v1.saved_model.predict_signature_def({"work": work},
                                                                        {"done": done})})
            builder.save()


def test_sigterm_exits_within_the_grace_period_even_with_a_call_that_cannot_stop(tmp_path):
    """A TF1 session run abandoned at the REST timeout keeps running (it cannot be cancelled);
    SIGTERM still ends the process within --shutdown_grace_seconds (interpreter exit used to
    wait for the worker thread running it, for ever)."""
    base = tmp_path / "endless"
    _write_tf1_endless_model(str(base / "1"))
    process, port, _ = _start_process(base, "--rest_api_timeout_in_ms=1000",
                                      "--shutdown_grace_seconds=2")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/v1/models/toy:predict",
                           json.dumps({"instances": [10 ** 12]}))
        assert connection.getresponse().status == 504
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        assert time.monotonic() - sent < 2 + 3 and process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _png(width, height, declared=None):
    """A PNG of ``width``×``height``, or (``declared``) only its signature and a header
    declaring that size: what a bomb's first bytes look like."""
    import io
    import struct

    import numpy as np
    from PIL import Image
    if declared:
        return b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + struct.pack(">II", *declared) + b"\x08\x02\0\0\0"
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_bombs_and_pixel_heavy_requests_are_refused_before_decoding(tmp_path):
    """Before: a 48 KB GIF with a 64×64 screen and an 8000×8000 frame decoded (+0.9 GB); 100
    frames of 16 MP cost +1.6 GB and 15 CPU-seconds; nothing bounded a request's pixels. Now
    the server reads every image's (and GIF frame's) declared size before queueing: an image
    above 40 MP is 400, as the served graph would answer, and images together above
    --max_request_pixels are 413."""
    import base64

    from test_preprocessing import gif_with_frames
    base = tmp_path / "images"
    write_image_model(str(base / "1"))
    process, port, _ = _start_process(base)

    def predict(*images):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start = time.monotonic()
        connection.request("POST", "/v1/models/toy:predict", json.dumps({"instances": [
            {"b64": base64.b64encode(image).decode()} for image in images]}))
        response = connection.getresponse()
        answer = json.loads(response.read())
        return response.status, answer, time.monotonic() - start

    try:
        status, answer, _ = predict(_png(16, 16))
        assert status == 200 and abs(answer["predictions"][0] - 200.0) < 1.0
        before = _peak_rss_mb(process.pid)
        status, answer, seconds = predict(gif_with_frames(64, [(8000, 8000)]))
        assert status == 400 and "image too large" in answer["error"], answer
        assert seconds < 5
        status, answer, seconds = predict(gif_with_frames(4000, [(4000, 4000)] * 100))
        assert status == 400 and "decompression bomb" in answer["error"], answer
        assert seconds < 2  # refused by the server from the headers, before queueing
        status, answer, seconds = predict(*[_png(0, 0, declared=(6000, 5000))] * 40)
        assert status == 413 and "--max_request_pixels" in answer["error"], answer
        assert seconds < 2
        growth = _peak_rss_mb(process.pid) - before
        assert growth < 100, f"peak RSS grew by {growth:.0f} MB"
        status, answer, _ = predict(*[_png(16, 16)] * 3)  # and good requests still work
        assert status == 200 and len(answer["predictions"]) == 3
    finally:
        process.terminate()
        process.wait(timeout=30)


def _raw(port, data, seconds=10.0, tls=None):
    """Sends ``data`` on a new connection; what comes back until the server closes it."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as raw:
        connection = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        connection.sendall(data)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return received


def test_hostile_http_clients_of_the_real_server(toy_base, tmp_path):
    """Before: a chunked body was ignored and the request hidden in it executed; deeply nested
    JSON and a lone surrogate were 500s; connections were unlimited and the backlog 5 (a burst
    of 200 saw 76 time out); a version folder beyond int64 broke Predict and GetModelStatus;
    the reload API was open to anyone reaching the port."""
    import shutil
    import socket

    import grpc
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
    base = tmp_path / "toy"
    shutil.copytree(toy_base, base)
    shutil.copytree(base / "1", base / "99999999999999999999")
    process, port, grpc_port = _start_process(base, "--rest_api_max_connections=8")
    try:
        smuggled = b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n\r\n"
        answer = _raw(port, b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(smuggled)
                      + smuggled + b"\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 501 ") and answer.count(b"HTTP/1.1 ") == 1

        def post(body):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/v1/models/toy:predict", body)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        assert post(b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")[0] == 400
        status, answer = post(b'{"signature_name": "measure", "instances": '
                              b'[{"data": "\\ud800", "weight": 1.0}]}')
        assert status == 400 and "surrogate" in answer["error"]
        assert post(b'{"instances": [1.0]}') == (200, {"predictions": [2.0]})

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/v1/models/toy")
        response = connection.getresponse()
        versions = [s["version"] for s in json.loads(response.read())["model_version_status"]]
        assert response.status == 200 and versions == ["1"]
        connection.close()

        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
        time.sleep(0.5)
        assert _raw(port, b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 503 ")
        for connection in idle:
            connection.close()
        time.sleep(0.5)

        burst, answered = [], 0
        for _ in range(200):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
            burst.append(connection)
        for connection in burst:
            status_line = connection.recv(12)
            answered += status_line in (b"HTTP/1.1 200", b"HTTP/1.1 503")
            connection.close()
        assert answered == 200  # every one connected and was answered, none timed out

        request = model_management_pb2.ReloadConfigRequest()
        config = request.config.model_config_list.config.add()
        config.name, config.base_path = "other", str(base)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as err:
                model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                    request, timeout=30)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_unauthenticated_and_idle_tls_clients_of_the_real_server(toy_base, tmp_path):
    """Before: with TLS on, one idle TCP connection blocked every HTTPS client; with a token,
    the body was read before the token was checked (30 unauthenticated clients held +1.8 GB)
    and 401s had no WWW-Authenticate."""
    import socket
    import ssl

    from test_model_server import _self_signed
    key, cert = _self_signed()
    ssl_config = tmp_path / "ssl.txt"
    ssl_config.write_text(f"server_key: {json.dumps(key)}\nserver_cert: {json.dumps(cert)}\n")
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    tls = ssl.create_default_context(cadata=cert)
    process, port, _ = _start_process(toy_base, f"--ssl_config_file={ssl_config}",
                                      f"--auth_token_file={token}", tls=tls, token="s3cret")
    idle = socket.create_connection(("127.0.0.1", port), timeout=30)  # never says hello
    try:
        before = _peak_rss_mb(process.pid)
        start = time.monotonic()
        unauthenticated = [
            _raw(port, b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 60000000\r\n\r\n" + b"[" * 1000, tls=tls)
            for _ in range(30)]
        assert time.monotonic() - start < 10
        for answer in unauthenticated:
            assert answer.startswith(b"HTTP/1.1 401 ")
            assert b'WWW-Authenticate: Bearer realm="fashion serve"' in answer
        assert _peak_rss_mb(process.pid) - before < 100
        connection = http.client.HTTPSConnection("localhost", port, timeout=5, context=tls)
        connection.request("POST", "/v1/models/toy:predict", b'{"instances": [1.5]}',
                           headers={"Authorization": "Bearer s3cret"})
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read()) == {"predictions": [3.0]}
    finally:
        idle.close()
        process.terminate()
        process.wait(timeout=30)
