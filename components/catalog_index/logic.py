"""Embedding a catalog with a served model and indexing it (no TFX here; knows no family)."""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from schemas import catalog_index

RECALL_QUERIES = 200
RECALL_K = 10


def read_items(data_patterns, limit: Optional[int] = None) -> tuple:
    """``(serialized records, items)`` of every record matching the globs; an item is
    ``{"id", "uri", "caption", "category"}``, its ``uri`` the record file and position
    (``file#n``)."""
    import tensorflow as tf

    from trainer.export.records import catalog_item, record_dataset
    records, items = [], []
    for pattern in data_patterns:
        for path in sorted(tf.io.gfile.glob(pattern)):
            for position, record in enumerate(record_dataset(path)):
                serialized = record.numpy()
                item = catalog_item(serialized)
                records.append(serialized)
                items.append({"id": item["id"] or f"{path}#{position}",
                              "uri": f"{path}#{position}", "caption": item["caption"],
                              "category": item["category"]})
                if limit is not None and len(records) >= limit:
                    return records, items
    return records, items


def embed(export_dir: str, records: list, signature: str, input_name: str, output: str,
          batch_size: int = 64, progress: Optional[Callable] = None) -> np.ndarray:
    """The ``output`` of ``signature`` of the SavedModel at ``export_dir`` on the records."""
    import tensorflow as tf

    from schemas.serving_api import register_text_ops
    from trainer.export.records import call_in_batches
    register_text_ops()
    function = tf.saved_model.load(export_dir).signatures[signature]
    return call_in_batches(function, input_name, records, output, batch_size,
                           progress).astype(np.float32)


def build_index(export_dir: str, data_patterns, folder: str, signature: str, input_name: str,
                output: str, kind: str = "hnsw", seed: int = 0, **index_options) -> dict:
    """Embeds the records with the model at ``export_dir``, indexes them into ``folder`` and
    returns the manifest (with recall@10 against exact search on up to ``RECALL_QUERIES``
    catalog embeddings as queries)."""
    started = time.perf_counter()
    records, items = read_items(data_patterns)
    if not records:
        raise ValueError(f"no records match {list(data_patterns)}")
    embeddings = embed(export_dir, records, signature, input_name, output)
    embedded = time.perf_counter()
    index = catalog_index.build(embeddings, kind, **index_options)
    built = time.perf_counter()
    rng = np.random.default_rng(seed)
    sample = embeddings[rng.choice(len(embeddings), min(RECALL_QUERIES, len(embeddings)),
                                   replace=False)]
    manifest = {"model_dir": export_dir, "kind": kind, "items": len(items),
                "dim": int(embeddings.shape[1]),
                "signature": signature, "embed_seconds": round(embedded - started, 3),
                "build_seconds": round(built - embedded, 3),
                f"recall_at_{RECALL_K}_vs_exact": catalog_index.recall_against_exact(
                    index, embeddings, sample, RECALL_K),
                "options": index_options}
    catalog_index.write(folder, index, items, manifest)
    return manifest
