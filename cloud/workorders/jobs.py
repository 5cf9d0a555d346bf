"""The periodic work of work orders in one call, for the service's scheduler.

:func:`run_periodic` reads the counters of counter-driven maintenance plans from the
time-series store, generates due maintenance work orders, then records and escalates SLA
breaches: each step in its own transaction on a worker thread (sessions are synchronous).
A :class:`~cloud.workorders.breaches.NotifyEscalation` is flushed to its notifier after the
SLA transaction commits.
Both steps are idempotent, so replicas may run it side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.db.engine import Database
from cloud.maintenance.generate import counter_targets, generate_due, read_counters
from cloud.timeseries.base import TimeSeriesStore
from cloud.workorders.breaches import Escalation, NotifyEscalation, check_sla

__all__ = ["PeriodicResult", "run_periodic"]


@dataclass(frozen=True)
class PeriodicResult:
    generated: int
    """Maintenance work orders made."""
    breaches: int
    """New SLA breaches recorded (and escalated)."""


async def run_periodic(db: Database, store: TimeSeriesStore, now_ms: int,
                       escalation: Escalation | None = None) -> PeriodicResult:
    """Generate due maintenance work orders, then check SLA deadlines, at ``now_ms``."""
    targets = await db.run(counter_targets)
    readings = await read_counters(store, targets)
    made = await db.run(lambda s: len(generate_due(s, now_ms, readings)))
    try:
        breached = await db.run(lambda s: len(check_sla(s, now_ms, escalation)))
    except BaseException:
        if isinstance(escalation, NotifyEscalation):
            escalation.discard()
        raise
    if isinstance(escalation, NotifyEscalation):
        escalation.flush()
    return PeriodicResult(made, breached)
