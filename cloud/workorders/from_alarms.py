"""Alarms and work orders: the policy that raises work orders from alarms, the links both
ways, and the maintenance coverage that puts alarms out of service.

- :class:`AlarmWorkOrders` is an :class:`~cloud.alarms.service.AlarmObserver`: when an
  alarm is raised or reactivated (in the same transaction), its category picks the
  work-order category and its priority the work-order priority (:class:`AlarmPolicy`).
  One work order stays open per (asset, alarm name), or per (device, alarm name) when the
  device watches no asset: a later occurrence attaches to it. Alarms that are suppressed
  by design or out of service raise none. The unique ``open_key`` makes this hold under
  concurrent ingest workers: the loser of an insert race attaches to the winner's order.
- :class:`MaintenanceWorkCoverage` is a :class:`~cloud.alarms.service.MaintenanceCoverage`:
  a device is covered while a preventive-maintenance work order on an asset it watches is
  being worked (``on_site``, ``in_progress`` or ``on_hold``). A work order generated
  ahead of its window covers nothing until the engineer is there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms.tables import SITE_LEVEL, Alarm, Change
from cloud.assets.register import assets_for_device
from cloud.assets.tables import AssetDevice
from cloud.workorders.errors import Conflict
from cloud.workorders.policies import CATEGORIES
from cloud.workorders.service import attach_alarm, create_work_order, open_key_for
from cloud.workorders.states import Source, State
from cloud.workorders.tables import WorkOrder, WorkOrderAlarm

__all__ = [
    "AlarmPolicy",
    "AlarmWorkOrders",
    "MaintenanceWorkCoverage",
    "alarms_of",
    "work_order_for_alarm",
    "work_orders_for_alarm",
]

_COVERING: Final = (State.ON_SITE.value, State.IN_PROGRESS.value, State.ON_HOLD.value)


@dataclass(frozen=True)
class AlarmPolicy:
    """Alarm priority → work-order priority, and which alarm priorities raise work orders."""

    priorities: Mapping[str, str] = field(default_factory=lambda: {
        "emergency": "emergency", "high": "urgent", "medium": "normal", "low": "low"})
    raise_for: frozenset[str] = frozenset({"emergency", "high", "medium"})

    def __post_init__(self) -> None:
        missing = self.raise_for - set(self.priorities)
        if missing:
            raise ValueError(f"no work-order priority for alarm priorities {sorted(missing)}")


def _located(alarm: Alarm) -> tuple[str | None, str | None]:
    gateway = None if alarm.gateway_id == SITE_LEVEL else alarm.gateway_id
    device = None if alarm.device_id == SITE_LEVEL else alarm.device_id
    return gateway, device


def work_order_for_alarm(session: Session, alarm: Alarm, *, priority: str,
                         now_ms: int) -> WorkOrder:
    """The open work order for the alarm's (asset, name), created if there is none; the
    alarm is attached to it either way."""
    gateway, device = _located(alarm)
    assets = ([] if gateway is None or device is None
              else assets_for_device(session, alarm.site_id, gateway, device))
    asset_id = assets[0].id if assets else None
    key = open_key_for(alarm.site_id, asset_id, gateway, device, alarm.name)
    for _attempt in range(2):
        order = session.scalars(select(WorkOrder).where(WorkOrder.open_key == key)
                                .with_for_update()).one_or_none()
        if order is not None:
            attach_alarm(session, order, alarm.id, now_ms=now_ms)
            return order
        try:
            return create_work_order(
                session, site=alarm.site_id,
                category=alarm.category if alarm.category in CATEGORIES else "general",
                priority=priority, title=alarm.text_en[:300],
                description=f"{alarm.text_en}\n{alarm.text_zh}", source=Source.ALARM,
                now_ms=now_ms, actor=None, asset_id=asset_id, alarm_id=alarm.id,
                alarm_key=alarm.name, gateway=gateway, device=device)
        except Conflict:
            continue  # another worker created it in between: attach to theirs
    raise RuntimeError(f"work order for {key} neither found nor created")  # pragma: no cover


class AlarmWorkOrders:
    """The alarm → work-order policy, as an alarm observer (see the module docstring)."""

    def __init__(self, policy: AlarmPolicy | None = None) -> None:
        self.policy = policy or AlarmPolicy()

    def alarm_changed(self, session: Session, alarm: Alarm, change: Change) -> None:
        if change not in (Change.RAISED, Change.REACTIVATED):
            return
        if alarm.priority not in self.policy.raise_for:
            return
        if alarm.suppressed_reason or alarm.out_of_service or alarm.shelved_until_ms:
            return
        work_order_for_alarm(session, alarm, priority=self.policy.priorities[alarm.priority],
                             now_ms=alarm.last_active_ms)


class MaintenanceWorkCoverage:
    """Maintenance coverage of a device (see the module docstring)."""

    def covers(self, session: Session, site: str, gateway: str, device: str,
               now_ms: int) -> bool:
        query = (select(WorkOrder.id).join(AssetDevice, AssetDevice.asset_id == WorkOrder.asset_id)
                 .where(AssetDevice.site_id == site, AssetDevice.gateway_id == gateway,
                        AssetDevice.device_id == device, WorkOrder.source == Source.PM,
                        WorkOrder.state.in_(_COVERING),
                        WorkOrder.created_ms <= now_ms)
                 .limit(1))
        return session.scalar(query) is not None


def work_orders_for_alarm(session: Session, alarm_id: int) -> list[WorkOrder]:
    """Alarm → work orders (newest first)."""
    return list(session.scalars(
        select(WorkOrder).join(WorkOrderAlarm).where(WorkOrderAlarm.alarm_id == alarm_id)
        .order_by(WorkOrder.id.desc())))


def alarms_of(session: Session, work_order_id: int) -> list[int]:
    """Work order → the ids of the alarm occurrences attached to it, oldest first."""
    return list(session.scalars(
        select(WorkOrderAlarm.alarm_id).where(WorkOrderAlarm.work_order_id == work_order_id)
        .order_by(WorkOrderAlarm.attached_ms, WorkOrderAlarm.alarm_id)))
