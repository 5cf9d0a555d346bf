"""SLA breaches: recording them (once per work order and kind), the periodic
:func:`check_sla`, and escalation.

``check_sla(session, now_ms)`` is a pure function of the database and ``now_ms``; the
service schedules it. It records every deadline that passed unmet (respond, arrive,
resolve, and the follow-up of a resolved work order) and hands each new breach to an
:class:`Escalation`. :class:`LogEscalation` writes a logged event in English and Chinese
and an audit entry (``workorder.escalate``); :class:`NotifyEscalation` (what the service
uses) writes the audit entry and hands an ``sla_breach`` notification to the
:mod:`cloud.notify` notifier (the log and every webhook) once the transaction committed.
Breaches of milestones met late are recorded by the transition that meets them.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db.audit import record_audit
from cloud.notify.base import Notification, Notifier
from cloud.workorders import texts as _texts  # noqa: F401  (registers the messages)
from cloud.workorders.sla import Deadlines, Milestones, breaches
from cloud.workorders.states import CLOSED_STATES, State
from cloud.workorders.tables import SlaBreach, WorkOrder
from towerwatch.i18n import t

__all__ = [
    "Escalation",
    "LogEscalation",
    "NotifyEscalation",
    "breach_text",
    "breaches_of",
    "check_sla",
    "deadlines_of",
    "milestones_of",
    "record_breach",
    "record_late_milestones",
]

log = logging.getLogger(__name__)

_ZH_KIND: Final = {"respond": "响应", "arrive": "到场", "resolve": "处理完成", "follow_up": "回访"}


def deadlines_of(order: WorkOrder) -> Deadlines:
    return Deadlines(order.respond_due_ms, order.arrive_due_ms, order.resolve_due_ms)


def milestones_of(order: WorkOrder) -> Milestones:
    return Milestones(order.responded_ms, order.arrived_ms, order.resolved_ms)


def breach_text(order: WorkOrder, kind: str, due_ms: int, now_ms: int) -> dict[str, str]:
    """What an operator reads, in both languages."""
    late_min = max(0, (now_ms - due_ms) // 60_000)
    fields = {"id": order.id, "site": order.site_id, "title": order.title,
              "priority": order.priority, "late": late_min}
    return {"en": t("workorder.breach", "en", kind=kind, **fields),
            "zh": t("workorder.breach", "zh", kind=_ZH_KIND.get(kind, kind), **fields)}


class Escalation(Protocol):
    """Where a new breach goes; ``name`` is stored on the breach as ``escalated_via``."""

    name: str

    def escalate(self, session: Session, breach: SlaBreach, order: WorkOrder,
                 now_ms: int) -> None: ...


class LogEscalation:
    """A logged event (WARNING, English | Chinese) and an audit entry per breach."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self.count = 0

    def escalate(self, session: Session, breach: SlaBreach, order: WorkOrder,
                 now_ms: int) -> None:
        text = _audit(session, breach, order, now_ms)
        self.count += 1
        self.log.warning("%s | %s", text["en"], text["zh"])


class NotifyEscalation:
    """An audit entry per breach, and an ``sla_breach`` notification to ``notifier``,
    submitted by :meth:`flush` after the transaction that recorded the breach committed."""

    name = "notify"

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.pending: list[Notification] = []
        self.count = 0

    def escalate(self, session: Session, breach: SlaBreach, order: WorkOrder,
                 now_ms: int) -> None:
        text = _audit(session, breach, order, now_ms)
        self.pending.append(Notification(
            kind="sla_breach", level=1, ts_ms=now_ms,
            alarm={"site": order.site_id, "work_order": order.id, "kind": breach.kind,
                   "due": breach.due_ms, "priority": order.priority, "title": order.title,
                   "text_en": text["en"], "text_zh": text["zh"]}))

    def flush(self) -> int:
        """Submit what the committed transaction escalated; how many were accepted."""
        pending, self.pending = self.pending, []
        accepted = sum(self.notifier.submit(n) for n in pending)
        self.count += len(pending)
        return accepted

    def discard(self) -> None:
        """Forget what a rolled-back transaction escalated."""
        self.pending.clear()


