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

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.alarms.commits import transaction_memo
from cloud.alarms.lookups import covering, memoized
from cloud.alarms.service import AlarmKey
from cloud.alarms.tables import SITE_LEVEL, Alarm, Change
from cloud.assets.register import assets_for_device
from cloud.assets.tables import AssetDevice
from cloud.workorders.errors import Conflict
from cloud.workorders.policies import CATEGORIES
from cloud.workorders.service import (
    ASSET_SITE,
    COVERAGE,
    attach_alarm,
    create_work_order,
    open_key_for,
)
from cloud.workorders.states import Source, State
from cloud.workorders.tables import Asset, WorkOrder, WorkOrderAlarm

__all__ = [
    "AlarmPolicy",
    "AlarmWorkOrders",
    "MaintenanceWorkCoverage",
    "alarms_of",
    "work_order_for_alarm",
    "work_orders_for_alarm",
]

_COVERING: Final = (State.ON_SITE.value, State.IN_PROGRESS.value, State.ON_HOLD.value)
_ASSET, _OPEN_ORDER, _COVERED = "asset_of", "open_work_order", COVERAGE
_UNKNOWN: Final = object()


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


def _asset_of(session: Session, site: str, gateway: str | None,
              device: str | None) -> int | None:
    """The first asset (by id) the device watches; ``None``: none, or a site-level alarm."""
    if gateway is None or device is None:
        return None

    def load() -> int | None:
        assets = assets_for_device(session, site, gateway, device)
        return assets[0].id if assets else None

    return memoized(session, (_ASSET, site, gateway, device), load)


def prefetch_for_alarms(session: Session, keys: Collection[AlarmKey]) -> None:
    """For a batch of alarm keys: the assets their devices watch, and which of their work
    orders are certainly not open yet (a later check of those needs no locking read)."""
    memo = transaction_memo(session)
    devices = sorted({(s, g, d) for s, g, d, _n in keys
                      if g != SITE_LEVEL and d != SITE_LEVEL and (_ASSET, s, g, d) not in memo})
    if devices:
        first: dict[tuple[str, str, str], int] = {}
        for site, gateway, device, asset_id, asset_site in session.execute(
                select(AssetDevice.site_id, AssetDevice.gateway_id, AssetDevice.device_id,
                       AssetDevice.asset_id, Asset.site_id)
                .join(Asset, Asset.id == AssetDevice.asset_id)
                .where(covering((AssetDevice.site_id, AssetDevice.gateway_id,
                                 AssetDevice.device_id), devices))
                .order_by(AssetDevice.asset_id)):
            first.setdefault((site, gateway, device), asset_id)
            memo[(ASSET_SITE, asset_id)] = asset_site
        for key in devices:
            memo[(_ASSET, *key)] = first.get(key)
    open_keys = set()
    for site, gateway, device, name in keys:
        gw = None if gateway == SITE_LEVEL else gateway
        dev = None if device == SITE_LEVEL else device
        open_keys.add(open_key_for(site, _asset_of(session, site, gw, dev), gw, dev, name))
    orders = sorted(k for k in open_keys if (_OPEN_ORDER, k) not in memo)
    if orders:
        taken = set(session.scalars(select(WorkOrder.open_key)
                                    .where(WorkOrder.open_key.in_(orders))))
        for open_key in orders:
            if open_key not in taken:
                memo[(_OPEN_ORDER, open_key)] = None


def _locked_open_order(session: Session, key: str) -> WorkOrder | None:
    """The open work order of ``key``, locked (none when the batch found none)."""
    memo = transaction_memo(session)
    known = memo.get((_OPEN_ORDER, key), _UNKNOWN)
    if isinstance(known, WorkOrder) and known.open_key == key:
        return known  # this transaction created or locked it
    if known is None:
        return None
    order = session.scalars(select(WorkOrder).where(WorkOrder.open_key == key)
                            .with_for_update()).one_or_none()
    memo[(_OPEN_ORDER, key)] = order
    return order


def work_order_for_alarm(session: Session, alarm: Alarm, *, priority: str,
                         now_ms: int) -> WorkOrder:
    """The open work order for the alarm's (asset, name), created if there is none; the
    alarm is attached to it either way."""
    gateway, device = _located(alarm)
    asset_id = _asset_of(session, alarm.site_id, gateway, device)
    key = open_key_for(alarm.site_id, asset_id, gateway, device, alarm.name)
    memo = transaction_memo(session)
    for _attempt in range(2):
        order = _locked_open_order(session, key)
        if order is not None:
            attach_alarm(session, order, alarm.id, now_ms=now_ms)
            return order
        try:
            order = create_work_order(
                session, site=alarm.site_id,
                category=alarm.category if alarm.category in CATEGORIES else "general",
                priority=priority, title=alarm.text_en[:300],
                description=f"{alarm.text_en}\n{alarm.text_zh}", source=Source.ALARM,
                now_ms=now_ms, actor=None, asset_id=asset_id, alarm_id=alarm.id,
                alarm_key=alarm.name, gateway=gateway, device=device)
        except Conflict:
            memo.pop((_OPEN_ORDER, key), None)
            continue  # another worker created it in between: attach to theirs
        memo[(_OPEN_ORDER, key)] = order
        return order
    raise RuntimeError(f"work order for {key} neither found nor created")  # pragma: no cover


class AlarmWorkOrders:
    """The alarm → work-order policy, as an alarm observer (see the module docstring)."""

    def __init__(self, policy: AlarmPolicy | None = None) -> None:
        self.policy = policy or AlarmPolicy()

    def prepare(self, session: Session, keys: Collection[AlarmKey]) -> None:
        prefetch_for_alarms(session, keys)

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
    """Maintenance coverage of a device (see the module docstring). What a transaction
    has read is kept for it: a batch of alarms asks once (:meth:`prepare`)."""

    def covers(self, session: Session, site: str, gateway: str, device: str,
               now_ms: int) -> bool:
        key = (_COVERED, site, gateway, device)
        memo = transaction_memo(session)
        if key not in memo:
            self._read(session, [(site, gateway, device)])
        since: int | None = memo[key]
        return since is not None and since <= now_ms

    def prepare(self, session: Session, keys: Collection[AlarmKey]) -> None:
        memo = transaction_memo(session)
        self._read(session, sorted({(s, g, d) for s, g, d, _n in keys
                                    if d != SITE_LEVEL and (_COVERED, s, g, d) not in memo}))

    @staticmethod
    def _read(session: Session, devices: list[tuple[str, str, str]]) -> None:
        """The earliest creation of a covering work order of each device (or ``None``)."""
        if not devices:
            return
        memo = transaction_memo(session)
        device = (AssetDevice.site_id, AssetDevice.gateway_id, AssetDevice.device_id)
        since = dict(((s, g, d), t) for s, g, d, t in session.execute(
            select(*device, func.min(WorkOrder.created_ms))
            .join(AssetDevice, AssetDevice.asset_id == WorkOrder.asset_id)
            .where(covering(device, devices), WorkOrder.source == Source.PM,
                   WorkOrder.state.in_(_COVERING))
            .group_by(*device)))
        for key in devices:
            memo[(_COVERED, *key)] = since.get(key)


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
