"""Prometheus metrics of ingest: each worker's connection and counters, and the events
waiting in the ingest outbox (``pending_events``, every process's).

``cloud serve`` shows them on the API's ``/metrics`` (:mod:`cloud.api.metrics`); ``cloud
ingest`` (workers without the API) serves them on ``ingest.metrics_listen`` with
:func:`serve_metrics`, on a thread of its own, where the outbox is counted at each
scrape.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from cloud.db.engine import Database
from cloud.ingest.pending import pending_summary

__all__ = ["INGEST_COUNTERS", "IngestCollector", "IngestView", "PendingCollector",
           "pending_families", "serve_metrics"]

log = logging.getLogger(__name__)

INGEST_COUNTERS: Final = {
    "received": "Messages in batches on record (copies included)",
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

PendingSummary = tuple[int, int | None] | None
"""What :func:`~cloud.ingest.pending.pending_summary` found (count, oldest receive
time), or ``None`` when the database did not answer."""


class IngestCollector(Collector):
    """Each worker's connection and counters, read at each scrape."""

    def __init__(self, view: IngestView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "towerwatch_ingest_connected",
            "Whether the ingest worker is connected and subscribed to the broker (1) or not.",
            labels=["worker"])
        counters = {name: CounterMetricFamily(f"towerwatch_ingest_{name}", help_text,
                                              labels=["worker"])
                    for name, help_text in INGEST_COUNTERS.items()}
        for worker, is_connected, stats in self.view():
            connected.add_metric([worker], 1.0 if is_connected else 0.0)
            for name, family in counters.items():
                family.add_metric([worker], float(stats.get(name, 0)))
        yield connected
        yield from counters.values()


def pending_families(summary: PendingSummary, now_ms: int) -> list[Metric]:
    """``towerwatch_pending_events`` and ``…_oldest_age_seconds`` (NaN when unknown)."""
    count = age = math.nan
    if summary is not None:
        count = float(summary[0])
        oldest = summary[1]
        age = 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000)
    return [
        GaugeMetricFamily(
            "towerwatch_pending_events",
            "Events accepted by ingest and not yet applied by the alarm service (all "
            "processes; NaN when the database did not answer).", value=count),
        GaugeMetricFamily(
            "towerwatch_pending_events_oldest_age_seconds",
            "Age of the oldest pending event since it was received (0 when none; NaN "
            "when the database did not answer).", value=age),
    ]


def read_pending(db: Database) -> PendingSummary:
    """The outbox now, on this thread; ``None`` (logged) when the database fails."""
    try:
        with db.transaction() as session:
            return pending_summary(session)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("metrics: could not count pending events: %s", exc)
        return None


class PendingCollector(Collector):
    """The outbox, counted at each scrape (for a metrics server on its own thread); one
    count at a time: a scrape while another is still counting (a database that does
    not answer) reports NaN rather than queueing behind it."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db, self.clock = db, clock
        self._counting = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        summary: PendingSummary = None
        if self._counting.acquire(blocking=False):
            try:
                summary = read_pending(self.db)
            finally:
                self._counting.release()
        yield from pending_families(summary, int(self.clock() * 1000))


def serve_metrics(listen: str, view: IngestView, db: Database) -> WSGIServer:
    """Serve ``/metrics`` (any path) on ``listen`` (``host:port``; port 0 picks one) from
    a thread; ``shutdown()`` and ``server_close()`` the server returned to stop it."""
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=True)
    registry.register(IngestCollector(view))
    registry.register(PendingCollector(db))
    server, _thread = start_http_server(int(port), host or "127.0.0.1", registry=registry)
    return server
