"""Suppression by design and out of service: which open alarms are hidden, and why.

- A device that is offline (its retained state, or its gateway's will) suppresses its point
  alarms (``device_offline``); the alarms that report the outage itself are exempt
  (``offline_exempt`` globs: ``comm_*``, ``*_offline``, ``stale_data``, …).
- A :class:`~cloud.alarms.settings.SuppressionRule` suppresses matching alarms of matching
  profiles while a point of the same device reads a value (an elevator in ``inspection``
  mode suppresses its ``door_*`` alarms). Values are the latest ``good`` samples in the
  time-series store.
- An alarm is out of service while the :class:`~cloud.alarms.service.MaintenanceCoverage`
  says an open maintenance work order covers its device.

:func:`refresh_overlays` re-evaluates all three for every open device alarm (the periodic
job); a new alarm gets the same verdict when it is raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from cloud.alarms.lookups import device_offline, device_profile, prefetch_devices
from cloud.alarms.service import AlarmService
from cloud.alarms.settings import AlarmSettings
from cloud.alarms.tables import SITE_LEVEL, Alarm
from cloud.timeseries.base import TimeSeriesStore, Value

__all__ = [
    "DEVICE_OFFLINE",
    "DeviceKey",
    "LatestValues",
    "design_suppression",
    "latest_values",
    "refresh_overlays",
]

DEVICE_OFFLINE = "device_offline"
DeviceKey: TypeAlias = tuple[str, str, str]
LatestValues: TypeAlias = Mapping[DeviceKey, Mapping[str, Value]]


async def latest_values(store: TimeSeriesStore, devices: Iterable[DeviceKey]) -> dict[
        DeviceKey, dict[str, Value]]:
    """The latest good value of every point of each device."""
    out: dict[DeviceKey, dict[str, Value]] = {}
    for key in sorted(set(devices)):
        samples = await store.latest_for_device(*key)
        out[key] = {p: s.value for p, s in samples.items() if s.quality == "good"}
    return out


def design_suppression(session: Session, settings: AlarmSettings, key: DeviceKey,
                       profile: str | None, name: str,
                       values: Mapping[str, Value]) -> str | None:
    """Why the alarm ``name`` of device ``key`` is suppressed by design, or ``None``."""
    site, gateway, device = key
    if device == SITE_LEVEL or gateway == SITE_LEVEL:
        return None
    if settings.offline_suppresses(name) and device_offline(session, site, gateway, device):
        return DEVICE_OFFLINE
    for rule in settings.suppression:
        if rule.applies(profile, name) and rule.point in values and _same(
                values[rule.point], rule.equals):
            return rule.id
    return None


def _same(value: Value, wanted: str | int | float | bool) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted
    return value == wanted


def open_device_alarms(session: Session) -> list[Row[Any]]:
    """``(id, site, gateway, device, name, suppressed_reason, out_of_service)`` of every
    open device alarm (plain rows: the job loads an alarm only when it changes)."""
    return list(session.execute(
        select(Alarm.id, Alarm.site_id, Alarm.gateway_id, Alarm.device_id, Alarm.name,
               Alarm.suppressed_reason, Alarm.out_of_service)
        .where(Alarm.closed_ms.is_(None), Alarm.device_id != SITE_LEVEL)))


def rule_devices(session: Session, service: AlarmService) -> set[DeviceKey]:
    """Devices with an open alarm some suppression rule may hide (their values are needed)."""
    out: set[DeviceKey] = set()
    for alarm in open_device_alarms(session):
        settings = service.settings_for(session, alarm.site_id)
        if any(rule.matches_alarm(alarm.name) for rule in settings.suppression):
            out.add((alarm.site_id, alarm.gateway_id, alarm.device_id))
    return out


def refresh_overlays(service: AlarmService, session: Session, now_ms: int,
                     values: LatestValues) -> int:
    """Re-evaluate suppression and out of service of every open device alarm; returns how
    many alarms changed."""
    changed = 0
    rows = open_device_alarms(session)
    prefetch_devices(session, {(a.site_id, a.gateway_id, a.device_id) for a in rows})
    prepare = getattr(service.coverage, "prepare", None)
    if prepare is not None:  # every device's coverage in one query
        prepare(session, sorted({(a.site_id, a.gateway_id, a.device_id, a.name)
                                 for a in rows}))
    for row in rows:
        key = (row.site_id, row.gateway_id, row.device_id)
        settings = service.settings_for(session, row.site_id)
        reason = design_suppression(session, settings, key, device_profile(session, key),
                                    row.name, values.get(key, {}))
        covered = service.coverage.covers(session, *key, now_ms)
        if reason == row.suppressed_reason and covered == row.out_of_service:
            continue
        alarm = session.get(Alarm, row.id)
        if alarm is None:  # pragma: no cover - alarms are never deleted
            continue
        changed += service.set_suppressed(session, alarm, reason, now_ms)
        changed += service.set_out_of_service(session, alarm, covered, now_ms)
    return changed
