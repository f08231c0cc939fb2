"""Feature extraction with a frozen trunk computed once: the frozen part of a model runs over the
training and evaluation images a single time, and only the trainable head trains, for as many
epochs as it likes, on the cached features (pure Keras 3 and tf.data; knows no family).

A model offers this by naming the tensor where its frozen trunk ends: a layer called
``trainer.transfer.FEATURES_LAYER`` (an ``Identity``). Everything before it must be frozen in a
feature-extraction phase; everything after it is the head, which shares its layers (and so its
weights) with the model. Augmentation cannot run inside a cached trunk, so each of the cache's
``views`` beyond the first holds the training images once more through the model's
``augmentation`` block in training mode.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from trainer.augmentation import LAYER_NAME as AUGMENTATION_LAYER
from trainer.transfer import FEATURES_LAYER


@dataclasses.dataclass
class FeatureCaching:
    """What caching needs beyond the model: ``train_once`` (the labelled training examples,
    read once in order, batched), the number of ``views`` (1: the images as they are), the batch
    size of the head's training, its ``steps_per_epoch`` (0: one pass over the cached
    examples), whether to draw classes equally often (``balance``) and the shuffling seed."""

    train_once: object
    views: int
    batch_size: int
    steps_per_epoch: int = 0
    balance: bool = False
    seed: int = 0


def supports(model: keras.Model) -> bool:
    """Whether ``model`` names where its trunk ends."""
    return any(layer.name == FEATURES_LAYER for layer in model.layers)


def split(model: keras.Model) -> tuple:
    """``(extractor, head)``: images → trunk features, and trunk features → the model's outputs,
    sharing the model's layers."""
    features = model.get_layer(FEATURES_LAYER).output
    # A single output stays a tensor, not a one-element list: Keras compiles the two differently.
    outputs = model.outputs[0] if len(model.outputs) == 1 else model.outputs
    return (keras.Model(model.inputs, features, name=f"{model.name}_trunk"),
            keras.Model(features, outputs, name=f"{model.name}_head"))


def _augmentation(model: keras.Model):
    for layer in model.layers:
        if layer.name == AUGMENTATION_LAYER:
            return layer
    return None


def extract(extractor: keras.Model, dataset, views: int = 1, augmentation=None) -> tuple:
    """``(features, labels)`` numpy arrays over one pass of ``dataset`` per view; views after the
    first go through ``augmentation`` (training mode) first. Features are stored as float16
    (half the memory; a head trains on them as well)."""
    if views > 1 and augmentation is None:
        raise ValueError("cached augmented views need the model's augmentation block")

    @tf.function(reduce_retracing=True)
    def run(images, augment: bool):
        if augment:
            images = augmentation(images, training=True)
        return extractor(images, training=False)

    features, labels = [], []
    for view in range(views):
        for images, batch_labels in dataset:
            features.append(tf.cast(run(images, view > 0), tf.float16).numpy())
            labels.append(batch_labels.numpy())
    if not features:
        raise ValueError("no labelled examples to extract features from")
    return np.concatenate(features), np.concatenate(labels)


def _balanced_indices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices that repeat each class's examples up to the largest class's count."""
    classes = np.unique(labels)
    largest = max(int((labels == c).sum()) for c in classes)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), largest,
                                      replace=(labels == c).sum() < largest)
                           for c in classes])


def in_memory(features: np.ndarray, labels: np.ndarray, batch_size: int, *, training: bool,
              seed: int = 0):
    """A tf.data pipeline over cached arrays: shuffled and repeated for training, one ordered
    pass otherwise."""
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if training:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class CachedData:
    """The head, its training and evaluation datasets and its steps per epoch."""

    head: keras.Model
    train: object
    evaluation: object
    steps_per_epoch: int


def prepare(model: keras.Model, caching: FeatureCaching, evaluation,
            class_weight: Optional[dict] = None) -> CachedData:
    """Runs the frozen trunk once over the training (``caching.views`` times) and evaluation
    data; returns the head and in-memory datasets of its features."""
    extractor, head = split(model)
    train_features, train_labels = extract(extractor, caching.train_once, caching.views,
                                           _augmentation(model))
    eval_features, eval_labels = extract(extractor, evaluation)
    logging.info("cached trunk features: %d training (%d view(s)), %d evaluation, shape %s",
                 len(train_labels), caching.views, len(eval_labels),
                 train_features.shape[1:])
    if caching.balance and class_weight is None and train_labels.ndim == 1:
        # Every class as often as the largest one.
        index = _balanced_indices(train_labels, np.random.default_rng(caching.seed))
        train_features, train_labels = train_features[index], train_labels[index]
    train = in_memory(train_features, train_labels, caching.batch_size, training=True,
                      seed=caching.seed)
    return CachedData(head, train,
                      in_memory(eval_features, eval_labels, caching.batch_size, training=False),
                      caching.steps_per_epoch
                      or max(1, math.ceil(len(train_labels) / caching.batch_size)))
