"""Cloud-side alarm rules, evaluated by the periodic job on an injectable clock.

==================  =========  ===========  ==================================================
alarm               priority   key          active while
==================  =========  ===========  ==================================================
gateway_offline     high       gateway, -   the gateway's will says offline for
                                            ``gateway_offline_after``
device_offline      medium     device       its gateway is online, the device's retained state
                                            says offline for ``device_offline_after``
stale_data          low        device       the device is online but its newest sample is
                                            older than ``stale_after``
leak_suspected      high       device       the last complete hour's consumption of the
                                            meter's volume point exceeds ``leak_factor`` × the
                                            same hour's mean over ``leak_baseline_days`` days
                                            (and the baseline by ``leak_min_volume``)
counter_backwards:  medium     device       a counter point decreased within
<point>                                     ``counter_window`` by more than a wrap explains
==================  =========  ===========  ==================================================

Each run decides which alarms of the rules it evaluated are active; it raises those and
clears the open ``rule`` alarms of those rules that no longer hold. The leak rule runs once
per hour (hours are UTC hours, which are the site's hours in whole-hour time zones); the
counter rule every ``counter_window / 4``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms.catalogue import AlarmCatalogue
from cloud.alarms.service import AlarmService, AlarmSpec
from cloud.alarms.settings import RuleSettings
from cloud.alarms.tables import SITE_LEVEL, Alarm, Source
from cloud.db.engine import Database, in_thread
from cloud.db.models import Device, Gateway
from cloud.timeseries.base import SeriesKey, TimeSeriesStore
from cloud.timeseries.errors import TimeSeriesError
from device_profiles.codec import counter_went_backwards

__all__ = ["BACKWARDS", "CloudRules", "RuleReport", "backwards_texts"]

HOUR_MS: Final = 3_600_000
GATEWAY_OFFLINE, DEVICE_OFFLINE, STALE = "gateway_offline", "device_offline", "stale_data"
LEAK, BACKWARDS = "leak_suspected", "counter_backwards"
Key = tuple[str, str, str, str]


@dataclass
class RuleReport:
    evaluated: set[str] = field(default_factory=set)
    active: dict[Key, AlarmSpec] = field(default_factory=dict)
    raised: int = 0
    cleared: int = 0


@dataclass(frozen=True)
class _DeviceRow:
    site: str
    gateway: str
    device: str
    profile: str | None
    online: bool | None
    since_ms: int | None
    gateway_online: bool


def _spec(site: str, gateway: str, device: str, name: str, priority: str, category: str,
          en: str, zh: str, **detail: object) -> AlarmSpec:
    return AlarmSpec(site, gateway, device, name, Source.RULE.value, priority, category, en, zh,
                     detail)


def backwards_texts(device: str, point: str, previous: object, current: object) -> tuple[
        str, str]:
    """English and Chinese text of a counter that went backwards."""
    return (f"Counter {point} of {device} went backwards ({previous} → {current}): "
            "meter replaced, reset or faulty.",
            f"{device} 的计数器 {point} 出现倒退（{previous} → {current}）："
            "表计被更换、清零或故障。")


class CloudRules:
    def __init__(self, db: Database, store: TimeSeriesStore, service: AlarmService,
                 catalogue: AlarmCatalogue, settings: RuleSettings | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.db, self.store, self.service, self.catalogue = db, store, service, catalogue
        self.settings = settings or service.settings.rules
        self.clock = clock
        self._leak_hour: int | None = None
        self._counter_ms: int | None = None

    async def run(self, now_ms: int | None = None) -> RuleReport:
        now = int(self.clock() * 1000) if now_ms is None else now_ms
        gateways, devices = await in_thread(self._snapshot)
        report = RuleReport()
        self._offline(now, gateways, devices, report)
        await self._stale(now, devices, report)
        hour = now // HOUR_MS * HOUR_MS
        if self._leak_hour != hour:
            await self._leaks(hour, devices, report)
            self._leak_hour = hour
        step = int(self.settings.counter_window * 1000 / 4)
        if self._counter_ms is None or now - self._counter_ms >= step:
            await self._counters(now, devices, report)
            self._counter_ms = now
        await in_thread(self._apply, now, report)
        return report

    def _snapshot(self) -> tuple[list[Gateway], list[_DeviceRow]]:
        with self.db.transaction() as session:
            gateways = list(session.scalars(select(Gateway)))
            online = {(g.site_id, g.id): g.online for g in gateways}
            devices = [_DeviceRow(d.site_id, d.gateway_id, d.id, d.profile, d.online, d.since_ms,
                                  online.get((d.site_id, d.gateway_id), False))
                       for d in session.scalars(select(Device).where(Device.listed.is_(True)))]
        return gateways, devices

    def _offline(self, now: int, gateways: list[Gateway], devices: list[_DeviceRow],
                 report: RuleReport) -> None:
        s = self.settings
        report.evaluated |= {GATEWAY_OFFLINE, DEVICE_OFFLINE}
        for g in gateways:
            since = g.since_ms or g.last_seen_ms or 0
            if not g.online and since and now - since >= s.gateway_offline_after * 1000:
                report.active[(g.site_id, g.id, SITE_LEVEL, GATEWAY_OFFLINE)] = _spec(
                    g.site_id, g.id, SITE_LEVEL, GATEWAY_OFFLINE, "high", "general",
                    f"Gateway {g.id} is offline ({g.reason or 'no reason given'}): "
                    "no data from its devices.",
                    f"网关 {g.id} 离线（{g.reason or '原因未知'}）：其下设备均无数据。",
                    since=since)
        for d in devices:
            if (d.gateway_online and d.online is False and d.since_ms is not None
                    and now - d.since_ms >= s.device_offline_after * 1000):
                report.active[(d.site, d.gateway, d.device, DEVICE_OFFLINE)] = _spec(
                    d.site, d.gateway, d.device, DEVICE_OFFLINE, "medium",
                    self.catalogue.category_of(d.profile),
                    f"Device {d.device} does not answer its gateway {d.gateway}.",
                    f"设备 {d.device} 与网关 {d.gateway} 通信中断。", since=d.since_ms)

    async def _stale(self, now: int, devices: list[_DeviceRow], report: RuleReport) -> None:
        limit = int(self.settings.stale_after * 1000)
        report.evaluated.add(STALE)
        for d in devices:
            if not d.gateway_online or d.online is not True:
                continue
            samples = await self.store.latest_for_device(d.site, d.gateway, d.device)
            newest = max((s.ts_ms for s in samples.values()), default=None)
            if newest is not None and now - newest > limit:
                minutes = (now - newest) // 60_000
                report.active[(d.site, d.gateway, d.device, STALE)] = _spec(
                    d.site, d.gateway, d.device, STALE, "low",
                    self.catalogue.category_of(d.profile),
                    f"No data from {d.device} for {minutes} min although it is online.",
                    f"设备 {d.device} 在线，但已 {minutes} 分钟没有数据。", newest=newest)

    async def _leaks(self, hour: int, devices: list[_DeviceRow], report: RuleReport) -> None:
        s = self.settings
        report.evaluated.add(LEAK)
        days = s.leak_baseline_days
        for d in devices:
            point = next((p for glob, p in s.leak_points.items()
                          if d.profile is not None and fnmatchcase(d.profile, glob)), None)
            if point is None:
                continue
            series = SeriesKey(d.site, d.gateway, d.device, point)
            start = hour - (days * 24 + 2) * HOUR_MS
            try:
                buckets = await self.store.downsampled(series, start, hour, bucket_ms=HOUR_MS)
            except (TimeSeriesError, ValueError):
                continue
            last = {b.start_ms: b.last for b in buckets}

            def used(h: int, last: Mapping[int, object] = last) -> float | None:
                a, b = last.get(h - HOUR_MS), last.get(h)
                if isinstance(a, int | float) and isinstance(b, int | float) and b >= a:
                    return float(b) - float(a)
                return None

            now_used = used(hour - HOUR_MS)
            history = [u for k in range(1, days + 1)
                       if (u := used(hour - HOUR_MS - k * 24 * HOUR_MS)) is not None]
            if now_used is None or not history:
                continue
            baseline = sum(history) / len(history)
            if now_used > s.leak_factor * baseline and now_used - baseline > s.leak_min_volume:
                report.active[(d.site, d.gateway, d.device, LEAK)] = _spec(
                    d.site, d.gateway, d.device, LEAK, "high", "water",
                    f"Water use in the last hour was {now_used:.2f} m³, over {s.leak_factor:g}× "
                    f"this hour's usual {baseline:.2f} m³: possible leak.",
                    f"最近一小时用水 {now_used:.2f} m³，超过该时段平常用量 {baseline:.2f} m³ 的 "
                    f"{s.leak_factor:g} 倍，疑似漏水。",
                    used=round(now_used, 3), baseline=round(baseline, 3), hour=hour - HOUR_MS)

    async def _counters(self, now: int, devices: list[_DeviceRow], report: RuleReport) -> None:
        window = int(self.settings.counter_window * 1000)
        report.evaluated.add(BACKWARDS)
        for d in devices:
            for point, modulus in self.catalogue.counters.get(d.profile or "", {}).items():
                series = SeriesKey(d.site, d.gateway, d.device, point)
                try:
                    samples = await self.store.raw(series, now - window, now + 1, limit=100_000)
                except (TimeSeriesError, ValueError):
                    continue
                values = [s.value for s in samples if s.quality == "good"
                          and isinstance(s.value, int | float) and not isinstance(s.value, bool)]
                for prev, cur in itertools.pairwise(values):
                    assert isinstance(prev, int | float) and isinstance(cur, int | float)
                    back = cur < prev if modulus is None else counter_went_backwards(
                        prev, cur, modulus, modulus / 2)
                    if back:
                        name = f"{BACKWARDS}:{point}"
                        en, zh = backwards_texts(d.device, point, prev, cur)
                        report.active[(d.site, d.gateway, d.device, name)] = _spec(
                            d.site, d.gateway, d.device, name, "medium",
                            self.catalogue.category_of(d.profile), en, zh, point=point,
                            previous=prev, value=cur)
                        break

    def _apply(self, now: int, report: RuleReport) -> None:
        with self.db.transaction() as session:
            for spec in report.active.values():
                alarm = self.service.open_alarm(session, spec.site, spec.gateway, spec.device,
                                                spec.name)
                if alarm is None or not alarm.active:
                    self.service.raise_(session, spec, now, suppressed=None)
                    report.raised += 1
            for alarm in _open_rule_alarms(session):
                base = alarm.name.split(":", 1)[0]
                key = (alarm.site_id, alarm.gateway_id, alarm.device_id, alarm.name)
                if base in report.evaluated and key not in report.active and alarm.active:
                    self.service.clear(session, *key, now)
                    report.cleared += 1


def _open_rule_alarms(session: Session) -> list[Alarm]:
    return list(session.scalars(select(Alarm).where(
        Alarm.closed_ms.is_(None), Alarm.source == Source.RULE.value)))
