#!/usr/bin/env python
"""Builder benchmark (not a test): training-step throughput of the three family builders vs
plain ``keras.applications`` models of the same shape.

Usage (any Keras 3 backend; on a GPU machine without TensorFlow use ``KERAS_BACKEND=jax``):
    python scripts/benchmark_builders.py [--image-size 224] [--batch-size 32] [--steps 30]

Pairs compared, same input size, batch and optimiser, random data:
- category: ``efficientnet.build_classifier`` (B0, augmentation, dropout, softmax) vs
  ``keras.applications.EfficientNetB0(weights=None, classes=N)``;
- attributes: ``attributes.build_attribute_tagger`` vs ``EfficientNetB0(classes=N,
  classifier_activation="sigmoid")``;
- brand: ``brand_attention.build_brand_classifier`` (frozen VGG16 + spatial attention) vs
  a frozen ``keras.applications.VGG16`` with the same GlobalMaxPooling → Dense(512) → softmax
  head and no attention branch.
It prints images/s for each (median of ``--repeats`` timed runs after a warm-up) and the ratio
ours / plain (goal: at least 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from trainer.models import attributes, brand_attention, efficientnet  # noqa: E402


def plain_vgg_head(num_classes: int, image_size: int) -> keras.Model:
    vgg = keras.applications.VGG16(include_top=False, weights=None,
                                   input_shape=(image_size, image_size, 3))
    vgg.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.GlobalMaxPooling2D()(vgg(x))
    x = keras.layers.Dropout(0.2)(keras.layers.Dense(512, activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def pairs(image_size: int):
    size = image_size
    yield ("category",
           lambda: efficientnet.build_classifier(
               14, image_size=size, augment=efficientnet.augmentation()),
           lambda: keras.applications.EfficientNetB0(weights=None, classes=14,
                                                     input_shape=(size, size, 3)),
           "sparse_categorical_crossentropy", 14)
    yield ("attributes",
           lambda: attributes.build_attribute_tagger(
               60, image_size=size, augment=efficientnet.augmentation()),
           lambda: keras.applications.EfficientNetB0(weights=None, classes=60,
                                                     classifier_activation="sigmoid",
                                                     input_shape=(size, size, 3)),
           "binary_crossentropy", 60)
    yield ("brand",
           lambda: brand_attention.build_brand_classifier(
               6, image_size=size, augment=brand_attention.augmentation()),
           lambda: plain_vgg_head(6, size), "sparse_categorical_crossentropy", 6)


def throughput(build, loss: str, classes: int, image_size: int, batch: int, steps: int,
               repeats: int) -> float:
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * steps, image_size, image_size, 3)).astype("float32")
    if loss == "binary_crossentropy":
        y = (rng.random((batch * steps, classes)) < 0.1).astype("float32")
    else:
        y = rng.integers(0, classes, batch * steps)
    model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        rates.append(batch * steps / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default="category,attributes,brand")
    args = parser.parse_args()
    wanted = set(args.families.split(","))
    from trainer.training import gpu_count
    results = {"backend": keras.backend.backend(), "gpus": gpu_count(),
               "image_size": args.image_size, "batch_size": args.batch_size}
    for name, ours, plain, loss, classes in pairs(args.image_size):
        if name not in wanted:
            continue
        mine = throughput(ours, loss, classes, args.image_size, args.batch_size, args.steps,
                          args.repeats)
        base = throughput(plain, loss, classes, args.image_size, args.batch_size, args.steps,
                          args.repeats)
        results[name] = {"ours_images_per_s": round(mine, 1),
                         "plain_images_per_s": round(base, 1), "ratio": round(mine / base, 3)}
        print(f"{name:<11} ours {mine:9.1f} img/s   plain {base:9.1f} img/s   "
              f"ratio {mine / base:.3f}", flush=True)
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
