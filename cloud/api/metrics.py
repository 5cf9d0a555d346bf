"""Prometheus metrics of the API, on a registry of its own (one per app), and the ASGI
middleware that counts every request by route template (never by concrete path, so a
site or device id does not become a label).

Where the process also runs ingest workers (``towerwatch cloud serve``), their counters
are read at each scrape (:meth:`ApiMetrics.watch_ingest`); the events waiting in the
ingest outbox (``pending_events``, every process's) are counted by the ``/metrics``
route before rendering (:meth:`ApiMetrics.set_pending`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["INGEST_COUNTERS", "UNMATCHED_ROUTE", "ApiMetrics", "IngestView",
           "MetricsMiddleware"]

UNMATCHED_ROUTE: Final = "<unmatched>"
_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
INGEST_COUNTERS: Final = {
    "received": "MQTT messages received",
    "samples": "Time-series samples stored",
    "duplicates": "Messages dropped as copies of ones already on record",
    "dead_letters": "Messages dead-lettered as invalid",
    "gaps": "Sequence gaps seen (messages a gateway sent that never arrived, or not yet)",
    "missing": "Messages missing in those gaps",
    "events": "Events accepted and handed to the alarm service",
    "events_left": "Events the alarm service did not apply at once (left to the replay)",
    "skewed": "Messages whose timestamp was off the receive time by more than the tolerance",
    "batches": "Batches on record",
    "failed_batches": "Batches that failed to store and were retried",
}
"""The counters of :class:`~cloud.ingest.pipeline.IngestStats` exported per worker, as
``towerwatch_ingest_<name>_total``."""

IngestView = Callable[[], Iterable[tuple[str, bool, Mapping[str, int]]]]
"""The ingest workers of this process: ``(name, connected, counters)`` each."""


class _IngestCollector(Collector):
    def __init__(self, view: IngestView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        workers = list(self.view())
        connected = GaugeMetricFamily(
            "towerwatch_ingest_connected",
            "Whether the ingest worker is connected and subscribed to the broker (1) or not.",
            labels=["worker"])
        counters = {name: CounterMetricFamily(f"towerwatch_ingest_{name}", help_text,
                                              labels=["worker"])
                    for name, help_text in INGEST_COUNTERS.items()}
        for worker, is_connected, stats in workers:
            connected.add_metric([worker], 1.0 if is_connected else 0.0)
            for name, family in counters.items():
                family.add_metric([worker], float(stats.get(name, 0)))
        yield connected
        yield from counters.values()


class ApiMetrics:
    """The API's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "towerwatch_api_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "towerwatch_api_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.logins = Counter(
            "towerwatch_api_logins",
            "Login attempts by outcome (ok, refused, rate_limited).",
            ["outcome"],
            registry=self.registry,
        )
        self.commands = Counter(
            "towerwatch_api_commands",
            "Commands to gateways by op and outcome (sent, not_sent).",
            ["op", "outcome"],
            registry=self.registry,
        )

        self.pending = Gauge(
            "towerwatch_pending_events",
            "Events accepted by ingest and not yet applied by the alarm service (all "
            "processes; NaN when the database did not answer).",
            registry=self.registry,
        )
        self.pending_age = Gauge(
            "towerwatch_pending_events_oldest_age_seconds",
            "Age of the oldest pending event since it was received (0 when none; NaN "
            "when the database did not answer).",
            registry=self.registry,
        )

    def watch_ingest(self, view: IngestView) -> None:
        """Export the counters of this process's ingest workers, read at each scrape."""
        self.registry.register(_IngestCollector(view))

    def set_pending(self, summary: tuple[int, int | None] | None, now_ms: int) -> None:
        """The outbox as :func:`~cloud.ingest.pending.pending_summary` found it (count,
        oldest receive time); ``None`` when it could not be read."""
        if summary is None:
            self.pending.set(math.nan)
            self.pending_age.set(math.nan)
            return
        count, oldest = summary
        self.pending.set(count)
        self.pending_age.set(0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times HTTP requests; the route label is the matched template."""

    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, static_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.static_paths = static_paths
        """Paths served by plain routes that do not mark the scope (OpenAPI, docs)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is None:
                path = scope.get("path", "")
                route = path if path in self.static_paths else UNMATCHED_ROUTE
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
