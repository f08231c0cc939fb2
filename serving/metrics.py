"""Prometheus metrics of the model server (``--monitoring_config_file``).

The names follow TF Serving's Prometheus export (``:tensorflow:serving:...``) so dashboards
written for it keep working; ``prometheus_client`` adds the conventional ``_total`` suffix to
counters. Model version states are read from the model manager at scrape time, so they are never
stale.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

# Request latency buckets in microseconds, like TF Serving's.
LATENCY_BUCKETS_US = (250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000,
                      500_000, 1_000_000, 2_500_000, 10_000_000)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ModelVersionCollector:
    def __init__(self, models: Callable[[], dict]):
        self._models = models

    def collect(self):
        loaded = GaugeMetricFamily(":tensorflow:serving:model_version_state",
                                   "1 for the current state of each model version",
                                   labels=["model_name", "version", "state"])
        count = GaugeMetricFamily(":tensorflow:serving:model_versions_available",
                                  "number of AVAILABLE versions per model",
                                  labels=["model_name"])
        from serving.errors import ModelNotFound
        for name, model in sorted(self._models().items()):
            try:
                statuses = model.statuses()
            except ModelNotFound:
                statuses = []
            for status in statuses:
                loaded.add_metric([name, str(status.version), status.state], 1)
            count.add_metric([name], sum(s.state == "AVAILABLE" for s in statuses))
        yield loaded
        yield count


class ServingMetrics:
    """Request counts, latency histogram, batch sizes and model versions, in one registry."""

    def __init__(self, models: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self._requests = Counter(":tensorflow:serving:request_count",
                                 "requests by model, API, entry point and status",
                                 ["model_name", "API", "entrypoint", "status"],
                                 registry=self.registry)
        self._latency = Histogram(":tensorflow:serving:request_latency",
                                  "request latency in microseconds",
                                  ["model_name", "API", "entrypoint"],
                                  buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self._batch_size = Histogram(":tensorflow:serving:batching_session:processed_batch_size",
                                     "size of the batches the batch scheduler ran",
                                     ["model_name"], buckets=BATCH_SIZE_BUCKETS,
                                     registry=self.registry)
        self.registry.register(_ModelVersionCollector(models))

    def observe_request(self, model_name: str, api: str, entrypoint: str, status: str,
                        seconds: float) -> None:
        self._requests.labels(model_name, api, entrypoint, status).inc()
        self._latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

    def observe_batch(self, model_name: str, size: int) -> None:
        self._batch_size.labels(model_name).observe(size)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
