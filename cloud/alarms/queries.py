"""Reading alarms: the filtered, sorted, paged alarm list and an alarm's history.

The default order is the alarm board's: fire alarms first, then priority, then the most
recently active (``rank, last_active_ms DESC, id DESC``), served by the index
``(site_id, rank, last_active_ms)``. ``sort=recent`` orders by ``last_active_ms DESC``
alone. Paging is by offset (``limit`` ≤ 500) and the answer says how many match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud.alarms.errors import UnknownAlarm
from cloud.alarms.tables import Alarm, AlarmHistory

__all__ = ["AlarmFilter", "AlarmPage", "alarm_history", "changes_since", "list_alarms"]

Sort = Literal["board", "recent", "raised"]


@dataclass(frozen=True)
class AlarmFilter:
    """Which alarms: every field left ``None`` does not filter."""

    open: bool | None = True
    states: Sequence[str] | None = None
    priorities: Sequence[str] | None = None
    categories: Sequence[str] | None = None
    gateway: str | None = None
    device: str | None = None
    name: str | None = None
    shelved: bool | None = None
    suppressed: bool | None = None
    since_ms: int | None = None
    """Active at or after this time (``last_active_ms >= since_ms``)."""
    until_ms: int | None = None
    """Raised before this time."""

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.open is not None:
            query = query.where(Alarm.closed_ms.is_(None) if self.open
                                else Alarm.closed_ms.is_not(None))
        if self.states:
            query = query.where(Alarm.state.in_(list(self.states)))
        if self.priorities:
            query = query.where(Alarm.priority.in_(list(self.priorities)))
        if self.categories:
            query = query.where(Alarm.category.in_(list(self.categories)))
        for column, value in ((Alarm.gateway_id, self.gateway), (Alarm.device_id, self.device),
                              (Alarm.name, self.name)):
            if value is not None:
                query = query.where(column == value)
        if self.shelved is not None:
            query = query.where(Alarm.shelved_until_ms.is_not(None) if self.shelved
                                else Alarm.shelved_until_ms.is_(None))
        if self.suppressed is not None:
            query = query.where(Alarm.suppressed_reason.is_not(None) if self.suppressed
                                else Alarm.suppressed_reason.is_(None))
        if self.since_ms is not None:
            query = query.where(Alarm.last_active_ms >= self.since_ms)
        if self.until_ms is not None:
            query = query.where(Alarm.raised_ms < self.until_ms)
        return query


@dataclass(frozen=True)
class AlarmPage:
    total: int
    items: list[Alarm]


def list_alarms(session: Session, site: str, where: AlarmFilter | None = None, *,
                sort: Sort = "board", limit: int = 100, offset: int = 0) -> AlarmPage:
    """One page of the site's alarms (see the module docstring)."""
    query = (where or AlarmFilter()).apply(select(Alarm).where(Alarm.site_id == site))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if sort == "board":
        query = query.order_by(Alarm.rank, Alarm.last_active_ms.desc(), Alarm.id.desc())
    elif sort == "recent":
        query = query.order_by(Alarm.last_active_ms.desc(), Alarm.id.desc())
    else:
        query = query.order_by(Alarm.raised_ms.desc(), Alarm.id.desc())
    items = list(session.scalars(query.limit(limit).offset(offset)))
    return AlarmPage(int(total), items)


def alarm_history(session: Session, site: str, alarm_id: int) -> tuple[Alarm, list[AlarmHistory]]:
    """The alarm and every history entry, oldest first."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or alarm.site_id != site:
        raise UnknownAlarm(alarm_id)
    entries = session.scalars(select(AlarmHistory).where(AlarmHistory.alarm_id == alarm_id)
                              .order_by(AlarmHistory.id))
    return alarm, list(entries)


def changes_since(session: Session, sites: Sequence[str] | None, after_id: int, *,
                  limit: int = 200) -> list[tuple[AlarmHistory, Alarm]]:
    """History entries with ``id > after_id`` (``sites=None``: every site), oldest first,
    each with its alarm: the feed of the Server-Sent Events stream."""
    query = (select(AlarmHistory, Alarm).join(Alarm, Alarm.id == AlarmHistory.alarm_id)
             .where(AlarmHistory.id > after_id).order_by(AlarmHistory.id).limit(limit))
    if sites is not None:
        query = query.where(AlarmHistory.site_id.in_(list(sites)))
    return [(entry, alarm) for entry, alarm in session.execute(query)]


def last_change_id(session: Session) -> int:
    return int(session.scalar(select(func.max(AlarmHistory.id))) or 0)
