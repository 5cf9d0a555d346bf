"""Edge events through the alarm sink: texts and priorities from the profiles, clears,
redeliveries, comm_loss, suppression by design at raise time, counter_backwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import select

from cloud.alarms import AlarmCatalogue, AlarmEventSink, AlarmService
from cloud.alarms.tables import Alarm
from cloud.db import Database, learn_device_state
from cloud.ingest.pipeline import IngestedEvent
from cloud.timeseries import SqliteStore
from cloud.timeseries.base import Sample, SeriesKey
from device_profiles.loader import load_profiles
from tests.cloud.alarms.support import T0, RecordingNotifier, seed_site
from towerwatch.contract import DeviceState, Event

CATALOGUE = AlarmCatalogue.from_profiles(load_profiles())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "ts.db") as ts:
        yield ts


@pytest.fixture
def sink(db: Database, store: SqliteStore) -> AlarmEventSink:
    with db.transaction() as session:
        seed_site(session)
    return AlarmEventSink(db, AlarmService(notifier=RecordingNotifier()), CATALOGUE,
                          store=store)


def event(name: str, state: str = "active", *, device: str = "pump-1", seq: int = 1,
          kind: Literal["alarm", "state"] = "alarm", at: int = T0,
          **extra: object) -> IngestedEvent:
    payload = Event(seq=seq, boot_id="boot-0001", ts=at - 50, event_id=f"e-{seq}", kind=kind,
                    name=name, state=state, **extra)  # type: ignore[arg-type]
    return IngestedEvent("alpha", "gw1", device, payload, at)


def open_alarms(db: Database) -> list[Alarm]:
    with db.transaction() as session:
        return list(session.scalars(select(Alarm).where(Alarm.closed_ms.is_(None))
                                    .order_by(Alarm.id)))


async def test_profile_alarms_raise_with_their_texts_and_clear(
        sink: AlarmEventSink, db: Database) -> None:
    info = CATALOGUE.lookup("booster-pumpset-modbus", "pump_set_down")
    assert info is not None
    await sink.handle([event("pump_set_down", seq=1), event("pump_set_down", seq=2)])
    (alarm,) = open_alarms(db)
    assert (alarm.priority, alarm.category, alarm.text_en, alarm.text_zh, alarm.source) == (
        info.priority, info.category, info.text_en, info.text_zh, "edge")
    assert alarm.raised_ms == T0 and alarm.detail["edge_ts"] == T0 - 50
    await sink.handle([event("pump_set_down", "cleared", seq=3, at=T0 + 5000)])
    (alarm,) = open_alarms(db)
    assert (alarm.state, alarm.cleared_ms, alarm.occurrences) == ("unack_rtn", T0 + 5000, 1)


async def test_unknown_alarms_use_the_event_and_offline_devices_suppress_point_alarms(
        sink: AlarmEventSink, db: Database) -> None:
    with db.transaction() as session:
        learn_device_state(session, "alpha", "gw1", "pump-1",
                           DeviceState(online=False, since=T0 - 1000, reason="timeout"))
    await sink.handle([
        event("comm_loss", seq=1, severity="high",
              detail={"category": "water", "text_en": "Device not responding",
                      "text_zh": "设备通信中断"}),
        event("low_outlet_pressure", seq=2)])
    comm, pressure = open_alarms(db)
    assert (comm.name, comm.priority, comm.text_zh, comm.suppressed_reason) == (
        "comm_loss", "high", "设备通信中断", None)
    assert (pressure.name, pressure.suppressed_reason) == ("low_outlet_pressure",
                                                           "device_offline")
    assert pressure.next_escalation_ms is None and pressure.next_realarm_ms is None


async def test_an_elevator_in_inspection_mode_suppresses_its_door_alarms(
        sink: AlarmEventSink, db: Database, store: SqliteStore) -> None:
    await store.write([Sample(SeriesKey("alpha", "gw1", "lift-1", "mode"), T0 - 60_000,
                              "inspection", "good")])
    await sink.handle([event("door_lock_fault", device="lift-1", seq=1),
                       event("overspeed", device="lift-1", seq=2)])
    door, overspeed = open_alarms(db)
    assert door.suppressed_reason == "inspection_mode"
    assert overspeed.suppressed_reason is None


async def test_counter_backwards_is_a_one_shot_alarm_left_to_acknowledge(
        sink: AlarmEventSink, db: Database) -> None:
    await sink.handle([
        event("counter_backwards", "backwards", kind="state", device="meter-1", value=120,
              detail={"point": "volume_total", "previous": 5000}),
        event("write", "ok", kind="state", seq=2)])
    (alarm,) = open_alarms(db)
    assert (alarm.name, alarm.state, alarm.active) == (
        "counter_backwards:volume_total", "unack_rtn", False)
    assert "5000 → 120" in alarm.text_en and "倒退" in alarm.text_zh
