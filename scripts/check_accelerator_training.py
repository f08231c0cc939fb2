#!/usr/bin/env python
"""Accelerator check (not a unit test): trains each family through the real trainer glue on
whatever devices the Keras backend sees, and fails loudly when a GPU path is broken.

Usage (on a GPU machine without TensorFlow: ``KERAS_BACKEND=jax``):
    python scripts/check_accelerator_training.py [--families category,attributes,brand]
        [--image-size 64] [--mixed-precision] [--data-parallel] [--json-out F]

Every registered family with an ``accelerator_case`` (default: all of them) is checked: its
model is built and compiled by its own trainer code (the same builder and compiler as its
``run_fn``) and trained by ``trainer.training.fit`` in hybrid transfer mode (one frozen epoch,
then fine-tuning) on random in-memory images. Checked:
- the backend's GPU count, and with ``--mixed-precision`` the ``mixed_float16`` policy that
  ``training.set_mixed_precision`` sets on GPUs: float16 compute in the backbone, float32
  variables and float32 model outputs, a loss-scaling optimizer;
- phase 1 trains fewer weights than phase 2 (the frozen backbone thaws);
- finite losses, and predictions that are finite probabilities;
- ``--data-parallel``: Keras' ``DataParallel`` over every device of the default type (what
  ``training.distribution_scope`` sets on JAX with several GPUs), even when there is one.
The exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pipeline_config  # noqa: E402
from trainer import training, transfer  # noqa: E402
from trainer.families import registry  # noqa: E402
from trainer.families.spec import resolve  # noqa: E402


class TrainableCounter(keras.callbacks.Callback):
    """Records how many weights train at the start of each epoch."""

    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(len(self.model.trainable_weights))


def family_config(family: str, batch_size: int, mixed_precision: bool):
    base = pipeline_config.get_config("default").family(family)
    # Random weights: the check is about the training glue and devices, and a GPU machine may
    # lack the packages that ship the pretrained presets.
    return dataclasses.replace(base, weights="none", transfer_mode="hybrid", epochs=2,
                               frozen_epochs=1,
                               fine_tune_layers=20, mixed_precision=mixed_precision,
                               batch_size=batch_size, early_stopping_start_epoch=0)


def batches(case, rows: int, batch_size: int, seed: int):
    x, y = case.batch(np.random.default_rng(seed), rows)
    while True:
        for start in range(0, len(x) - batch_size + 1, batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]


def check_family(spec, args) -> dict:
    config = family_config(spec.name, args.batch_size, args.mixed_precision)
    keras.backend.clear_session()
    training.set_mixed_precision(config.mixed_precision)
    case = resolve(spec.accelerator_case)(config, args.image_size)
    model = case.model
    eval_x, eval_y = case.batch(np.random.default_rng(2), args.batch_size * 2)
    counter = TrainableCounter()
    started = time.perf_counter()
    history = training.fit(
        model, case.compile_model, batches(case, args.batch_size * args.steps, args.batch_size,
                                           1), (eval_x, eval_y),
        phases=transfer.phases(config.transfer_mode, config.epochs, config.fine_tune_layers,
                               config.frozen_epochs, config.fine_tune_learning_rate),
        steps_per_epoch=args.steps, monitor="val_loss", mode="min", callbacks=(counter,))
    train_s = time.perf_counter() - started
    scores = np.asarray(model.predict(eval_x, batch_size=args.batch_size, verbose=0))
    backbone = transfer.find_backbone(model)
    conv = next(layer for layer in backbone.layers
                if isinstance(layer, keras.layers.Conv2D))
    policy = keras.mixed_precision.global_policy().name
    mixed_expected = args.mixed_precision and training.gpu_count() > 0
    checks = {
        "policy": policy == ("mixed_float16" if mixed_expected else "float32"),
        "backbone_compute_dtype": conv.compute_dtype == (
            "float16" if mixed_expected else "float32"),
        "variables_float32": conv.kernel.dtype == "float32",
        "outputs_float32": str(model.output.dtype) == "float32",
        "loss_scaling": isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        == mixed_expected,
        "two_phases": len(counter.per_epoch) == 2,
        "frozen_then_thawed": len(counter.per_epoch) == 2
        and counter.per_epoch[0] < counter.per_epoch[1],
        "finite_losses": all(math.isfinite(v) for v in history["loss"] + history["val_loss"]),
        "finite_probabilities": bool(np.isfinite(scores).all() and (scores >= 0).all()
                                     and (scores <= 1).all()),
    }
    if case.probabilities_sum_to_one:
        checks["softmax_sums_to_1"] = bool(np.allclose(scores.sum(-1), 1.0, atol=1e-3))
    return {"family": spec.name, "ok": all(checks.values()), "checks": checks,
            "trainable_weights_per_epoch": counter.per_epoch,
            "loss": history["loss"], "val_loss": history["val_loss"],
            "train_seconds": round(train_s, 1), "policy": policy,
            "conv_compute_dtype": conv.compute_dtype}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="",
                        help="comma-separated (default: every family with an accelerator case)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--data-parallel", action="store_true",
                        help="Keras DataParallel over every device of the default type")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    header = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "gpus": training.gpu_count()}
    if args.data_parallel:
        if keras.backend.backend() != "jax":
            parser.error("--data-parallel needs the JAX backend (Keras' distribution API)")
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        header["data_parallel_devices"] = devices
    print(json.dumps(header), flush=True)
    failed = False
    names = [n for n in args.families.split(",") if n] or [
        spec.name for spec in registry.family_specs() if spec.accelerator_case]
    for name in names:
        spec = registry.get(name)
        if not spec.accelerator_case:
            parser.error(f"family {name} has no accelerator case")
        result = check_family(spec, args)
        result.update(header)
        failed |= not result["ok"]
        print(json.dumps(result), flush=True)
        if args.json_out:
            with open(args.json_out, "a") as handle:
                handle.write(json.dumps(result) + "\n")
    print("accelerator training check:", "FAILED" if failed else "ok", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
