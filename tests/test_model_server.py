"""ModelServer in-process: config reloads, health, warm-up at load, TLS and UNIX sockets."""

import datetime
import ipaddress
import json
import shutil
import ssl
import time
import urllib.request

import grpc
import numpy as np
import portpicker
import pytest

tf = pytest.importorskip("tensorflow")

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc,  # noqa: E402
                                     predict_pb2, prediction_log_pb2,
                                     prediction_service_pb2_grpc)

from conftest import write_toy_model  # noqa: E402
from serving.batching import BatchingOptions  # noqa: E402
from serving.config_files import ModelSpec, SslSettings  # noqa: E402
from serving.errors import ModelNotFound  # noqa: E402
from serving.server import ModelServer, ServerOptions  # noqa: E402
from serving.warmup import warmup_path  # noqa: E402


def _wait(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _states(model):
    try:
        return model.statuses()
    except ModelNotFound:
        return []


def _predict(stub, name="toy", value=1.0, **kwargs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([value], np.float32)))
    return tf.make_ndarray(stub.Predict(request, timeout=10, **kwargs).outputs["y"]).tolist()


@pytest.fixture
def toy_base(toy_models, tmp_path):
    base = tmp_path / "toy"
    shutil.copytree(toy_models["toy"].base_path, base)
    return base


def _start(specs, **options):
    server = ModelServer(specs, ServerOptions(grpc_port=portpicker.pick_unused_port(),
                                              poll_seconds=0.2, **options))
    server.start()
    return server


def test_reload_config_over_grpc(toy_base):
    server = _start([ModelSpec("toy", str(toy_base))], allow_config_reload=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            assert _predict(prediction) == [2.0]
            request = model_management_pb2.ReloadConfigRequest()
            config = request.config.model_config_list.config.add()
            config.name, config.base_path = "renamed", str(toy_base)
            config.version_labels["stable"] = 3
            models.HandleReloadConfigRequest(request, timeout=30)
            assert _predict(prediction, "renamed") == [2.0]  # loaded before the call returned
            with pytest.raises(grpc.RpcError) as err:
                _predict(prediction, "toy")
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            bad = model_management_pb2.ReloadConfigRequest()
            bad.config.model_config_list.config.add().name = "no_base_path"
            with pytest.raises(grpc.RpcError) as err:
                models.HandleReloadConfigRequest(bad, timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _predict(prediction, "renamed") == [2.0]  # a bad reload changes nothing
    finally:
        server.stop()


def test_a_new_version_with_other_answers_takes_over_without_a_failed_request(toy_base):
    """Under load, version 4 (y = 3x) replaces version 3 (y = 2x): no request fails, every
    answer comes from one of the two, and every request sent once version 4 is AVAILABLE gets
    version 4's answer."""
    import threading
    server = _start([ModelSpec("toy", str(toy_base))])
    answers, failures, stop = [], [], threading.Event()
    swapped_at = []

    def load(stub):
        while not stop.is_set():
            sent = time.monotonic()
            try:
                answers.append((sent, _predict(stub)[0]))
            except grpc.RpcError as err:  # every failure counts
                failures.append(err.code())

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            workers = [threading.Thread(target=load, args=(stub,)) for _ in range(3)]
            for worker in workers:
                worker.start()
            _wait(lambda: len(answers) >= 20)
            staging = toy_base.parent / "staging"
            write_toy_model(str(staging), factor=3.0)
            staging.rename(toy_base / "4")  # appears whole, as the Pusher's copy does

            def new_version_available():
                states = {s.version: s.state for s in _states(server.models["toy"])}
                if states.get(4) == "AVAILABLE":
                    swapped_at.append(time.monotonic())
                    return True
                return False
            _wait(new_version_available, 60)
            _wait(lambda: {s.version: s.state for s in _states(server.models["toy"])}.get(3)
                  == "END", 60)
            time.sleep(0.5)
            stop.set()
            for worker in workers:
                worker.join()
    finally:
        stop.set()
        server.stop()
    assert not failures
    assert {value for _, value in answers} == {2.0, 3.0}
    after = [value for sent, value in answers if sent > swapped_at[0]]
    assert after and set(after) == {3.0}
    assert any(value == 2.0 for sent, value in answers if sent < swapped_at[0])


def test_the_server_drops_queued_work_whose_deadline_passed(toy_base):
    """With batching on and one batch thread, a request queued behind a slow one whose
    deadline passes before its turn is dropped by the server: the model never runs it."""
    import threading
    server = _start([ModelSpec("toy", str(toy_base))],
                    batching=BatchingOptions(max_batch_size=1, batch_timeout_micros=0,
                                             num_batch_threads=1))

    def slow(stub, work, timeout):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "toy"
        request.model_spec.signature_name = "slow"
        request.inputs["work"].CopyFrom(tf.make_tensor_proto(np.array([work], np.int64)))
        return stub.Predict(request, timeout=timeout)

    def rows_run(stub):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "toy"
        request.model_spec.signature_name = "calls"
        return int(tf.make_ndarray(stub.Predict(request, timeout=10).outputs["rows"]))

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            slow(stub, 1, 30)  # traces the signature
            assert rows_run(stub) == 1
            started = time.monotonic()
            busy = threading.Thread(target=slow, args=(stub, 400_000, 60))  # ~1.4 s
            busy.start()
            time.sleep(0.2)  # the slow request now holds the only batch thread
            with pytest.raises(grpc.RpcError) as err:
                slow(stub, 1, 0.3)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            busy.join()
            assert time.monotonic() - started > 0.6, "the slow request was not slow enough"
            time.sleep(0.2)
            assert rows_run(stub) == 2  # the warm-up call and the slow one, not the expired
    finally:
        server.stop()


def test_config_file_is_polled(toy_base, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "a" base_path: "{toy_base}" }} }}')
    server = _start([ModelSpec("a", str(toy_base))], config_file=str(config),
                    config_poll_seconds=0.2)
    try:
        config.write_text(f'model_config_list {{ config {{ name: "b" base_path: "{toy_base}" }}'
                          " }")
        _wait(lambda: set(server.models) == {"b"} and server.models["b"].loaded_versions())
    finally:
        server.stop()


