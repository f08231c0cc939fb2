#!/usr/bin/env python
"""Builder benchmark (not a test): training-step throughput of every registered family's builder
vs a plain ``keras.applications`` model of the same shape.

Usage (any Keras 3 backend; on a GPU machine without TensorFlow use ``KERAS_BACKEND=jax``):
    python scripts/benchmark_builders.py [--image-size 224] [--batch-size 32] [--steps 30]
        [--precisions float32,mixed_float16] [--families ...] [--json-out results.jsonl]

What is timed: Keras' own training step (``model.train_step``: forward, loss, gradients,
optimizer update, metrics) on one batch that already sits on the device, so input loading
does not hide the models' cost. On JAX the step is jitted with its state donated, exactly as
``model.fit`` compiles it; other backends fall back to ``train_on_batch``. Figures are images/s,
the median of ``--repeats`` timed runs of ``--steps`` steps after a compiled warm-up.

Each family with ``benchmark_cases`` in its spec gives its rows (``trainer.checks.BenchmarkCase``):
``ours`` first, then plain equivalents (same input size, classes, loss and optimiser; e.g. the
brand study's graph written directly with ``keras.applications.VGG16``'s layers, and a VGG16
with the same head but no attention branch), and ``ours_augmented`` (with train-time
augmentation, which ``keras.applications`` has none of), timed only with ``--augmentation``.
Goal: ratio ours / plain at least 0.95.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from trainer.families import registry  # noqa: E402
from trainer.families.spec import resolve  # noqa: E402


def _jax_steps(model: keras.Model, x, y):
    """A function running ``n`` of the model's jitted train steps on a device-resident batch."""
    import jax
    # Builds the model, optimizer and metrics and jits ``train_step`` (state donated), exactly
    # as ``fit`` does; the loop below reuses that compiled function.
    model.train_on_batch(x, y)
    holder = {"state": (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )}
    data = (jax.device_put(x), jax.device_put(y), None)

    def run(n: int) -> None:
        state = holder["state"]
        logs = None
        for _ in range(n):
            logs, state = model.train_function(state, iter([data]))
        jax.block_until_ready((logs, state))
        holder["state"] = state
    return run


def _eager_steps(model: keras.Model, x, y):
    def run(n: int) -> None:
        for _ in range(n):
            model.train_on_batch(x, y)
    return run


def throughput(case, batch_size: int, steps: int, repeats: int) -> dict:
    """Median images/s of Keras train steps, and the seconds the first step took (compile)."""
    model = case.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=case.loss)
    x, y = case.batch(np.random.default_rng(0), batch_size)
    started = time.perf_counter()
    run = (_jax_steps if keras.backend.backend() == "jax" else _eager_steps)(model, x, y)
    run(1)
    compile_s = time.perf_counter() - started
    run(2)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        rates.append(batch_size * steps / (time.perf_counter() - start))
    return {"images_per_s": round(statistics.median(rates), 1),
            "runs_images_per_s": [round(r, 1) for r in rates],
            "first_steps_s": round(compile_s, 1), "params": model.count_params(),
            "trainable_params": sum(int(np.prod(v.shape)) for v in model.trainable_variables)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default="",
                        help="comma-separated (default: every family with benchmark cases)")
    parser.add_argument("--precisions", default="float32",
                        help="comma-separated Keras dtype policies, e.g. float32,mixed_float16")
    parser.add_argument("--augmentation", action="store_true",
                        help="also time the builders with their train-time augmentation")
    parser.add_argument("--json-out", help="append one JSON line per measurement here")
    parser.add_argument("--deadline-s", type=float, default=0,
                        help="start no new measurement after this many seconds (0: none)")
    args = parser.parse_args()
    wanted = [n for n in args.families.split(",") if n] or [
        spec.name for spec in registry.family_specs() if spec.benchmark_cases]
    began = time.perf_counter()
    from trainer.training import gpu_count
    header = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "gpus": gpu_count(), "image_size": args.image_size,
              "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats}
    print(json.dumps(header), flush=True)
    summary = {}
    precisions = args.precisions.split(",")
    cases = [(name, case) for name in wanted
             for case in resolve(registry.get(name).benchmark_cases)(args.image_size)]
    # Every pair in every precision first; the augmentation rows (first precision) last.
    plan = [(precision, name, case) for precision in precisions for name, case in cases
            if not case.variant.endswith("_augmented")]
    if args.augmentation:
        plan += [(precisions[0], name, case) for name, case in cases
                 if case.variant.endswith("_augmented")]
    for precision, family, case in plan:
        variant = case.variant
        keras.mixed_precision.set_global_policy(precision)
        if args.deadline_s and time.perf_counter() - began > args.deadline_s:
            print(f"deadline: skipped {precision} {family} {variant}", flush=True)
            continue
        keras.backend.clear_session()
        gc.collect()
        result = throughput(case, args.batch_size, args.steps, args.repeats)
        result.update(header, family=family, variant=variant, precision=precision)
        key = (precision, family)
        summary.setdefault(key, {})[variant] = result["images_per_s"]
        ours = summary[key].get("ours")
        ratio = f"{result['images_per_s'] / ours:.3f}x ours" \
            if ours and variant != "ours" else ""
        print(f"{precision:<14} {family:<11} {variant:<19} {result['images_per_s']:9.1f} "
              f"img/s  (first steps {result['first_steps_s']:5.1f} s)  {ratio}", flush=True)
        if args.json_out:
            with open(args.json_out, "a") as handle:
                handle.write(json.dumps(result) + "\n")
    print("ratios (ours / plain, goal >= 0.95):")
    for (precision, family), rates in summary.items():
        if "ours" in rates and "plain" in rates:
            print(f"  {precision:<14} {family:<11} {rates['ours'] / rates['plain']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
