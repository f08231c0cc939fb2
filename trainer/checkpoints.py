"""Where a training keeps its resumable checkpoints: a folder keyed by what defines the training.

Every pipeline run writes its Transform output to a new folder, so a key built from file paths
changes on every run and a killed run could never resume. The key here is built from the
family's config and a fingerprint of the training and eval data's *contents* (order-independent,
so Beam's sharding does not change it): a rerun of the same training on the same data finds its
checkpoints, and anything else starts fresh. A training that starts fresh removes the folders of
the family's earlier trainings, which no later run could resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional, Sequence

from absl import logging


def data_fingerprint(file_patterns: Sequence[str], compression_type: str = "GZIP") -> str:
    """A digest of the ``tf.Example`` records matching ``file_patterns`` that ignores their
    order, the files' names and how each was serialized (a feature map's order on the wire
    differs between two Transform runs of the same data): the sum modulo 2^256 of every
    record's SHA-256 over its deterministic serialization, and the record count."""
    import tensorflow as tf
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    total, count = 0, 0
    for record in tf.data.TFRecordDataset(files, compression_type=compression_type).batch(512):
        for serialized in record.numpy():
            canonical = tf.train.Example.FromString(serialized).SerializeToString(
                deterministic=True)
            total = (total + int.from_bytes(hashlib.sha256(canonical).digest(), "big")) \
                % (1 << 256)
            count += 1
    return f"{count}:{total:064x}"


def training_key(config: dict, data: str) -> str:
    """A short digest of a training's config (JSON-able) and data fingerprint."""
    text = json.dumps({"config": config, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoint_dir(root: Optional[str], family: str, config: dict,
                   data_files: Sequence[str]) -> Optional[str]:
    """The checkpoint folder of ``family``'s training of ``config`` on ``data_files`` (train and
    eval patterns), or None when no ``root`` is given. Removes the family's other folders."""
    if not root:
        return None
    import tensorflow as tf
    key = training_key(config, data_fingerprint(data_files))
    family_root = os.path.join(root, family)
    keep = os.path.join(family_root, key)
    if tf.io.gfile.isdir(family_root):
        for name in tf.io.gfile.listdir(family_root):
            stale = os.path.join(family_root, name.rstrip("/"))
            if stale != keep:
                logging.info("removing superseded checkpoints %s", stale)
                tf.io.gfile.rmtree(stale)
    return keep


def for_trainer(fn_args, family: str, key: dict) -> Optional[str]:
    """:func:`checkpoint_dir` of a TFX Trainer's training (``fn_args``: its ``checkpoint_root``
    custom config, train and eval files) keyed by ``key`` (the family's config and whatever
    else changes what it trains)."""
    return checkpoint_dir(fn_args.custom_config.get("checkpoint_root"), family, key,
                          list(fn_args.train_files) + list(fn_args.eval_files))
