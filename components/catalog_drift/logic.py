"""Drift between catalog spans: what changed since the last accepted span, and whether the run
may go on.

TFDV compares the label distributions (L-infinity on categorical features, Jensen-Shannon on
numeric ones, with the comparators set on the curated schema). What TFDV cannot see is checked
on the span profiles (:mod:`components.catalog_drift.profile`): resolution, aspect ratio,
brightness and contrast distributions (Jensen-Shannon divergence of fixed-bin histograms), the
corrupt-image rate of the conversion, exact and near-duplicate images within the span and
against earlier accepted spans, classes that appear or vanish, and how far the image content
moved (a domain classifier on pretrained-trunk embeddings: the cross-validated AUC of telling
the new span from the previous one; 0.5 means indistinguishable).

A span that passes becomes part of the history (``history_root/span-N``) the next spans are
compared with; a span that fails does not, so one bad drop never becomes the baseline.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import numpy as np

from components.catalog_drift.profile import SpanProfile

# Conversion rejects that mean a broken image (not a bad label or row).
CORRUPT_REASONS = ("corrupt_image", "empty_file", "unsupported_image", "unreadable_file",
                   "decompression_bomb", "file_too_large", "image_too_small")
# Histogram edges of the image distributions compared with Jensen-Shannon divergence.
IMAGE_DISTRIBUTIONS = {
    "brightness": (lambda c: c["brightness"], np.linspace(0, 255, 33)),
    "contrast": (lambda c: c["contrast"], np.linspace(0, 128, 33)),
    "resolution": (lambda c: np.log2(np.maximum(c["height"].astype(np.float64)
                                                * c["width"], 1)), np.linspace(8, 26, 37)),
    "aspect_ratio": (lambda c: np.log2(np.maximum(c["width"], 1)
                                       / np.maximum(c["height"], 1)), np.linspace(-2, 2, 33)),
}


class DriftFound(RuntimeError):
    """Raised to stop a run whose new span drifted past a threshold."""


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check: its measured ``value``, the ``threshold`` it is held to and what it means."""

    check: str
    value: float
    threshold: float
    failed: bool
    detail: str = ""

    def __post_init__(self):  # numpy scalars in, JSON-ready Python values out
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "failed", bool(self.failed))


def js_divergence(previous: np.ndarray, current: np.ndarray, edges: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) of two samples' histograms over the range of
    ``edges`` (values outside are clipped into the end bins).

    The bins are ``edges``' unless the smaller sample is too small for them: an empty-ish
    histogram of many bins makes two samples of one distribution look different, so it gets
    about √n bins (at least 4)."""
    from scipy.spatial.distance import jensenshannon
    smaller = min(len(previous), len(current))
    bins = int(np.clip(round(np.sqrt(smaller)), 4, len(edges) - 1))
    if bins < len(edges) - 1:
        edges = np.linspace(edges[0], edges[-1], bins + 1)
    clipped = [np.clip(values, edges[0], edges[-1]) for values in (previous, current)]
    p, q = (np.histogram(values, bins=edges)[0].astype(np.float64) for values in clipped)
    if not p.sum() or not q.sum():
        return 0.0
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2)


def image_distribution_findings(previous: SpanProfile, current: SpanProfile,
                                threshold: float) -> list:
    """Resolution, aspect ratio, brightness and contrast: JS divergence against the previous
    span, with the medians that moved."""
    findings = []
    for name, (values, edges) in IMAGE_DISTRIBUTIONS.items():
        before, after = values(previous.columns), values(current.columns)
        divergence = js_divergence(before, after, edges)
        findings.append(Finding(
            name, round(divergence, 4), threshold, divergence > threshold,
            f"median {np.median(before):.3g} → {np.median(after):.3g}"))
    return findings


def _near_duplicate_pairs(queries: np.ndarray, base: np.ndarray, bits: int,
                          same: bool) -> np.ndarray:
    """For each query hash, whether a hash of ``base`` lies within ``bits`` Hamming distance
    (itself excluded when ``same``): faiss's exact binary range search."""
    import faiss
    if not len(queries) or not len(base):
        return np.zeros(len(queries), bool)
    as_bytes = lambda hashes: np.ascontiguousarray(  # noqa: E731
        hashes.astype(">u8").view(np.uint8).reshape(-1, 8))
    index = faiss.IndexBinaryFlat(64)
    index.add(as_bytes(base))
    limits, _, labels = index.range_search(as_bytes(queries), bits + 1)  # radius is exclusive
    found = np.zeros(len(queries), bool)
    for row in range(len(queries)):
        neighbours = labels[limits[row]:limits[row + 1]]
        found[row] = (neighbours != row).any() if same else len(neighbours) > 0
    return found


