"""Pure logic of the anomaly gate: read ExampleValidator output and decide whether to stop."""

from __future__ import annotations

import glob
import os


class AnomaliesFound(RuntimeError):
    """Raised to stop a pipeline run whose data violates the curated schema."""


def describe(anomalies_by_split: dict) -> list[str]:
    """One line per anomaly: ``split: feature: short description (details)``.

    ``anomalies_by_split`` maps a split name to a ``tensorflow_metadata`` ``Anomalies`` proto.
    """
    lines = []
    for split in sorted(anomalies_by_split):
        anomalies = anomalies_by_split[split]
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(r.description for r in info.reason) or info.description
            lines.append(f"{split}: {feature}: {info.short_description} ({reasons})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"{split}: <dataset>: {info.short_description} ({info.description})")
    return lines


def read_anomalies(uri: str) -> dict:
    """Reads every split's anomalies written by ExampleValidator under artifact ``uri``."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    found = {}
    for path in sorted(glob.glob(os.path.join(uri, "Split-*", "SchemaDiff.pb"))):
        split = os.path.basename(os.path.dirname(path))[len("Split-"):]
        anomalies = anomalies_pb2.Anomalies()
        with open(path, "rb") as handle:
            anomalies.ParseFromString(handle.read())
        found[split] = anomalies
    if not found:
        raise FileNotFoundError(f"no Split-*/SchemaDiff.pb under {uri}")
    return found


def check(uri: str) -> list[str]:
    """Raises :class:`AnomaliesFound` listing every anomaly under ``uri``; else returns []."""
    lines = describe(read_anomalies(uri))
    if lines:
        raise AnomaliesFound("data violates the curated schema; the run stops before Transform, "
                             "Trainer and Pusher:\n  " + "\n  ".join(lines))
    return lines
