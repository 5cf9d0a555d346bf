"""The cloud service in one process: ingest workers, periodic jobs and (optionally) the API.

``towerwatch cloud serve`` runs both; ``towerwatch cloud ingest`` runs workers only,
to scale ingest out beside API replicas. Everything is built here from settings and
closed on the way out; nothing connects at import.

Accepted edge events go to the alarm service (:class:`~cloud.alarms.AlarmEventSink`)
unless another sink is given. Alarms open work orders by policy
(:class:`~cloud.workorders.from_alarms.AlarmWorkOrders`) and go out of service while
maintenance covers their asset; notifications go to the log and to every configured
webhook. Periodic work is a list of :class:`PeriodicJob`
``(name, interval, function(now_ms))``: expiring commands, replaying edge events the alarm
service has not applied (``ingest.replay_after`` after their claim), the alarm rules,
suppression and out of service, shelve expiry, re-alarm and escalation, due maintenance and
SLA deadlines, patrol planning and missed or overdue rounds, and (InfluxDB) re-reading the
latest values a dead process may not have flushed to the index; more can be appended to
``CloudService.jobs`` before :meth:`CloudService.run`. Each job runs in a task of its own,
on the service's clock; a failing run is logged and the job runs again next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from sqlalchemy import select

from cloud.alarms import AlarmCatalogue, AlarmEventSink, AlarmService, install
from cloud.alarms.jobs import AlarmJobs
from cloud.alarms.service import AlarmObserver, MaintenanceCoverage
from cloud.alarms.settings import AlarmSettings
from cloud.db import Database, expire_commands, is_up_to_date
from cloud.db.engine import in_thread
from cloud.db.models import Site
from cloud.db.registry import PointSpec, profile_points
from cloud.ingest.metrics import serve_metrics
from cloud.ingest.pipeline import EventSink, IngestPipeline
from cloud.ingest.replay import REPLAY_EVERY_S, EventReplayer
from cloud.ingest.worker import IngestWorker
from cloud.notify import LogNotifier, MultiNotifier, Notifier, WebhookNotifier
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.tours import sweep
from cloud.settings import CloudSettings, TimeseriesSettings
from cloud.timeseries import SqliteStore, TimeSeriesStore
from cloud.timeseries.indexed import IndexedStore
from cloud.workorders.breaches import NotifyEscalation
from cloud.workorders.from_alarms import AlarmWorkOrders, MaintenanceWorkCoverage
from cloud.workorders.jobs import run_periodic
from device_profiles.loader import ProfileSet, load_profiles
from towerwatch.secrets import read_secret

log = logging.getLogger(__name__)
HOUSEKEEPING_S = 10.0
WORK_ORDER_JOB_S = 30.0
PATROL_JOB_S = 60.0
LATEST_REFRESH_S = 300.0
"""How often the latest-value index re-reads the newest samples of the last two periods."""


@dataclass(frozen=True)
class PeriodicJob:
    """``run(now_ms)`` every ``interval`` seconds (the first run right at start)."""

    name: str
    interval: float
    run: Callable[[int], Awaitable[object]]


class CloudError(Exception):
    """The cloud service cannot start; the message says why and what to do."""


def make_store(settings: TimeseriesSettings, db: Database) -> TimeSeriesStore:
    """The configured store. SQLite keeps its own latest values; an InfluxDB store is
    wrapped so latest values come from the relational index (:mod:`cloud.timeseries.indexed`)."""
    if settings.backend == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteStore(settings.sqlite_path)
    from cloud.timeseries.influx import InfluxStore

    token = read_secret(settings.influx_token_file, settings.influx_token_env, "influx token")
    influx = InfluxStore(settings.influx_url, database=settings.influx_database,
                         bucket=settings.influx_bucket, org=settings.influx_org, token=token,
                         write_api=settings.influx_write_api,
                         query_url=settings.influx_query_url)
    return IndexedStore(influx, db)


def make_notifier(settings: CloudSettings) -> Notifier:
    """The log, plus one webhook per ``webhooks:`` entry (secrets from file or environment)."""
    hooks: list[Notifier] = []
    for hook in settings.webhooks:
        secret = read_secret(hook.secret_file, hook.secret_env, f"webhook {hook.url} secret")
        if not secret:
            raise CloudError(f"webhook {hook.url}: set secret_file or secret_env to a "
                             "signing secret")
        hooks.append(WebhookNotifier(hook, secret))
    return MultiNotifier([LogNotifier(), *hooks]) if hooks else LogNotifier()


def point_catalogue(profiles: ProfileSet) -> dict[str, tuple[PointSpec, ...]]:
    return {pid: profile_points(profiles.get(pid)) for pid in profiles.ids()}


def settle_collector() -> None:
    """Tune Python's cycle collector for a long-running service process, once it has
    started (``towerwatch cloud serve`` / ``ingest`` call it when ready; it changes the
    whole interpreter, so the service does not do it for its embedders).

    Everything built so far (modules, the app, schemas, engines) lives as long as the
    process: frozen, it stays out of the collector's full passes, which walked it all and
    stalled API requests ~150 ms a few times a minute. Ingest allocates ~1M short-lived
    objects per batch of 250,000 samples (freed by reference counting, not by the
    collector), which at the default thresholds (700, 10, 10) set off a young collection
    every 700 and a full pass every ~70,000: ~3.8 µs of CPU per point stored. At
    (10,000, 10, 10) a full pass still comes every ~1M allocations (cyclic garbage is
    found as before, a little later) for ~0.3 µs per point.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class CloudService:
    def __init__(self, settings: CloudSettings, *, workers: int = 1, api: bool = True,
                 sink: EventSink | None = None, profiles: ProfileSet | None = None,
                 alarm_settings: AlarmSettings | None = None,
                 observers: Iterable[AlarmObserver] | None = None,
                 coverage: MaintenanceCoverage | None = None,
                 notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.db = Database.from_url(settings.database_url)
        self.store = make_store(settings.timeseries, self.db)
        loaded = profiles or load_profiles()
        self.alarms = AlarmService(
            alarm_settings or settings.alarms,
            observers=[AlarmWorkOrders()] if observers is None else observers,
            coverage=coverage or MaintenanceWorkCoverage(),
            notifier=notifier or make_notifier(settings), clock=clock)
        self.sla_escalation = NotifyEscalation(self.alarms.notifier)
        self.patrols = PatrolRuntime.from_settings(settings.patrols)
        install(self.alarms)
        alarm_catalogue = AlarmCatalogue.from_profiles(loaded)
        self.sink = sink or AlarmEventSink(self.db, self.alarms, alarm_catalogue,
                                           store=self.store)
        replay_after_ms = int(settings.ingest.replay_after * 1000)
        self.replayer = EventReplayer(self.db, self.sink, replay_after_ms=replay_after_ms)
        self.jobs: list[PeriodicJob] = [
            PeriodicJob("expire-commands", HOUSEKEEPING_S, self._expire_commands),
            PeriodicJob("replay-events", REPLAY_EVERY_S, self.replayer.run),
            *(PeriodicJob(name, interval, run) for name, interval, run in
              AlarmJobs(self.db, self.store, self.alarms, alarm_catalogue).specs()),
            PeriodicJob("work-orders", WORK_ORDER_JOB_S,
                        lambda now_ms: run_periodic(self.db, self.store, now_ms,
                                                    self.sla_escalation)),
            PeriodicJob("patrols", PATROL_JOB_S, self._patrol_rounds)]
        if isinstance(self.store, IndexedStore):
            index = self.store
            self.jobs.append(PeriodicJob(
                "latest-index-refresh", LATEST_REFRESH_S,
                lambda now_ms: index.refresh_recent(int(2 * LATEST_REFRESH_S * 1000))))
        catalogue = point_catalogue(loaded)
        skew = int(settings.ingest.skew_tolerance * 1000)
        self.workers = [
            IngestWorker(settings.mqtt, settings.ingest,
                         IngestPipeline(self.db, self.store, self.sink, profiles=catalogue,
                                        skew_tolerance_ms=skew,
                                        replay_after_ms=replay_after_ms),
                         name=f"ingest-{n + 1}")
            for n in range(workers)]
        self.with_api = api
        self.api_port: int | None = None
        self.metrics_port: int | None = None
        """Where ``cloud ingest`` serves its metrics (``ingest.metrics_listen``), once up."""

    async def run(self, stop: asyncio.Event,
                  on_ready: Callable[[CloudService], None] | None = None) -> None:
        if not await asyncio.to_thread(is_up_to_date, self.db.engine):
            raise CloudError("the database is not migrated to the current schema: "
                             "run `towerwatch cloud migrate` first")
        server: Any = None
        sender: Any = None
        metrics: WSGIServer | None = None
        tasks = [asyncio.create_task(w.run(), name=w.name) for w in self.workers]
        tasks += [asyncio.create_task(self._every(job), name=job.name) for job in self.jobs]
        if isinstance(self.store, IndexedStore):
            tasks.append(asyncio.create_task(self.store.run_backfill(), name="latest-index"))
        try:
            if self.with_api:
                server, sender = await self._start_api()
                tasks.append(asyncio.create_task(server.serve(), name="api"))
                while not server.started:
                    if tasks[-1].done():
                        tasks[-1].result()
                        raise CloudError("the API stopped while starting")
                    await asyncio.sleep(0.02)
                self.api_port = int(server.servers[0].sockets[0].getsockname()[1])
            elif self.settings.ingest.metrics_listen is not None:
                listen = self.settings.ingest.metrics_listen
                try:
                    metrics = serve_metrics(listen, self._ingest_view, self.db)
                except OSError as exc:
                    raise CloudError(f"cannot serve metrics on {listen} "
                                     f"(ingest.metrics_listen): {exc}") from exc
                self.metrics_port = int(metrics.server_port)
            if on_ready is not None:
                on_ready(self)
            await stop.wait()
        finally:
            if server is not None:
                server.should_exit = True
            if metrics is not None:
                await asyncio.to_thread(metrics.shutdown)
                metrics.server_close()
            for task in tasks:
                if task.get_name() != "api":
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if sender is not None:
                await sender.close()
            await self.store.close()
            self.alarms.notifier.close()
            self.db.dispose()

    async def _every(self, job: PeriodicJob) -> None:
        while True:
            try:
                await job.run(int(self.clock() * 1000))
            except Exception:
                log.exception("periodic job %s failed", job.name)
            await asyncio.sleep(job.interval)

    async def _expire_commands(self, now_ms: int) -> list[str]:
        """Mark commands that got no reply before they expired."""
        expired = await self.db.run(lambda session: expire_commands(session, now_ms=now_ms))
        if expired:
            log.info("%d command(s) expired without a reply", len(expired))
        return expired

    async def _patrol_rounds(self, now_ms: int) -> int:
        """Plan rounds ahead and mark missed and overdue ones, site by site."""
        def run() -> int:
            with self.db.transaction() as session:
                sites = list(session.scalars(select(Site.id)))
            changed = 0
            for site in sites:
                with self.db.transaction() as session:
                    result = sweep(session, self.patrols, site, now_ms)
                changed += result.missed + result.overdue
            return changed
        return await in_thread(run)

    def _ingest_view(self) -> list[tuple[str, bool, dict[str, int]]]:
        """This process's ingest workers for ``/metrics``."""
        return [(w.name, w.link_up(), asdict(w.pipeline.stats)) for w in self.workers]

    async def _start_api(self) -> tuple[Any, Any]:
        import uvicorn

        from cloud.api import create_app
        from cloud.mqtt import MqttCommandSender

        host, _, port = self.settings.api.listen.rpartition(":")
        sender = MqttCommandSender(self.settings.mqtt)
        app = create_app(self.settings, db=self.db, store=self.store, commands=sender,
                         clock=self.clock, patrols=self.patrols, ingest=self._ingest_view)
        app.state.alarms = self.alarms
        config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port or 8080),
                                log_level="warning", lifespan="on", access_log=False)
        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the process owns its signals: stop() ends the server

        return Server(config), sender


async def wait_ready(service: CloudService, limit: float = 30.0) -> bool:
    """Whether every ingest worker connected within ``limit`` s (tests and the demo)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not all(w.connected for w in service.workers):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
