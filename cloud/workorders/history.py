"""The record of a work order: one history event and one audit entry for everything done
to it (transitions, comments, photos, attached alarms, follow-ups, breaches)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.audit import record_audit
from cloud.workorders.tables import WorkOrder, WorkOrderEvent

__all__ = ["events_of", "record_event"]


def record_event(
    session: Session, order: WorkOrder, action: str, *, user: str | None, now_ms: int,
    from_state: str | None = None, to_state: str | None = None, comment: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> WorkOrderEvent:
    """Append a history event and the matching audit entry (``workorder.<action>``)."""
    event = WorkOrderEvent(
        work_order_id=order.id, ts_ms=now_ms, username=user, action=action,
        from_state=from_state, to_state=to_state, comment=comment, detail=dict(detail or {}),
    )
    session.add(event)
    audit_detail: dict[str, Any] = {"from": from_state, "to": to_state, **(detail or {})}
    if comment:
        audit_detail["comment"] = comment
    record_audit(session, ts_ms=now_ms, user=user, action=f"workorder.{action}",
                 site=order.site_id, target=f"work-order/{order.id}", detail=audit_detail)
    order.updated_ms = max(order.updated_ms, now_ms)
    return event


def events_of(session: Session, work_order_id: int) -> list[WorkOrderEvent]:
    """The history, oldest first."""
    return list(session.scalars(select(WorkOrderEvent)
                                .where(WorkOrderEvent.work_order_id == work_order_id)
                                .order_by(WorkOrderEvent.id)))
