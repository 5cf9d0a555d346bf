"""Time-driven alarm changes: shelve expiry, re-alarm and escalation (run by the periodic job).

Each function finds what is due at ``now_ms`` through an index (``shelved_until_ms``,
``next_realarm_ms``, ``next_escalation_ms``), locks those rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so two cloud processes running the job do not both escalate an alarm) and
applies the change in the caller's transaction. Escalations and shelve expiries are
audited as actions of the system (user ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from cloud.alarms import lifecycle
from cloud.alarms.service import AlarmService
from cloud.alarms.tables import Alarm, Change
from cloud.db.audit import record_audit

__all__ = ["TimerReport", "escalate", "expire_shelves", "realarm", "run_timers"]

_BATCH = 500


@dataclass(frozen=True)
class TimerReport:
    expired: int
    realarmed: int
    escalated: int


def _due(session: Session, column: InstrumentedAttribute[int | None],
         now_ms: int) -> list[Alarm]:
    query = (select(Alarm).where(column <= now_ms, Alarm.closed_ms.is_(None))
             .order_by(column).limit(_BATCH).with_for_update(skip_locked=True))
    return list(session.scalars(query))


def expire_shelves(service: AlarmService, session: Session, now_ms: int) -> int:
    alarms = _due(session, Alarm.shelved_until_ms, now_ms)
    for alarm in alarms:
        service.unshelve(session, alarm.id, site=alarm.site_id, user=None, now_ms=now_ms,
                         expired=True)
    return len(alarms)


def realarm(service: AlarmService, session: Session, now_ms: int) -> int:
    alarms = _due(session, Alarm.next_realarm_ms, now_ms)
    count = 0
    for alarm in alarms:
        interval = service.settings_for(session, alarm.site_id).realarm_ms(alarm.priority)
        if not service.annunciating(alarm) or interval is None:
            alarm.next_realarm_ms = None
            continue
        due = alarm.next_realarm_ms or now_ms
        missed = (now_ms - due) // interval + 1  # skip annunciations missed while down
        alarm.next_realarm_ms = due + missed * interval
        service.record(session, alarm, Change.REALARMED, now_ms)
        service.announce(session, alarm, "realarmed", now_ms)
        count += 1
    return count


def escalate(service: AlarmService, session: Session, now_ms: int) -> int:
    alarms = _due(session, Alarm.next_escalation_ms, now_ms)
    count = 0
    for alarm in alarms:
        ladder = service.settings_for(session, alarm.site_id).ladder(alarm.priority)
        if not service.annunciating(alarm) or alarm.escalation_level >= len(ladder):
            alarm.next_escalation_ms = None
            continue
        due = alarm.next_escalation_ms or now_ms
        alarm.escalation_level += 1
        base = due - int(ladder[alarm.escalation_level - 1] * 1000)
        alarm.next_escalation_ms = lifecycle.escalation_due(ladder, alarm.escalation_level,
                                                            base)
        alarm.changed_ms = now_ms
        record_audit(session, ts_ms=now_ms, user=None, action="alarm.escalate",
                     site=alarm.site_id, target=alarm.target,
                     detail={"alarm_id": alarm.id, "level": alarm.escalation_level,
                             "due": due})
        service.record(session, alarm, Change.ESCALATED, now_ms,
                       detail={"level": alarm.escalation_level, "due": due})
        service.announce(session, alarm, "escalated", now_ms)
        count += 1
    return count


def run_timers(service: AlarmService, session: Session, now_ms: int) -> TimerReport:
    """Everything due at ``now_ms``, in order: expiries first (they re-arm timers)."""
    expired = expire_shelves(service, session, now_ms)
    return TimerReport(expired, realarm(service, session, now_ms),
                       escalate(service, session, now_ms))