def test_health_follows_loaded_models_and_warmup_failures_block_a_version(toy_base, tmp_path):
    empty = tmp_path / "later"
    server = _start([ModelSpec("later", str(empty))])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status(service=""):
                return health.Check(health_pb2.HealthCheckRequest(service=service),
                                    timeout=10).status
            assert status() == health_pb2.HealthCheckResponse.NOT_SERVING
            broken = empty / "3"
            shutil.copytree(toy_base / "3", broken)
            # A warm-up record naming a missing signature: the load must fail, not serve.
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.signature_name = "missing"
            (broken / "assets.extra").mkdir()
            with tf.io.TFRecordWriter(warmup_path(str(broken))) as writer:
                writer.write(log.SerializeToString())
            _wait(lambda: [s.state for s in _states(server.models["later"])] == ["END"])
            assert "missing" in server.models["later"].statuses()[0].error_message
            assert status("later") == health_pb2.HealthCheckResponse.NOT_SERVING
            shutil.copytree(toy_base / "3", empty / "4")
            _wait(lambda: status() == health_pb2.HealthCheckResponse.SERVING)
            assert status("later") == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop()


def _self_signed():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_tls_token_and_unix_socket(toy_base, tmp_path):
    key, cert = _self_signed()
    socket_path = tmp_path / "serving.sock"
    server = _start([ModelSpec("toy", str(toy_base))], ssl=SslSettings(key, cert),
                    token="s3cret", grpc_socket_path=str(socket_path),
                    rest_port=portpicker.pick_unused_port())
    auth = [("authorization", "Bearer s3cret")]
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.encode())
        with grpc.secure_channel(f"localhost:{server.grpc_port}", credentials) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert _predict(stub, metadata=auth) == [2.0]
            with pytest.raises(grpc.RpcError) as err:
                _predict(stub)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError):  # plaintext is refused on the TLS port
                _predict(prediction_service_pb2_grpc.PredictionServiceStub(channel),
                         metadata=auth)
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert _predict(stub, value=4.0, metadata=auth) == [8.0]
        context = ssl.create_default_context(cadata=cert)
        request = urllib.request.Request(
            f"https://localhost:{server.rest_port}/v1/models/toy:predict",
            data=b'{"instances": [1.5]}', headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            assert json.loads(response.read()) == {"predictions": [3.0]}
    finally:
        server.stop()


def test_config_reload_is_off_unless_allowed_or_token_only(toy_base, tmp_path):
    """Before: anyone reaching the port could point a model at another folder. Now the reload
    API is refused unless --allow_config_reload, or a token guards it."""
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add()
    config.name, config.base_path = "other", str(toy_base)
    server = _start([ModelSpec("toy", str(toy_base))])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                models.HandleReloadConfigRequest(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "--allow_config_reload" in err.value.details()
        assert set(server.models) == {"toy"}
    finally:
        server.stop()
    server = _start([ModelSpec("toy", str(toy_base))], token="s3cret")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                models.HandleReloadConfigRequest(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            models.HandleReloadConfigRequest(request, timeout=60,
                                             metadata=[("authorization", "Bearer s3cret")])
        assert set(server.models) == {"other"}
    finally:
        server.stop()


def test_an_idle_tls_connection_does_not_block_other_https_clients(toy_base):
    """Before: the TLS handshake ran in the accept loop, so one TCP connection that never
    started its handshake blocked every HTTPS client until it closed."""
    import socket
    key, cert = _self_signed()
    server = _start([ModelSpec("toy", str(toy_base))], ssl=SslSettings(key, cert),
                    rest_port=portpicker.pick_unused_port())
    idle = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
    try:
        context = ssl.create_default_context(cadata=cert)
        start = time.monotonic()
        with urllib.request.urlopen(f"https://localhost:{server.rest_port}/v1/models/toy",
                                    timeout=5, context=context) as response:
            assert response.status == 200
        assert time.monotonic() - start < 5
    finally:
        idle.close()
        server.stop()