def _audit(session: Session, breach: SlaBreach, order: WorkOrder,
           now_ms: int) -> dict[str, str]:
    text = breach_text(order, breach.kind, breach.due_ms, now_ms)
    record_audit(session, ts_ms=now_ms, user=None, action="workorder.escalate",
                 site=order.site_id, target=f"work-order/{order.id}",
                 detail={"kind": breach.kind, "due": breach.due_ms, "text_en": text["en"],
                         "text_zh": text["zh"]})
    return text


def record_breach(session: Session, order: WorkOrder, kind: str, due_ms: int, *, now_ms: int,
                  met_ms: int | None = None) -> SlaBreach | None:
    """Record the breach unless it is on record (then fill in ``met_ms``); the new row, or
    ``None`` when it already existed."""
    existing = session.scalars(select(SlaBreach).where(
        SlaBreach.work_order_id == order.id, SlaBreach.kind == kind)).one_or_none()
    if existing is not None:
        if met_ms is not None and existing.met_ms is None:
            existing.met_ms = met_ms
        return None
    breach = SlaBreach(work_order_id=order.id, site_id=order.site_id, kind=kind, due_ms=due_ms,
                       detected_ms=now_ms, met_ms=met_ms)
    try:
        with session.begin_nested():
            session.add(breach)
            session.flush()
    except IntegrityError:
        return None  # another checker recorded it first
    return breach


def record_late_milestones(session: Session, order: WorkOrder, now_ms: int) -> list[SlaBreach]:
    """After a milestone is met: record it as a breach if it was met late."""
    recorded = []
    met = milestones_of(order)
    for kind, due in breaches(deadlines_of(order), met, now_ms, order.hold_since_ms):
        met_at = {"respond": met.responded, "arrive": met.arrived, "resolve": met.resolved}[kind]
        if met_at is not None:
            row = record_breach(session, order, kind, due, now_ms=now_ms, met_ms=met_at)
            if row is not None:
                recorded.append(row)
    return recorded


def breaches_of(session: Session, work_order_id: int) -> list[SlaBreach]:
    return list(session.scalars(select(SlaBreach).where(SlaBreach.work_order_id == work_order_id)
                                .order_by(SlaBreach.due_ms)))


def _candidates(session: Session, now_ms: int) -> list[WorkOrder]:
    unmet = or_(
        and_(WorkOrder.respond_due_ms < now_ms, WorkOrder.responded_ms.is_(None)),
        and_(WorkOrder.arrive_due_ms < now_ms, WorkOrder.arrived_ms.is_(None)),
        and_(WorkOrder.resolve_due_ms < now_ms, WorkOrder.resolved_ms.is_(None)),
    )
    done = [s.value for s in CLOSED_STATES | {State.RESOLVED}]
    open_late = and_(WorkOrder.state.not_in(done), unmet)
    follow_up_late = and_(WorkOrder.state == State.RESOLVED, WorkOrder.follow_up_ms.is_(None),
                          WorkOrder.follow_up_due_ms < now_ms)
    query = select(WorkOrder).where(or_(open_late, follow_up_late)).order_by(WorkOrder.id)
    return list(session.scalars(query))


def check_sla(session: Session, now_ms: int,
              escalation: Escalation | None = None) -> list[SlaBreach]:
    """Record every deadline missed by ``now_ms`` and escalate the new breaches; returns
    them. Idempotent: a breach is recorded and escalated once."""
    escalation = escalation or LogEscalation()
    new: list[tuple[SlaBreach, WorkOrder]] = []
    for order in _candidates(session, now_ms):
        missed = breaches(deadlines_of(order), milestones_of(order), now_ms,
                          order.hold_since_ms)
        if (order.state == State.RESOLVED and order.follow_up_due_ms is not None
                and order.follow_up_ms is None and order.follow_up_due_ms < now_ms):
            missed.append(("follow_up", order.follow_up_due_ms))
        met = milestones_of(order)
        met_at = {"respond": met.responded, "arrive": met.arrived, "resolve": met.resolved}
        for kind, due in missed:
            row = record_breach(session, order, kind, due, now_ms=now_ms, met_ms=met_at.get(kind))
            if row is not None:
                new.append((row, order))
    for row, order in new:
        escalation.escalate(session, row, order, now_ms)
        row.escalated_ms = now_ms
        row.escalated_via = escalation.name
    session.flush()
    return [row for row, _order in new]
