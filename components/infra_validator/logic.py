"""Pure logic of the infra validation step: can the model server load and answer this model?

Before a model is pushed, :func:`validate` starts the model server (``python -m serving``, what
``fashion serve`` runs) in a subprocess on the candidate SavedModel (copied as version 1 of a
temporary base path, exactly as a server would see it after the push), waits until the version
is AVAILABLE (which includes replaying its warm-up requests), sends one Predict built from real
eval records as the family's :class:`Probe` says (which signature, fed the serialized examples
or their images) and checks the answer with the probe's check (by default: one finite row per
record in every float output). Any failure (the server does not start, the version does not
load, the request fails, the outputs are malformed) gives a refusal with the reason and the
server's log.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

MODEL_NAME = "candidate"


@dataclasses.dataclass(frozen=True)
class Probe:
    """How to ask the candidate (``trainer.families.spec.InfraProbe``, as parameters)."""

    signature_name: str
    input_name: str
    input_kind: str  # "examples", "images" or "texts" (trainer.families.spec)
    check: str  # dotted path of check(outputs, rows)

    def inputs(self, records: list) -> dict:
        """The request's inputs built from serialized eval records."""
        from trainer.export.records import probe_inputs
        return {self.input_name: np.array(probe_inputs(self.input_kind, records), dtype=object)}


@dataclasses.dataclass(frozen=True)
class InfraReport:
    """The outcome of one infra validation."""

    blessed: bool
    reason: str
    seconds: float
    examples: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_finite_rows(outputs: dict, examples: int) -> None:
    """Raises ValueError unless every float output has one finite row per example."""
    floats = {k: np.asarray(v) for k, v in outputs.items()
              if np.asarray(v).dtype.kind == "f"}
    if not floats:
        raise ValueError(f"no float output among {sorted(outputs)}")
    for name, value in floats.items():
        if value.ndim == 0 or value.shape[0] != examples:
            raise ValueError(f"output {name!r} has shape {list(value.shape)}, expected "
                             f"{examples} rows")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"output {name!r} holds NaN or infinite values")


def _free_port() -> int:
    import portpicker
    return portpicker.pick_unused_port()


def validate(model_dir: str, examples: list, probe: Probe,
             timeout_seconds: float = 180.0) -> InfraReport:
    """Serves ``model_dir`` in a subprocess and checks one Predict on ``examples`` (serialized
    eval records) made and checked as ``probe`` says."""
    from schemas.serving_api import is_complete_saved_model
    from serving.client import ServingClient, ServingClientError
    from trainer.families.spec import resolve
    start = time.monotonic()
    if not examples:
        return InfraReport(False, "no eval examples to send", 0.0)
    check = resolve(probe.check)
    if not is_complete_saved_model(model_dir):
        return InfraReport(False, f"{model_dir} is not a complete SavedModel (graph and every "
                           "variables shard)", 0.0)
    with tempfile.TemporaryDirectory(prefix="infra-validation-") as scratch:
        base = os.path.join(scratch, MODEL_NAME)
        shutil.copytree(model_dir, os.path.join(base, "1"))
        log_path = os.path.join(scratch, "server.log")
        port = _free_port()
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "serving", f"--model_name={MODEL_NAME}",
                 f"--model_base_path={base}", f"--port={port}", "--rest_api_port=0"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with ServingClient(f"127.0.0.1:{port}", timeout=60.0) as client:
                deadline = time.monotonic() + timeout_seconds
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"the server exited with code {process.returncode}")
                    try:
                        states = client.status(MODEL_NAME)
                    except (ServingClientError, OSError):
                        states = []
                    if any(s["state"] == "AVAILABLE" for s in states):
                        break
                    failed = [s for s in states if s["state"] == "END" and s["error"]]
                    if failed:
                        raise RuntimeError(f"the version did not load: {failed[0]['error']}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not AVAILABLE after {timeout_seconds:.0f} s")
                    time.sleep(0.5)
                outputs = client.predict(MODEL_NAME, probe.inputs(examples),
                                         probe.signature_name)
                check(outputs, len(examples))
            reason = (f"served by the model server and answered {len(examples)} eval records "
                      f"({probe.input_kind}) through {probe.signature_name}")
            blessed = True
        except (RuntimeError, TimeoutError, ValueError, ServingClientError, OSError) as err:
            blessed = False
            with open(log_path) as log:
                tail = "".join(log.readlines()[-15:])
            reason = f"{type(err).__name__}: {err}\nserver log (last lines):\n{tail}"
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return InfraReport(blessed, reason, round(time.monotonic() - start, 1), len(examples))
