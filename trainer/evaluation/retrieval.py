"""Retrieval metrics (numpy only): Recall@k and mean reciprocal rank of a query × gallery
similarity matrix against a relevance matrix, and what a random ranking scores on the same
relevance (the honest baseline beside them)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def ranks_of_first_relevant(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """The 1-based rank of each query's best-ranked relevant gallery item: one plus the
    irrelevant items scoring at least as high (a tie with an irrelevant item counts against the
    query, so a constant model gains nothing from ties; relevant items tying with each other,
    such as identical captions, do not); 0 where a query has no relevant item."""
    similarity = np.asarray(similarity, np.float64)
    relevant = np.asarray(relevant, bool)
    best = np.where(relevant, similarity, -np.inf).max(axis=1)
    ranks = 1 + ((similarity >= best[:, None]) & ~relevant).sum(axis=1)
    return np.where(relevant.any(axis=1), ranks, 0)


def recall_and_mrr(similarity: np.ndarray, relevant: np.ndarray,
                   ks: Sequence[int] = (1, 5, 10), prefix: str = "") -> dict:
    """``{prefix}recall_at_{k}`` (share of queries with a relevant item in the top k) and
    ``{prefix}mrr`` over the queries that have a relevant item."""
    ranks = ranks_of_first_relevant(similarity, relevant)
    ranks = ranks[ranks > 0]
    if ranks.size == 0:
        raise ValueError("no query has a relevant gallery item")
    result = {f"{prefix}recall_at_{k}": float(np.mean(ranks <= k)) for k in ks}
    result[f"{prefix}mrr"] = float(np.mean(1.0 / ranks))
    return result


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def chance_recall_and_mrr(relevant: np.ndarray, ks: Sequence[int] = (1, 5, 10),
                          prefix: str = "") -> dict:
    """The expected ``recall_and_mrr`` of a uniformly random ranking on ``relevant``: with
    ``p`` relevant among ``n`` items, Recall@k = 1 - C(n-p, k) / C(n, k) and the first relevant
    item sits at rank r with probability C(n-r, p-1) / C(n, p)."""
    relevant = np.asarray(relevant, bool)
    n = relevant.shape[1]
    counts = relevant.sum(axis=1)
    counts = counts[counts > 0]
    if counts.size == 0:
        raise ValueError("no query has a relevant gallery item")
    recalls = {k: [] for k in ks}
    mrrs = []
    for p in counts.tolist():
        for k in ks:
            recalls[k].append(1.0 if k > n - p else
                              1.0 - math.exp(_log_comb(n - p, k) - _log_comb(n, k)))
        mrrs.append(sum(math.exp(_log_comb(n - r, p - 1) - _log_comb(n, p)) / r
                        for r in range(1, n - p + 2)))
    result = {f"{prefix}recall_at_{k}": float(np.mean(recalls[k])) for k in ks}
    result[f"{prefix}mrr"] = float(np.mean(mrrs))
    return result
