"""The catalog index: a nearest-neighbour index of a catalog's embeddings (FAISS), versioned
with the embedding model that built it. Shared by the index builder (``components/
catalog_index``), the model server's search endpoint and ``fashion search``.

An index lives in the model version it was built with, ``<version>/assets.extra/
catalog_index/`` (TF Serving ignores ``assets.extra``; the version is what makes a query's
embedding and the index's comparable), as three files: ``index.faiss`` (inner product over
L2-normalised embeddings, i.e. cosine similarity), ``items.jsonl`` (one JSON object per indexed
item, in index order: ``id``, ``uri``, ``caption``, ``category``) and ``manifest.json`` (the
model, its version, the kind of index, its size and build time, and its measured recall
against exact search).

Kinds: ``hnsw`` (FAISS ``IndexHNSWFlat``: approximate, sub-linear) and ``flat`` (FAISS
``IndexFlatIP``: exact; the reference for recall, and the fallback for small catalogs).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from typing import Sequence

import numpy as np

INDEX_FOLDER = "catalog_index"
INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.jsonl"
MANIFEST_FILE = "manifest.json"
KINDS = ("hnsw", "flat")


def index_dir(export_dir: str) -> str:
    """Where the catalog index of the model version at ``export_dir`` lives."""
    return os.path.join(export_dir, "assets.extra", INDEX_FOLDER)


def build(embeddings: np.ndarray, kind: str = "hnsw", hnsw_neighbours: int = 32,
          ef_construction: int = 200, ef_search: int = 128):
    """A FAISS index of ``embeddings`` (rows L2-normalised) by inner product."""
    import faiss
    if kind not in KINDS:
        raise ValueError(f"index kind must be one of {KINDS}, got {kind!r}")
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"expected a non-empty [items, dim] matrix, got {vectors.shape}")
    if kind == "flat":
        index = faiss.IndexFlatIP(vectors.shape[1])
    else:
        index = faiss.IndexHNSWFlat(vectors.shape[1], hnsw_neighbours,
                                    faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    index.add(vectors)
    return index


def exact_search(embeddings: np.ndarray, queries: np.ndarray, k: int) -> tuple:
    """``(scores, ids)`` [queries, k] of the exact top ``k`` by inner product (numpy)."""
    similarity = np.asarray(queries, np.float32) @ np.asarray(embeddings, np.float32).T
    k = min(k, similarity.shape[1])
    ids = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(similarity, ids, axis=1), ids


def recall_against_exact(index, embeddings: np.ndarray, queries: np.ndarray, k: int = 10
                         ) -> float:
    """The share of the exact top ``k`` of each query that ``index`` also returns in its top
    ``k`` (1.0: as good as exact search)."""
    _, exact = exact_search(embeddings, queries, k)
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), exact.shape[1])
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact, found)]
    return float(np.sum(hits) / exact.size)


def write(folder: str, index, items: Sequence[dict], manifest: dict) -> str:
    """Writes the index, its items and manifest to ``folder`` (replaced whole: written beside it
    first, then moved into place, so a reader never sees half an index)."""
    import faiss
    if index.ntotal != len(items):
        raise ValueError(f"the index holds {index.ntotal} vectors but {len(items)} items")
    staging = _staging(folder)
    os.makedirs(staging)
    faiss.write_index(index, os.path.join(staging, INDEX_FILE))
    with open(os.path.join(staging, ITEMS_FILE), "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    with open(os.path.join(staging, MANIFEST_FILE), "w", encoding="utf-8") as handle:
        json.dump(dict(manifest, items=len(items)), handle, indent=2)
    return _move_into_place(staging, folder)


def publish(folder: str, export_dir: str) -> str:
    """Copies the index in ``folder`` into the model version at ``export_dir`` (its
    :func:`index_dir`), replaced whole as :func:`write` does."""
    target = index_dir(export_dir)
    staging = _staging(target)
    shutil.copytree(folder, staging)
    return _move_into_place(staging, target)


def _staging(folder: str) -> str:
    staging = folder.rstrip("/") + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def _move_into_place(staging: str, folder: str) -> str:
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.rename(staging, folder)
    return folder


def query_signature(text=None, image=None) -> tuple:
    """``(signature, input name, value)`` that embeds a query: a text through ``embed_text``,
    image bytes through ``serving_images`` (exactly one of them is given)."""
    from schemas.serving_api import EMBED_TEXT, IMAGES_INPUT, SERVING_IMAGES, TEXT_INPUT
    if text is not None:
        return EMBED_TEXT, TEXT_INPUT, text.encode("utf-8")
    return SERVING_IMAGES, IMAGES_INPUT, image


class CatalogIndex:
    """A loaded catalog index (thread-safe search)."""

    def __init__(self, folder: str):
        import faiss
        if not os.path.exists(os.path.join(folder, MANIFEST_FILE)):
            raise FileNotFoundError(f"no catalog index in {folder}")
        self.folder = folder
        with open(os.path.join(folder, MANIFEST_FILE), encoding="utf-8") as handle:
            self.manifest = json.load(handle)
        with open(os.path.join(folder, ITEMS_FILE), encoding="utf-8") as handle:
            self.items = [json.loads(line) for line in handle if line.strip()]
        self._index = faiss.read_index(os.path.join(folder, INDEX_FILE))
        self._lock = threading.Lock()  # FAISS HNSW search parameters are shared state
        if self._index.ntotal != len(self.items):
            raise ValueError(f"{folder}: the index holds {self._index.ntotal} vectors but "
                             f"{len(self.items)} items")

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return len(self.items)

    def vectors(self) -> np.ndarray:
        """The indexed embeddings, in item order."""
        return self._index.reconstruct_n(0, self._index.ntotal)

    def search(self, queries: np.ndarray, k: int = 10) -> list:
        """Per query, up to ``k`` ``dict(item, score=...)`` best first."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query embeddings have {queries.shape[1]} dimensions, the index "
                             f"{self.dim}")
        k = max(1, min(int(k), len(self.items)))
        with self._lock:
            scores, ids = self._index.search(queries, k)
        return [[dict(self.items[i], score=float(s)) for s, i in zip(row_s, row_i) if i >= 0]
                for row_s, row_i in zip(scores, ids)]
