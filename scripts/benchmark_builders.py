#!/usr/bin/env python
"""Builder benchmark (not a test): training-step throughput of the three family builders vs
plain ``keras.applications`` models of the same shape.

Usage (any Keras 3 backend; on a GPU machine without TensorFlow use ``KERAS_BACKEND=jax``):
    python scripts/benchmark_builders.py [--image-size 224] [--batch-size 32] [--steps 30]
        [--precisions float32,mixed_float16] [--json-out results.jsonl]

What is timed: Keras' own training step (``model.train_step``: forward, loss, gradients,
optimizer update, metrics) on one batch that already sits on the device, so input loading
does not hide the models' cost. On JAX the step is jitted with its state donated, exactly as
``model.fit`` compiles it; other backends fall back to ``train_on_batch``. Figures are images/s,
the median of ``--repeats`` timed runs of ``--steps`` steps after a compiled warm-up.

Pairs (ours first, then its plain equivalent; same input size, classes, loss and optimiser):
- category: ``efficientnet.build_classifier`` (B0) vs ``keras.applications.EfficientNetB0(
  classes=14)``;
- attributes: ``attributes.build_attribute_tagger`` vs ``EfficientNetB0(classes=60,
  classifier_activation="sigmoid")``;
- brand: ``brand_attention.build_brand_classifier`` vs the same graph written directly with
  ``keras.applications.VGG16``'s layers and core ``keras.layers`` (one flat functional model,
  ``Softmax`` over the flattened map, ``Multiply``): this isolates what our builder's structure
  (two nested VGG parts, custom attention layers) costs. Also printed: a frozen plain VGG16
  with the same head and no attention branch, for the attention branch's own cost.
The builders are timed without their train-time augmentation, as ``keras.applications`` has
none; ``--augmentation`` adds a row per family with it, to show what augmentation costs.
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

from trainer.models import attributes, brand_attention, efficientnet  # noqa: E402

CATEGORIES, ATTRIBUTES, BRANDS = 14, 60, 6


def _frozen_vgg(image_size: int):
    """A frozen random ``keras.applications.VGG16``, a 0..255 image input and its [0, 1] scaling."""
    vgg = keras.applications.VGG16(include_top=False, weights=None,
                                   input_shape=(image_size, image_size, 3))
    vgg.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    return vgg, inputs, keras.layers.Rescaling(1.0 / 255.0)(inputs)


def _brand_head(inputs, features, num_brands: int) -> keras.Model:
    x = keras.layers.GlobalMaxPooling2D()(features)
    x = keras.layers.Dropout(0.2)(keras.layers.Dense(512, activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(num_brands, activation="softmax")(x))


def plain_attention_vgg(num_brands: int, image_size: int) -> keras.Model:
    """The brand study's graph built directly from ``keras.applications.VGG16`` layers."""
    vgg, inputs, x = _frozen_vgg(image_size)
    for layer in vgg.layers[1:]:
        x = layer(x)
        if layer.name == "block4_conv3":
            side = image_size // 8
            a = keras.layers.Conv2D(64, 3, padding="same")(x)
            a = keras.layers.Reshape((side * side,))(keras.layers.Dense(1)(a))
            a = keras.layers.Reshape((side, side, 1))(keras.layers.Softmax()(a))
            x = keras.layers.Multiply()([x, a])
    return _brand_head(inputs, x, num_brands)


def plain_vgg_head(num_brands: int, image_size: int) -> keras.Model:
    """Frozen plain VGG16 with the brand head and no attention branch."""
    vgg, inputs, x = _frozen_vgg(image_size)
    return _brand_head(inputs, vgg(x), num_brands)


def cases(size: int):
    """(family, variant, builder, loss, classes); each family's 'ours' comes first."""
    softmax, sigmoid = "sparse_categorical_crossentropy", "binary_crossentropy"
    yield ("category", "ours", lambda: efficientnet.build_classifier(CATEGORIES, image_size=size),
           softmax, CATEGORIES)
    yield ("category", "plain", lambda: keras.applications.EfficientNetB0(
        weights=None, classes=CATEGORIES, input_shape=(size, size, 3)), softmax, CATEGORIES)
    yield ("category", "ours_augmented", lambda: efficientnet.build_classifier(
        CATEGORIES, image_size=size, augment=efficientnet.augmentation()), softmax, CATEGORIES)
    yield ("attributes", "ours", lambda: attributes.build_attribute_tagger(
        ATTRIBUTES, image_size=size), sigmoid, ATTRIBUTES)
    yield ("attributes", "plain", lambda: keras.applications.EfficientNetB0(
        weights=None, classes=ATTRIBUTES, classifier_activation="sigmoid",
        input_shape=(size, size, 3)), sigmoid, ATTRIBUTES)
    yield ("brand", "ours", lambda: brand_attention.build_brand_classifier(
        BRANDS, image_size=size), softmax, BRANDS)
    yield ("brand", "plain", lambda: plain_attention_vgg(BRANDS, size), softmax, BRANDS)
    yield ("brand", "plain_no_attention", lambda: plain_vgg_head(BRANDS, size), softmax, BRANDS)
    yield ("brand", "ours_augmented", lambda: brand_attention.build_brand_classifier(
        BRANDS, image_size=size, augment=brand_attention.augmentation()), softmax, BRANDS)


def batch(loss: str, classes: int, image_size: int, batch_size: int):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    if loss == "binary_crossentropy":
        y = (rng.random((batch_size, classes)) < 0.1).astype("float32")
    else:
        y = rng.integers(0, classes, batch_size).astype("int32")
    return x, y


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


def throughput(build, loss: str, classes: int, image_size: int, batch_size: int, steps: int,
               repeats: int) -> dict:
    """Median images/s of Keras train steps, and the seconds the first step took (compile)."""
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)
    x, y = batch(loss, classes, image_size, batch_size)
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
    parser.add_argument("--families", default="category,attributes,brand")
    parser.add_argument("--precisions", default="float32",
                        help="comma-separated Keras dtype policies, e.g. float32,mixed_float16")
    parser.add_argument("--augmentation", action="store_true",
                        help="also time the builders with their train-time augmentation")
    parser.add_argument("--json-out", help="append one JSON line per measurement here")
    parser.add_argument("--deadline-s", type=float, default=0,
                        help="start no new measurement after this many seconds (0: none)")
    args = parser.parse_args()
    wanted = set(args.families.split(","))
    began = time.perf_counter()
    from trainer.training import gpu_count
    header = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "gpus": gpu_count(), "image_size": args.image_size,
              "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats}
    print(json.dumps(header), flush=True)
    summary = {}
    precisions = args.precisions.split(",")
    # Every pair in every precision first; the augmentation rows (first precision) last.
    augmented = [case for case in cases(args.image_size) if case[1] == "ours_augmented"]
    plan = [(precision, case) for precision in precisions for case in cases(args.image_size)
            if case[1] != "ours_augmented"]
    if args.augmentation:
        plan += [(precisions[0], case) for case in augmented]
    for precision, (family, variant, build, loss, classes) in plan:
        if family not in wanted:
            continue
        keras.mixed_precision.set_global_policy(precision)
        if args.deadline_s and time.perf_counter() - began > args.deadline_s:
            print(f"deadline: skipped {precision} {family} {variant}", flush=True)
            continue
        keras.backend.clear_session()
        gc.collect()
        result = throughput(build, loss, classes, args.image_size, args.batch_size,
                            args.steps, args.repeats)
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
