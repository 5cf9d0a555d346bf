"""Prometheus metrics of the API, on a registry of its own (one per app), and the ASGI
middleware that counts every request by route template (never by concrete path, so a
site or device id does not become a label).

Where the process also runs ingest workers (``towerwatch cloud serve``), their counters
are read at each scrape (:meth:`ApiMetrics.watch_ingest`); the events waiting in the
ingest outbox (``pending_events``, every process's) are counted by the ``/metrics``
route before rendering (:meth:`ApiMetrics.count_pending`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.ingest.metrics import IngestCollector, IngestView, PendingSummary, pending_families

__all__ = ["UNMATCHED_ROUTE", "ApiMetrics", "MetricsMiddleware"]

log = logging.getLogger(__name__)

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

        self._pending = _Latest(pending_families(None, 0))
        self._counting: asyncio.Future[PendingSummary] | None = None
        self.registry.register(self._pending)

    def watch_ingest(self, view: IngestView) -> None:
        """Export the counters of this process's ingest workers, read at each scrape."""
        self.registry.register(IngestCollector(view))

    async def count_pending(self, count: Callable[[], Awaitable[PendingSummary]],
                            wait_s: float, now_ms: int) -> None:
        """Count the outbox for the next rendering with ``count``, waiting ``wait_s`` at
        most. One count at a time: while one is still running (a database that does not
        answer), a scrape does not start another but reports NaN."""
        summary: PendingSummary = None
        if self._counting is None or self._counting.done():
            self._counting = asyncio.ensure_future(count())
            try:
                async with asyncio.timeout(wait_s):
                    summary = await asyncio.shield(self._counting)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("/metrics: could not count pending events: %s", exc)
        self._pending.families = pending_families(summary, now_ms)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Latest(Collector):
    """The outbox figures the route set before rendering."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


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
