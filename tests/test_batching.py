"""Server-side batching and admission control (serving.batching.Runner)."""

import concurrent.futures
import threading
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from serving.batching import BatchingOptions, Runner  # noqa: E402
from serving.errors import DeadlineExceeded, InvalidRequest, Overloaded  # noqa: E402


class Doubler:
    """A signature stand-in: y = 2x, recording each call's batch size; x < 0 is invalid."""

    def __init__(self, gate=None):
        self.sizes = []
        self.gate = gate

    def __call__(self, x):
        if self.gate is not None:
            self.gate.wait(10)
        self.sizes.append(int(x.shape[0]))
        tf.debugging.assert_non_negative(x, message="x must be >= 0")
        return {"y": x * 2.0}


def _x(*values):
    return {"x": np.array(values, np.float32)}


def test_without_batching_calls_run_directly():
    model = Doubler()
    runner = Runner()
    assert runner.run(("m", 1, "s"), model, _x(1.0, 2.0))["y"].tolist() == [2.0, 4.0]
    with pytest.raises(InvalidRequest, match="x must be >= 0"):
        runner.run(("m", 1, "s"), model, _x(-1.0))


def test_concurrent_requests_are_merged_and_split_back():
    model = Doubler()
    seen = []
    runner = Runner(BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000,
                                    num_batch_threads=1),
                    on_batch=lambda name, size: seen.append((name, size)))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: runner.run(("m", 1, "s"), model, _x(i, i + 0.5)),
                                range(4)))
    for i, result in enumerate(results):
        assert result["y"].tolist() == [2.0 * i, 2.0 * i + 1.0]
    assert sum(model.sizes) == 8 and max(model.sizes) > 2  # at least two requests merged
    assert seen and all(name == "m" for name, _ in seen)


def test_allowed_batch_sizes_pad_the_batch():
    model = Doubler()
    runner = Runner(BatchingOptions(max_batch_size=8, batch_timeout_micros=0,
                                    allowed_batch_sizes=(4, 8)))
    assert runner.run(("m", 1, "s"), model, _x(1.0, 2.0, 3.0))["y"].tolist() == [2.0, 4.0, 6.0]
    assert model.sizes == [4]


def test_one_bad_request_does_not_fail_its_batch_mates():
    model = Doubler()
    runner = Runner(BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000,
                                    num_batch_threads=1))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        good = [pool.submit(runner.run, ("m", 1, "s"), model, _x(v)) for v in (1.0, 2.0)]
        bad = pool.submit(runner.run, ("m", 1, "s"), model, _x(-5.0))
        assert [f.result()["y"].tolist() for f in good] == [[2.0], [4.0]]
        with pytest.raises(InvalidRequest):
            bad.result()


def test_batch_above_the_maximum_is_invalid():
    runner = Runner(BatchingOptions(max_batch_size=4))
    with pytest.raises(InvalidRequest, match="exceeds the maximum batch size 4"):
        runner.run(("m", 1, "s"), Doubler(), _x(*range(5)))


def test_a_full_batch_queue_refuses_work():
    gate = threading.Event()
    model = Doubler(gate)
    runner = Runner(BatchingOptions(max_batch_size=2, batch_timeout_micros=0,
                                    max_enqueued_batches=1, num_batch_threads=1))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(runner.run, ("m", 1, "s"), model, _x(1.0, 2.0))
        time.sleep(0.3)  # the first batch is now blocked inside the model
        queued = pool.submit(runner.run, ("m", 1, "s"), model, _x(3.0, 4.0))
        time.sleep(0.3)
        with pytest.raises(Overloaded, match="batch queue is full"):
            runner.run(("m", 1, "s"), model, _x(5.0))
        gate.set()
        assert running.result()["y"].tolist() == [2.0, 4.0]
        assert queued.result()["y"].tolist() == [6.0, 8.0]


def test_too_many_requests_in_flight_are_refused():
    gate = threading.Event()
    runner = Runner(max_concurrent=1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(runner.run, ("m", 1, "s"), Doubler(gate), _x(1.0))
        time.sleep(0.3)
        with pytest.raises(Overloaded, match="1 requests in flight"):
            runner.run(("m", 1, "s"), Doubler(), _x(2.0))
        gate.set()
        assert blocked.result()["y"].tolist() == [2.0]
    assert runner.run(("m", 1, "s"), Doubler(), _x(3.0))["y"].tolist() == [6.0]


def test_expired_requests_are_dropped_not_run():
    gate = threading.Event()
    model = Doubler(gate)
    runner = Runner(BatchingOptions(max_batch_size=1, batch_timeout_micros=0,
                                    num_batch_threads=1))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(runner.run, ("m", 1, "s"), model, _x(1.0))
        time.sleep(0.2)
        with pytest.raises(DeadlineExceeded):
            runner.run(("m", 1, "s"), model, _x(2.0), time.monotonic() + 0.1)
        gate.set()
        first.result()
    time.sleep(0.2)
    assert model.sizes == [1]  # the expired request never reached the model


@pytest.mark.parametrize("kwargs", [dict(max_batch_size=0), dict(batch_timeout_micros=-1),
                                    dict(max_batch_size=8, allowed_batch_sizes=(4, 6))])
def test_invalid_batching_options(kwargs):
    with pytest.raises(ValueError):
        BatchingOptions(**kwargs)


def test_loaded_signatures_are_called_through_their_flat_function(toy_models):
    """The server calls a loaded TF2 signature with its flat inputs and captured handles (no
    per-call structure binding); the answers are the plain call's, and anything that does not
    bind plainly falls back to the plain call."""
    from serving.batching import _bound_call, call_signature
    _, servable = toy_models["toy"].resolve()
    measure = servable.signatures["measure"]
    tensors = {"data": tf.constant([b"ab", b"xyz"]), "weight": tf.constant([1.0, 2.0])}
    bound = _bound_call(measure, tensors)
    assert bound is not None
    plain = measure(**tensors)
    for key in plain:
        np.testing.assert_array_equal(bound[key].numpy(), plain[key].numpy())
    assert _bound_call(measure, {"data": tensors["data"]}) is None           # missing input
    assert _bound_call(measure, {**tensors, "weight": tf.constant([1, 2])}) is None  # dtype
    assert _bound_call(lambda **kwargs: kwargs, tensors) is None             # not a TF function
    assert call_signature(servable.signatures["serving_default"],
                          {"x": np.array([1.5], np.float32)})["y"].tolist() == [3.0]