def duplicate_findings(current: SpanProfile, earlier: list, threshold: float,
                       bits: int) -> list:
    """Exact (same bytes) and near (perceptual hash within ``bits``) duplicates, within the
    span and against the earlier accepted spans: the share of the span's images that have one.
    """
    n = max(len(current), 1)
    sha = current.columns["sha256"]
    _, inverse, counts = np.unique(sha, return_inverse=True, return_counts=True)
    exact_within = counts[inverse] > 1
    earlier_sha = set(np.concatenate([p.columns["sha256"] for p in earlier]).tolist()
                      if earlier else [])
    exact_earlier = np.array([value in earlier_sha for value in sha.tolist()], bool)
    hashes = current.columns["phash"]
    near_within = _near_duplicate_pairs(hashes, hashes, bits, same=True)
    earlier_hashes = (np.concatenate([p.columns["phash"] for p in earlier]) if earlier
                      else np.zeros(0, np.uint64))
    near_earlier = _near_duplicate_pairs(hashes, earlier_hashes, bits, same=False)
    spans = ", ".join(f"span-{p.span}" for p in earlier) or "none"
    within = (exact_within | near_within).sum() / n
    against = (exact_earlier | near_earlier).sum() / n
    return [
        Finding("duplicates_within_span", round(float(within), 4), threshold,
                within > threshold, f"{int(exact_within.sum())} exact, "
                f"{int(near_within.sum())} near (pHash within {bits} bits) of {len(current)}"),
        Finding("duplicates_of_earlier_spans", round(float(against), 4), threshold,
                against > threshold, f"{int(exact_earlier.sum())} exact, "
                f"{int(near_earlier.sum())} near of {len(current)}, against {spans}"),
    ]


def corrupt_finding(current: SpanProfile, threshold: float) -> Optional[Finding]:
    """The share of the drop's inputs rejected as broken images (from the span's conversion
    summary), or None when the span has no summary."""
    inputs = current.conversion.get("inputs")
    if not inputs:
        return None
    reasons = current.conversion.get("reject_reasons", {})
    corrupt = sum(count for reason, count in reasons.items() if reason in CORRUPT_REASONS)
    rate = corrupt / inputs
    named = {r: c for r, c in reasons.items() if r in CORRUPT_REASONS}
    return Finding("corrupt_image_rate", round(rate, 4), threshold, rate > threshold,
                   f"{corrupt} of {inputs} inputs {named or ''}".strip())


