"""Reading work orders: filtered, sorted lists with their SLA status, and the parts of one
work order's record (SLA figures as they stand now)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from cloud.workorders.breaches import deadlines_of, milestones_of
from cloud.workorders.sla import Deadlines, SlaStatus, effective, sla_status
from cloud.workorders.states import PRIORITIES
from cloud.workorders.tables import WorkOrder

__all__ = ["SORTS", "WorkOrderFilter", "effective_deadlines", "list_work_orders", "status_of"]

SORTS: Final = ("priority", "created", "due", "updated")
_SCAN_LIMIT: Final = 5000
"""Rows read at most when filtering by SLA status (computed in Python)."""


@dataclass(frozen=True)
class WorkOrderFilter:
    states: Sequence[str] = ()
    priorities: Sequence[str] = ()
    categories: Sequence[str] = ()
    sources: Sequence[str] = ()
    asset_id: int | None = None
    assignee: str | None = None
    sla: Sequence[str] = ()
    sort: str = "priority"
    limit: int = 100
    offset: int = 0


def status_of(order: WorkOrder, now_ms: int) -> SlaStatus:
    return sla_status(order.created_ms, deadlines_of(order), milestones_of(order), now_ms,
                      order.hold_since_ms)


def effective_deadlines(order: WorkOrder, now_ms: int) -> Deadlines:
    """The deadlines as they stand now (moving along while on hold)."""
    return effective(deadlines_of(order), milestones_of(order), now_ms, order.hold_since_ms)


def list_work_orders(session: Session, site: str, query: WorkOrderFilter,
                     now_ms: int) -> list[WorkOrder]:
    """The site's work orders matching ``query``; ``priority`` sorts emergency first, then
    newest; ``due`` by resolution deadline (none last); ``created``/``updated`` newest first."""
    if query.sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    stmt = select(WorkOrder).where(WorkOrder.site_id == site)
    for column, values in ((WorkOrder.state, query.states), (WorkOrder.priority,
                           query.priorities), (WorkOrder.category, query.categories),
                           (WorkOrder.source, query.sources)):
        if values:
            stmt = stmt.where(column.in_(list(values)))
    if query.asset_id is not None:
        stmt = stmt.where(WorkOrder.asset_id == query.asset_id)
    if query.assignee is not None:
        stmt = stmt.where(WorkOrder.assignee == query.assignee)
    rank = case({p: n for n, p in enumerate(PRIORITIES)}, value=WorkOrder.priority)
    order_by = {
        "priority": (rank, WorkOrder.created_ms.desc(), WorkOrder.id.desc()),
        "created": (WorkOrder.created_ms.desc(), WorkOrder.id.desc()),
        "due": (WorkOrder.resolve_due_ms.is_(None), WorkOrder.resolve_due_ms, WorkOrder.id),
        "updated": (WorkOrder.updated_ms.desc(), WorkOrder.id.desc()),
    }[query.sort]
    stmt = stmt.order_by(*order_by)
    if not query.sla:
        return list(session.scalars(stmt.limit(query.limit).offset(query.offset)))
    wanted = set(query.sla)
    rows = [o for o in session.scalars(stmt.limit(_SCAN_LIMIT))
            if status_of(o, now_ms).value in wanted]
    return rows[query.offset:query.offset + query.limit]
