"""Running signatures: server-side batching of concurrent requests, with bounded queues.

:class:`Runner` is the one place requests reach a model. Without batching a request runs in the
caller's thread (or, when it has a deadline, on a worker so the caller can give up in time).
With batching (``--enable_batching``), requests for the same signature and inner shapes are
queued and merged along dimension 0 into batches of at most ``max_batch_size`` rows; a batch
runs when it is full or ``batch_timeout_micros`` after its first request arrived, and the
outputs are split back per request. Everything is bounded: in-flight requests
(``max_concurrent``), queued rows (``max_enqueued_batches × max_batch_size``) and the rows of one
request (``max_batch_size``); beyond a bound the request is refused (RESOURCE_EXHAUSTED / 429)
rather than queued. Requests whose deadline passed while queued are dropped before they run,
and a batch that fails on one bad input is rerun request by request so the others still get
their answers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import re
import threading
import time
from typing import Callable, Optional

import numpy as np

from serving.errors import Cancelled, DeadlineExceeded, InvalidRequest, Overloaded

WORKER_IDLE_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's ``BatchingParameters`` (the ``--batching_parameters_file`` fields)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    max_enqueued_batches: int = 16
    num_batch_threads: int = max(2, os.cpu_count() or 1)
    allowed_batch_sizes: tuple = ()

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError("batch_timeout_micros must be >= 0")
        sizes = list(self.allowed_batch_sizes)
        if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size
                      or sizes[0] < 1):
            raise ValueError("allowed_batch_sizes must increase and end with max_batch_size "
                             f"({self.max_batch_size}), got {sizes}")

    def padded_size(self, rows: int) -> int:
        """The batch size a batch of ``rows`` runs at (the next allowed size, if any)."""
        return next((s for s in self.allowed_batch_sizes if s >= rows), rows)


_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def tf_error_message(err: Exception) -> str:
    """The one line of a TF runtime error a client needs (not its graph stack trace)."""
    text = getattr(err, "message", None) or str(err)
    for line in text.splitlines():
        line = _TF_NOISE.sub("", line).strip()
        if line and not line.startswith(("Graph execution error", "Detected at node", "File ",
                                         "<stack traces unavailable>",
                                         "[[")) and not line.endswith("(most recent call last):"):
            return line
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _bound_call(function, tensors: dict):
    """Calls a loaded TF2 signature straight through ``ConcreteFunction._call_flat``, or
    returns None when ``function`` is not one or the inputs do not bind plainly.

    ``signature(**inputs)`` binds the keyword arguments to the function's structure and maps
    every captured variable through a distribution-strategy check on each call (254 variables
    on the default category model: about 0.5 ms a call). The server already checked names and
    dtypes, and serves no distribution strategy, so it passes the flat inputs and the captured
    handles itself. TensorFlow is pinned (2.16); anything unexpected falls back to the plain
    call."""
    from tensorflow.python.eager.polymorphic_function import concrete_function
    if not isinstance(function, concrete_function.ConcreteFunction):
        return None
    try:
        args, specs = function.structured_input_signature
    except (AttributeError, TypeError, ValueError):
        return None
    if args or not isinstance(specs, dict) or set(specs) != set(tensors) or any(
            getattr(specs[k], "dtype", None) != tensors[k].dtype for k in specs):
        return None
    flat = [tensors[name] for name in sorted(specs)]  # nest.flatten's order for a dict
    return concrete_function.ConcreteFunction._call_flat(  # noqa: SLF001
        function, flat, function.captured_inputs)


class Cancellation:
    """Stops the model call of a request whose caller has gone.

    :meth:`cancel` may be called from any thread (a gRPC call's termination callback, the REST
    timeout); a TensorFlow function running for the request then aborts between two of its ops,
    and work not started yet is skipped. (TF1 session bundles run to the end.)"""

    def __init__(self):
        from tensorflow.python.eager import cancellation
        self.manager = cancellation.CancellationManager()

    def cancel(self) -> None:
        self.manager.start_cancel()

    @property
    def cancelled(self) -> bool:
        return self.manager.is_cancelled


_call_local = threading.local()
_cancellation_installed = threading.Lock()
_cancellation_ready = False


def _install_thread_local_cancellation() -> None:
    """TensorFlow reads the cancellation manager of an eager function call from one
    process-wide variable (``cancellation.context()``), which concurrent requests would share.
    This makes it per thread: the calling thread's manager if it set one, else TF's own."""
    global _cancellation_ready
    with _cancellation_installed:
        if _cancellation_ready:
            return
        from tensorflow.python.eager import cancellation
        process_wide = cancellation.context

        def context():
            return getattr(_call_local, "manager", None) or process_wide()
        cancellation.context = context
        _cancellation_ready = True


def call_signature(function, inputs: dict, cancellation: Optional[Cancellation] = None) -> dict:
    """Runs a loaded signature on numpy inputs; the outputs come back as numpy arrays. With a
    ``cancellation``, the call is skipped if it was cancelled already and stopped if it is
    cancelled while running (:class:`~serving.errors.Cancelled`)."""
    import tensorflow as tf
    if cancellation is not None:
        if cancellation.cancelled:
            raise Cancelled("the caller is gone; the request was not run")
        _install_thread_local_cancellation()
        _call_local.manager = cancellation.manager
    try:
        tensors = {k: tf.constant(v) for k, v in inputs.items()}
        outputs = _bound_call(function, tensors)
        if outputs is None:
            outputs = function(**tensors)
    except tf.errors.CancelledError:
        raise Cancelled("the caller is gone; the model call was stopped") from None
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
        raise InvalidRequest(tf_error_message(err)) from None
    finally:
        _call_local.manager = None
    # TF2 signatures answer tensors, TF1 session bundles numpy arrays already.
    return {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in outputs.items()}


def batch_rows(inputs: dict) -> Optional[int]:
    """The shared dimension-0 size of the inputs, or None when they cannot be batched."""
    sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else None


class _Task:
    __slots__ = ("inputs", "rows", "deadline", "future", "shape_key", "enqueued", "cancellation")

    def __init__(self, inputs, rows, deadline, cancellation=None):
        self.inputs, self.rows, self.deadline = inputs, rows, deadline
        self.cancellation = cancellation
        self.future = concurrent.futures.Future()
        self.shape_key = tuple((k, a.shape[1:], a.dtype.str) for k, a in sorted(inputs.items()))
        self.enqueued = time.monotonic()


class BatchQueue:
    """The queue and batch threads of one signature of one loaded model version."""

    def __init__(self, function, options: BatchingOptions,
                 on_batch: Optional[Callable[[int], None]] = None):
        self.function = function
        self._options = options
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._tasks: collections.deque[_Task] = collections.deque()
        self._queued_rows = 0
        self._workers = 0

    def submit(self, inputs: dict, deadline: Optional[float],
               cancellation: Optional[Cancellation] = None) -> concurrent.futures.Future:
        rows = batch_rows(inputs)
        if rows is None:
            raise InvalidRequest("with batching on, every input needs the same dimension 0")
        if rows > self._options.max_batch_size:
            raise InvalidRequest(f"batch of {rows} rows exceeds the maximum batch size "
                                 f"{self._options.max_batch_size}")
        task = _Task(inputs, rows, deadline, cancellation)
        capacity = self._options.max_enqueued_batches * self._options.max_batch_size
        with self._cond:
            if self._queued_rows + rows > capacity:
                raise Overloaded(f"the batch queue is full ({self._queued_rows} rows queued, "
                                 f"limit {capacity}); retry later")
            self._tasks.append(task)
            self._queued_rows += rows
            if self._workers < self._options.num_batch_threads:
                self._workers += 1
                threading.Thread(target=self._work, daemon=True,
                                 name="fashion-batch").start()
            self._cond.notify()
        return task.future

    def _take_batch(self) -> Optional[list]:
        """Waits for work and forms one batch (called with the condition held)."""
        idle_since = time.monotonic()
        while not self._tasks:
            if time.monotonic() - idle_since > WORKER_IDLE_SECONDS:
                return None
            self._cond.wait(WORKER_IDLE_SECONDS)
        first = self._tasks[0]
        close_at = first.enqueued + self._options.batch_timeout_micros / 1e6
        while True:
            rows = sum(t.rows for t in self._tasks if t.shape_key == first.shape_key)
            remaining = close_at - time.monotonic()
            if rows >= self._options.max_batch_size or remaining <= 0 or first not in self._tasks:
                break
            self._cond.wait(remaining)
        if not self._tasks:
            return []
        first = self._tasks[0]
        batch, rows, kept = [], 0, collections.deque()
        while self._tasks:
            task = self._tasks.popleft()
            if task.shape_key == first.shape_key and rows + task.rows <= \
                    self._options.max_batch_size:
                batch.append(task)
                rows += task.rows
                self._queued_rows -= task.rows
            else:
                kept.append(task)
        self._tasks = kept
        return batch

    def _work(self):
        while True:
            with self._cond:
                batch = self._take_batch()
                if batch is None:
                    self._workers -= 1
                    return
            now = time.monotonic()
            live = []
            for task in batch:
                if not task.future.set_running_or_notify_cancel():
                    continue  # the caller gave up
                if task.deadline is not None and now >= task.deadline:
                    task.future.set_exception(DeadlineExceeded(
                        "deadline exceeded while the request was queued for batching"))
                    continue
                if task.cancellation is not None and task.cancellation.cancelled:
                    task.future.set_exception(Cancelled(
                        "the caller is gone; the request was not run"))
                    continue
                live.append(task)
            if live:
                self._run(live)

    def _run(self, batch: list) -> None:
        rows = sum(t.rows for t in batch)
        size = self._options.padded_size(rows)
        merged = {}
        for key in batch[0].inputs:
            merged[key] = np.concatenate([t.inputs[key] for t in batch])
            if size > rows:
                merged[key] = np.concatenate(
                    [merged[key], np.repeat(merged[key][:1], size - rows, axis=0)])
        try:
            outputs = call_signature(self.function, merged)
        except InvalidRequest as err:
            if len(batch) == 1:
                batch[0].future.set_exception(err)
            else:  # one bad request must not fail the others: rerun them one by one
                for task in batch:
                    self._run([task])
            return
        except Exception as err:  # noqa: BLE001 (any model failure goes to the callers)
            for task in batch:
                task.future.set_exception(err)
            return
        if self._on_batch:
            self._on_batch(size)
        unsplittable = sorted(k for k, v in outputs.items() if v.ndim == 0 or v.shape[0] != size)
        start = 0
        for task in batch:
            if unsplittable:
                task.future.set_exception(InvalidRequest(
                    f"outputs {unsplittable} have no batch dimension: this signature cannot be "
                    "served with --enable_batching"))
                continue
            task.future.set_result({k: v[start:start + task.rows] for k, v in outputs.items()})
            start += task.rows


class Runner:
    """Admission control, optional batching and deadlines for every signature call."""

    def __init__(self, batching: Optional[BatchingOptions] = None, max_concurrent: int = 64,
                 on_batch: Optional[Callable[[str, int], None]] = None):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.batching = batching
        self.max_concurrent = max_concurrent
        self._on_batch = on_batch
        self._in_flight = 0
        self._lock = threading.Lock()
        self._queues: dict[tuple, BatchQueue] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="fashion-infer")

    @contextlib.contextmanager
    def _admitted(self):
        with self._lock:
            if self._in_flight >= self.max_concurrent:
                raise Overloaded(f"{self._in_flight} requests in flight (limit "
                                 f"{self.max_concurrent}); retry later")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _queue(self, key: tuple, function) -> BatchQueue:
        with self._lock:
            queue = self._queues.get(key)
            if queue is None or queue.function is not function:
                model_name = key[0]
                queue = BatchQueue(function, self.batching,
                                   (lambda size: self._on_batch(model_name, size))
                                   if self._on_batch else None)
                self._queues[key] = queue
            return queue

    def prune(self, live_keys: set) -> None:
        """Forgets the batch queues of versions no longer loaded (so they can be freed)."""
        with self._lock:
            for key in [k for k in self._queues if k[:2] not in live_keys]:
                del self._queues[key]

    def run(self, key: tuple, function, inputs: dict, deadline: Optional[float] = None,
            abandon_at_deadline: bool = True,
            cancellation: Optional[Cancellation] = None) -> dict:
        """Runs ``function`` on ``inputs``; ``key`` is ``(model, version, signature)``.

        ``deadline`` is a ``time.monotonic()`` instant: work not started by then is dropped
        with DeadlineExceeded. With ``abandon_at_deadline`` the caller also stops waiting at the
        deadline (REST's timeout) and the model call is cancelled; without it an unbatched call
        runs in the caller's thread, sparing a thread hand-off, and the transport enforces the
        deadline (as gRPC does, its termination cancelling ``cancellation``). A batched call is
        not stopped for one caller, but a cancelled request is not put into a batch.
        """
        with self._admitted():
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded("deadline exceeded before the request ran")
            if self.batching is not None and batch_rows(inputs) is not None:
                future = self._queue(key, function).submit(inputs, deadline, cancellation)
            elif deadline is None or not abandon_at_deadline:
                return call_signature(function, inputs, cancellation)
            else:
                cancellation = cancellation or Cancellation()
                future = self._pool.submit(call_signature, function, inputs, cancellation)
            try:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                return future.result(timeout=timeout)
            except concurrent.futures.TimeoutError:
                future.cancel()
                if cancellation is not None:
                    cancellation.cancel()  # stops the model call if it started
                raise DeadlineExceeded("deadline exceeded while the model was running") from None
