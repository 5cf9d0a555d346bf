"""Cloud-side rules and the periodic jobs on a controlled clock: gateway and device offline,
stale data, leak against the same hour's baseline, counters going backwards; suppression
and out of service refreshed for open alarms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms import AlarmCatalogue, AlarmService
from cloud.alarms.jobs import AlarmJobs
from cloud.alarms.tables import SITE_LEVEL, Alarm, AlarmHistory
from cloud.db import Database, learn_birth, learn_device_state, learn_will
from cloud.timeseries import SqliteStore
from cloud.timeseries.base import Sample, SeriesKey
from device_profiles.loader import load_profiles
from tests.cloud.alarms.support import MIN, T0, RecordingNotifier, seed_site, spec
from towerwatch.contract import Birth, DeviceDescriptor, DeviceState, Will

CATALOGUE = AlarmCatalogue.from_profiles(load_profiles())
HOUR = 3_600_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "ts.db") as ts:
        yield ts


class Covered:
    """Maintenance coverage of a fixed set of devices (a real implementation of the protocol)."""

    def __init__(self) -> None:
        self.devices: set[str] = set()

    def covers(self, session: Session, site: str, gateway: str, device: str,
               now_ms: int) -> bool:
        return device in self.devices


@pytest.fixture
def coverage() -> Covered:
    return Covered()


@pytest.fixture
def jobs(db: Database, store: SqliteStore, coverage: Covered) -> AlarmJobs:
    with db.transaction() as session:
        seed_site(session)
    service = AlarmService(notifier=RecordingNotifier(), coverage=coverage)
    return AlarmJobs(db, store, service, CATALOGUE)


def rule_alarms(db: Database) -> dict[tuple[str, str], Alarm]:
    with db.transaction() as session:
        rows = session.scalars(select(Alarm).where(Alarm.closed_ms.is_(None)))
        return {(a.device_id, a.name): a for a in rows}


async def test_offline_gateway_and_device_raise_after_their_grace_and_clear(
        jobs: AlarmJobs, db: Database) -> None:
    with db.transaction() as session:
        learn_device_state(session, "alpha", "gw1", "pump-1",
                           DeviceState(online=False, since=T0, reason="timeout"))
    await jobs.rules(T0 + MIN)
    assert rule_alarms(db) == {}
    await jobs.rules(T0 + 2 * MIN)
    assert set(rule_alarms(db)) == {("pump-1", "device_offline")}
    with db.transaction() as session:
        learn_will(session, "alpha", "gw1", Will(boot_id="boot-0001", ts=T0 + 3 * MIN,
                                                 reason="connection lost"))
    await jobs.rules(T0 + 6 * MIN)
    alarms = rule_alarms(db)
    assert set(alarms) == {("pump-1", "device_offline"), (SITE_LEVEL, "gateway_offline")}
    assert not alarms[("pump-1", "device_offline")].active  # the gateway alarm covers it
    gateway = alarms[(SITE_LEVEL, "gateway_offline")]
    assert (gateway.priority, gateway.source) == ("high", "rule")
    assert "connection lost" in gateway.text_en and "离线" in gateway.text_zh
    with db.transaction() as session:
        learn_birth(session, "alpha", "gw1", Birth(
            boot_id="boot-0002", version="1.0.0", ts=T0 + 7 * MIN,
            devices=[DeviceDescriptor(id="pump-1", profile="booster-pumpset-modbus")]),
            received_ms=T0 + 7 * MIN)
    await jobs.rules(T0 + 8 * MIN)
    assert rule_alarms(db)[(SITE_LEVEL, "gateway_offline")].state == "unack_rtn"


async def test_stale_data_of_an_online_device(jobs: AlarmJobs, db: Database,
                                              store: SqliteStore) -> None:
    await store.write([Sample(SeriesKey("alpha", "gw1", "pump-1", "outlet_pressure"),
                              T0 - 2 * HOUR, 4.2, "good"),
                       Sample(SeriesKey("alpha", "gw1", "lift-1", "mode"), T0 - MIN,
                              "automatic", "good")])
    await jobs.rules(T0)
    alarms = rule_alarms(db)
    assert set(alarms) == {("pump-1", "stale_data")}
    assert "120 min" in alarms[("pump-1", "stale_data")].text_en


async def test_leak_against_the_same_hours_baseline(jobs: AlarmJobs, db: Database,
                                                   store: SqliteStore) -> None:
    series = SeriesKey("alpha", "gw1", "meter-1", "volume_total")
    hour = T0 // HOUR * HOUR
    samples, volume = [], 1000.0
    for h in range(8 * 24, 0, -1):  # 0.1 m³ an hour for eight days…
        start = hour - h * HOUR
        volume += 2.5 if h == 1 else 0.1  # …and 2.5 m³ in the last complete hour
        samples.append(Sample(series, start + 30 * MIN, volume, "good"))
    await store.write(samples)
    await jobs.rules(hour + MIN)
    leak = rule_alarms(db)[("meter-1", "leak_suspected")]
    assert (leak.priority, leak.category) == ("high", "water")
    assert leak.detail["used"] == pytest.approx(2.5) and leak.detail["baseline"] == \
        pytest.approx(0.1)
    await jobs.rules(hour + 2 * MIN)  # the same hour is not evaluated twice
    assert rule_alarms(db)[("meter-1", "leak_suspected")].occurrences == 1
    await jobs.rules(hour + HOUR + MIN)  # the next hour used nothing: clears
    assert not rule_alarms(db)[("meter-1", "leak_suspected")].active


async def test_a_counter_going_backwards_but_not_a_wrap(jobs: AlarmJobs, db: Database,
                                                       store: SqliteStore) -> None:
    series = SeriesKey("alpha", "gw1", "meter-1", "volume_total")
    await store.write([Sample(series, T0 - 30 * MIN, 999_999.5, "good"),
                       Sample(series, T0 - 20 * MIN, 0.5, "good"),  # wraps at 1,000,000
                       Sample(series, T0 - 10 * MIN, 1.5, "good")])
    await jobs.rules(T0)
    assert rule_alarms(db) == {}
    await store.write([Sample(series, T0 - 5 * MIN, 0.2, "good")])  # 1.5 → 0.2: backwards
    jobs.rules_engine._counter_ms = None
    await jobs.rules(T0 + MIN)
    alarm = rule_alarms(db)[("meter-1", "counter_backwards:volume_total")]
    assert alarm.detail == {"point": "volume_total", "previous": 1.5, "value": 0.2}


async def test_overlays_follow_device_state_and_maintenance(
        jobs: AlarmJobs, db: Database, coverage: Covered) -> None:
    with db.transaction() as session:
        pump = jobs.service.raise_(session, spec(), T0)
        assert pump.next_escalation_ms is not None
    with db.transaction() as session:
        learn_device_state(session, "alpha", "gw1", "pump-1",
                           DeviceState(online=False, since=T0 + MIN))
    assert await jobs.overlays(T0 + MIN) == 1
    alarm = rule_alarms(db)[("pump-1", "pump1_tripped")]
    assert alarm.suppressed_reason == "device_offline" and alarm.next_escalation_ms is None
    with db.transaction() as session:
        learn_device_state(session, "alpha", "gw1", "pump-1",
                           DeviceState(online=True, since=T0 + 2 * MIN))
    coverage.devices.add("pump-1")
    assert await jobs.overlays(T0 + 2 * MIN) == 2
    alarm = rule_alarms(db)[("pump-1", "pump1_tripped")]
    assert (alarm.suppressed_reason, alarm.out_of_service) == (None, True)
    report = await jobs.timers(T0 + 60 * MIN)
    assert report.escalated == 0  # out of service: no escalation
    coverage.devices.clear()
    assert await jobs.overlays(T0 + 61 * MIN) == 1
    alarm = rule_alarms(db)[("pump-1", "pump1_tripped")]
    assert alarm.next_escalation_ms is not None and alarm.next_escalation_ms > T0 + 61 * MIN
    with db.transaction() as session:
        kinds = list(session.scalars(select(AlarmHistory.kind).order_by(AlarmHistory.id)))
    assert kinds == ["raised", "suppressed", "unsuppressed", "out_of_service", "in_service"]