def embedding_finding(previous: SpanProfile, current: SpanProfile, threshold: float,
                      seed: int = 0) -> Optional[Finding]:
    """How well a classifier tells the two spans apart from their pretrained-trunk embeddings:
    5-fold cross-validated ROC AUC of a logistic regression on PCA-reduced features (0.5:
    indistinguishable, 1.0: disjoint content). None without embeddings on both sides."""
    if previous.embeddings is None or current.embeddings is None:
        return None
    if min(len(previous.embeddings), len(current.embeddings)) < 10:
        return None
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    count = min(len(previous.embeddings), len(current.embeddings))
    features = np.concatenate([previous.embeddings[:count], current.embeddings[:count]])
    labels = np.repeat([0, 1], count)
    classifier = make_pipeline(StandardScaler(), PCA(min(32, 2 * count // 5 - 1),
                                                     random_state=seed),
                               LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    auc = float(np.mean(cross_val_score(classifier, features, labels, cv=folds,
                                        scoring="roc_auc")))
    return Finding("embedding_drift_auc", round(auc, 4), threshold, auc > threshold,
                   f"a classifier tells span-{current.span} from span-{previous.span} "
                   f"({count} images each) with AUC {auc:.2f}")


def class_presence_findings(previous_counts: dict, current_counts: dict, feature: str,
                            min_expected: float, fail: bool) -> list:
    """Classes (values of a categorical label ``feature``) that vanished or appeared.

    A class vanished when it is absent now although its share of the previous span predicts
    at least ``min_expected`` occurrences in this one (absent by chance with probability about
    exp(-min_expected)): a rare class missing from a small span is not reported."""
    before_total = sum(previous_counts.values()) or 1
    now_total = sum(current_counts.values())
    vanished = sorted(v for v, c in previous_counts.items()
                      if c / before_total * now_total >= min_expected
                      and not current_counts.get(v))
    appeared = sorted(v for v, c in current_counts.items() if c and v not in previous_counts)
    findings = []
    if vanished:
        findings.append(Finding(f"vanished_classes:{feature}", len(vanished), 0, fail,
                                ", ".join(vanished)))
    if appeared:
        findings.append(Finding(f"new_classes:{feature}", len(appeared), 0, False,
                                ", ".join(appeared)))
    return findings


def value_counts(statistics, feature: str) -> dict:
    """``value → count`` of a string feature, from a ``DatasetFeatureStatistics``'s rank
    histogram (every value TFDV saw, up to its bucket limit)."""
    for entry in statistics.features:
        name = entry.path.step[-1] if entry.path.step else entry.name
        if name == feature and entry.HasField("string_stats"):
            return {bucket.label: bucket.sample_count
                    for bucket in entry.string_stats.rank_histogram.buckets}
    return {}


def label_drift_findings(previous_statistics, current_statistics, schema,
                         categorical: tuple, numeric: tuple, linf: float, js: float) -> list:
    """TFDV's drift comparators: L-infinity distance of each categorical label feature's value
    distribution, Jensen-Shannon divergence of each numeric feature's, against the previous
    span's statistics (``DatasetFeatureStatisticsList`` protos)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2
    compared = schema_pb2.Schema()
    compared.CopyFrom(schema)
    features = {feature.name: feature for feature in compared.feature}
    for name in categorical:
        if name in features:
            features[name].drift_comparator.infinity_norm.threshold = linf
    for name in numeric:
        if name in features:
            features[name].drift_comparator.jensen_shannon_divergence.threshold = js
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    anomalies = tfdv.validate_statistics(current_statistics, compared,
                                         previous_statistics=previous_statistics)
    drifted = {}
    for name, info in anomalies.anomaly_info.items():
        for reason in info.reason:
            if "COMPARATOR" in anomalies_pb2.AnomalyInfo.Type.Name(reason.type):
                drifted[name.strip("'")] = reason.description
    findings = []
    for name in categorical + numeric:
        if name not in features:
            continue
        value = _drift_measure(anomalies, name)
        threshold = linf if name in categorical else js
        kind = "L-infinity" if name in categorical else "Jensen-Shannon"
        findings.append(Finding(f"label_drift:{name}", value, threshold, name in drifted,
                                drifted.get(name, f"{kind} within {threshold}")))
    return findings


def _drift_measure(anomalies, feature: str) -> float:
    """The distance TFDV computed for ``feature`` (its drift_skew_info), or 0.0."""
    for info in anomalies.drift_skew_info:
        if info.path.step and info.path.step[-1] == feature:
            return round(max((m.value for m in info.drift_measurements), default=0.0), 4)
    return 0.0


@dataclasses.dataclass
class DriftReport:
    """Everything one validation found; ``failed`` when any finding failed."""

    span: int
    baseline_span: Optional[int]
    earlier_spans: list
    findings: list

    @property
    def failed(self) -> list:
        return [f for f in self.findings if f.failed]

    def to_json(self) -> dict:
        return {"span": self.span, "baseline_span": self.baseline_span,
                "earlier_spans": self.earlier_spans, "passed": not self.failed,
                "failed": [f.check for f in self.failed],
                "findings": [dataclasses.asdict(f) for f in self.findings]}

    def causes(self) -> str:
        """One line per failed check, for the error that stops the run."""
        return "\n  ".join(f"{f.check}: {f.value} > {f.threshold} ({f.detail})"
                           if f.threshold or not f.check.startswith("vanished")
                           else f"{f.check}: {f.detail}" for f in self.failed)


def validate(current: SpanProfile, current_statistics, schema, history: list,
             thresholds: dict, categorical: tuple, numeric: tuple) -> DriftReport:
    """Every check of ``current`` (profile and ``DatasetFeatureStatisticsList``) against the
    accepted ``history`` (``(profile, statistics)`` of earlier spans, oldest first; the last is
    the baseline). ``thresholds``: a ``DriftConfig`` as a dict."""
    t = thresholds
    findings = []
    corrupt = corrupt_finding(current, t["max_corrupt_rate"])
    if corrupt is not None:
        findings.append(corrupt)
    earlier = [profile for profile, _ in history[-t["history_spans"]:]]
    findings += duplicate_findings(current, earlier, t["max_duplicate_rate"],
                                   t["near_duplicate_bits"])
    baseline = history[-1] if history else None
    if baseline is not None:
        previous, previous_statistics = baseline
        findings += image_distribution_findings(previous, current, t["max_image_js"])
        embedding = embedding_finding(previous, current, t["max_embedding_auc"])
        if embedding is not None:
            findings.append(embedding)
        findings += label_drift_findings(previous_statistics, current_statistics, schema,
                                         categorical, numeric, t["max_label_linf"],
                                         t["max_numeric_js"])
        before, after = (statistics.datasets[0] for statistics in
                         (previous_statistics, current_statistics))
        for feature in categorical:
            findings += class_presence_findings(value_counts(before, feature),
                                                value_counts(after, feature), feature,
                                                t["vanished_class_min_expected"],
                                                t["fail_on_vanished_classes"])
    return DriftReport(span=current.span,
                       baseline_span=baseline[0].span if baseline else None,
                       earlier_spans=[p.span for p in earlier], findings=findings)


# --- the history of accepted spans -----------------------------------------------------------

def _span_folder(history_root: str, span: int) -> str:
    return os.path.join(history_root, f"span-{span}")


def read_history(history_root: str, before_span: int) -> list:
    """``(profile, statistics)`` of the accepted spans numbered below ``before_span``, oldest
    first."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2
    if not tf.io.gfile.isdir(history_root):
        return []
    spans = sorted(int(name.strip("/").split("-", 1)[1])
                   for name in tf.io.gfile.listdir(history_root)
                   if name.startswith("span-") and name.strip("/").split("-", 1)[1].isdigit())
    history = []
    for span in (s for s in spans if s < before_span):
        folder = _span_folder(history_root, span)
        if not tf.io.gfile.exists(os.path.join(folder, "ACCEPTED")):
            continue
        statistics = statistics_pb2.DatasetFeatureStatisticsList()
        with tf.io.gfile.GFile(os.path.join(folder, "statistics.pb"), "rb") as handle:
            statistics.ParseFromString(handle.read())
        history.append((SpanProfile.load(os.path.join(folder, "profile.npz")), statistics))
    return history


def accept(history_root: str, profile: SpanProfile, statistics) -> str:
    """Adds a span that passed to the history (``ACCEPTED`` is written last, so a half-written
    folder is never read)."""
    import tensorflow as tf
    folder = _span_folder(history_root, profile.span)
    tf.io.gfile.makedirs(folder)
    profile.save(os.path.join(folder, "profile.npz"))
    with tf.io.gfile.GFile(os.path.join(folder, "statistics.pb"), "wb") as handle:
        handle.write(statistics.SerializeToString())
    with tf.io.gfile.GFile(os.path.join(folder, "ACCEPTED"), "w") as handle:
        handle.write("")
    return folder


# --- the report ------------------------------------------------------------------------------

def write_report(folder: str, report: DriftReport, current: SpanProfile,
                 baseline: Optional[SpanProfile]) -> str:
    """Writes ``drift.json``, the figures and ``index.html`` into ``folder``; returns the HTML
    path."""
    import html

    import tensorflow as tf
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(os.path.join(folder, "drift.json"), "w") as handle:
        json.dump(report.to_json(), handle, indent=2)
    figure = _distribution_figure(current, baseline)
    with tf.io.gfile.GFile(os.path.join(folder, "distributions.png"), "wb") as handle:
        handle.write(figure)
    rows = "\n".join(
        f"<tr class={'failed' if f.failed else 'passed'}><td>{html.escape(f.check)}</td>"
        f"<td>{f.value}</td><td>{f.threshold}</td>"
        f"<td>{'FAILED' if f.failed else 'ok'}</td><td>{html.escape(f.detail)}</td></tr>"
        for f in report.findings)
    verdict = ("the run stops: " + ", ".join(f.check for f in report.failed)
               if report.failed else "no drift past a threshold: the run goes on")
    baseline_text = (f"compared with span-{report.baseline_span}" if report.baseline_span
                     is not None else "the first accepted span: nothing to compare with")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Catalog drift: span-{report.span}</title><style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; }} tr.failed {{ background: #fdd; }}
</style></head><body>
<h1>Catalog drift: span-{report.span}</h1>
<p>{html.escape(baseline_text)}; duplicates checked against
{", ".join(f"span-{s}" for s in report.earlier_spans) or "no earlier span"}.</p>
<p><b>{html.escape(verdict)}</b></p>
<table><tr><th>check</th><th>value</th><th>threshold</th><th></th><th>detail</th></tr>
{rows}</table>
<h2>Image distributions</h2><img src="distributions.png" alt="distributions">
</body></html>"""
    path = os.path.join(folder, "index.html")
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(page)
    return path


def _distribution_figure(current: SpanProfile, baseline: Optional[SpanProfile]) -> bytes:
    """Histograms of each image distribution, baseline span against the new one (PNG)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = {"brightness": "mean luminance (0-255)", "contrast": "luminance std",
              "resolution": "log2(pixels)", "aspect_ratio": "log2(width / height)"}
    figure, axes = plt.subplots(1, len(IMAGE_DISTRIBUTIONS), figsize=(16, 3.4))
    for axis, (name, (values, edges)) in zip(axes, IMAGE_DISTRIBUTIONS.items()):
        if baseline is not None:
            axis.hist(np.clip(values(baseline.columns), edges[0], edges[-1]), bins=edges,
                      density=True, alpha=0.5, label=f"span-{baseline.span}")
        axis.hist(np.clip(values(current.columns), edges[0], edges[-1]), bins=edges,
                  density=True, alpha=0.5, label=f"span-{current.span}")
        axis.set_title(name)
        axis.set_xlabel(labels[name])
        axis.set_ylabel("share of images")
        axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
