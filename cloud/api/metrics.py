"""Prometheus metrics of the API, on a registry of its own (one per app), and the ASGI
middleware that counts every request by route template (never by concrete path, so a
site or device id does not become a label).

Where the process also runs ingest workers (``towerwatch cloud serve``), their counters
are read at each scrape (:meth:`ApiMetrics.watch_ingest`); the events waiting in the
ingest outbox (``pending_events``, every process's) are counted by the ``/metrics``
route before rendering (:meth:`ApiMetrics.set_pending`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.ingest.metrics import IngestCollector, IngestView, PendingSummary, pending_families

__all__ = ["UNMATCHED_ROUTE", "ApiMetrics", "MetricsMiddleware"]

UNMATCHED_ROUTE: Final = "<unmatched>"
_LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
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

        self._pending: list[Metric] = pending_families(None, 0)
        self.registry.register(_Latest(self))

    def watch_ingest(self, view: IngestView) -> None:
        """Export the counters of this process's ingest workers, read at each scrape."""
        self.registry.register(IngestCollector(view))

    def set_pending(self, summary: PendingSummary, now_ms: int) -> None:
        """The outbox as the ``/metrics`` route just counted it (``None``: it could not)."""
        self._pending = pending_families(summary, now_ms)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Latest(Collector):
    """The outbox figures the route set before rendering."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics._pending


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
