"""Pure logic of the offline evaluator: the blessing verdict from a candidate's and a baseline's
metrics (no TF, no TFX).

A candidate is blessed when its blessing metric reaches the absolute threshold and, once a
blessed model of the family exists, beats that model's value on the same records by at least
``min_improvement`` (0: not worse; negative: tolerates that much regression) — TFMA's value and
change thresholds, for families whose metrics TFMA lacks.
"""

from __future__ import annotations

import math
from typing import Optional


def verdict(candidate: dict, baseline: Optional[dict], metric: str, threshold: float,
            min_improvement: float) -> tuple[bool, list]:
    """``(blessed, failures)``: failures name each threshold the candidate missed."""
    if metric not in candidate:
        raise KeyError(f"the evaluation has no blessing metric {metric!r}; it has "
                       f"{sorted(k for k, v in candidate.items() if isinstance(v, float))}")
    value = float(candidate[metric])
    failures = []
    if not math.isfinite(value) or value < threshold:
        failures.append(f"{metric} (value) {value:.4f} fails the threshold >= {threshold:.4f}")
    if baseline is not None and metric in baseline:
        change = value - float(baseline[metric])
        if not change >= min_improvement:
            failures.append(f"{metric} (change vs the blessed baseline) {change:+.4f} fails "
                            f">= {min_improvement:+.4f} (baseline {baseline[metric]:.4f})")
    return not failures, failures
