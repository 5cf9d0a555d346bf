"""The alarm lifecycle's periodic work, as ``(name, interval, function)`` jobs.

- ``alarm-rules``: the cloud-side rules (:class:`~cloud.alarms.rules.CloudRules`);
- ``alarm-overlays``: suppression by design and out of service, re-evaluated for every open
  device alarm (:func:`~cloud.alarms.suppression.refresh_overlays`);
- ``alarm-timers``: shelve expiry, re-alarm and escalation
  (:func:`~cloud.alarms.timers.run_timers`).

Each function takes ``now_ms`` (the caller's clock) and does its database work on a worker
thread in a transaction of its own; notifications go out after that transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from cloud.alarms.catalogue import AlarmCatalogue
from cloud.alarms.rules import CloudRules, RuleReport
from cloud.alarms.service import AlarmService
from cloud.alarms.suppression import latest_values, refresh_overlays, rule_devices
from cloud.alarms.timers import TimerReport, run_timers
from cloud.db.engine import Database, in_thread
from cloud.timeseries.base import TimeSeriesStore

__all__ = ["AlarmJobs", "JobSpec"]

log = logging.getLogger(__name__)

JobSpec = tuple[str, float, Callable[[int], Awaitable[object]]]


class AlarmJobs:
    def __init__(self, db: Database, store: TimeSeriesStore, service: AlarmService,
                 catalogue: AlarmCatalogue) -> None:
        self.db, self.store, self.service = db, store, service
        self.rules_engine = CloudRules(db, store, service, catalogue, clock=service.clock)

    async def rules(self, now_ms: int) -> RuleReport:
        report = await self.rules_engine.run(now_ms)
        if report.raised or report.cleared:
            log.info("cloud rules: %d raised, %d cleared", report.raised, report.cleared)
        return report

    async def overlays(self, now_ms: int) -> int:
        def devices() -> set[tuple[str, str, str]]:
            with self.db.transaction() as session:
                return rule_devices(session, self.service)

        values = await latest_values(self.store, await in_thread(devices))

        def apply() -> int:
            with self.db.transaction() as session:
                return refresh_overlays(self.service, session, now_ms, values)

        return await in_thread(apply)

    async def timers(self, now_ms: int) -> TimerReport:
        def work() -> TimerReport:
            with self.db.transaction() as session:
                return run_timers(self.service, session, now_ms)

        report = await in_thread(work)
        if report.expired or report.realarmed or report.escalated:
            log.info("alarm timers: %d shelve(s) expired, %d re-alarmed, %d escalated",
                     report.expired, report.realarmed, report.escalated)
        return report

    def specs(self) -> list[JobSpec]:
        interval = self.service.settings.job_interval
        return [("alarm-rules", interval, self.rules),
                ("alarm-overlays", interval, self.overlays),
                ("alarm-timers", min(interval, 5.0), self.timers)]
