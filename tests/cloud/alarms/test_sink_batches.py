"""A batch of edge events through the alarm sink with the production observers (work
orders from alarms, maintenance coverage), on SQLite and PostgreSQL: the lookups are made
once per batch, not once per event; a key raised, cleared and raised again within one
batch keeps one open alarm and one work order; a batch that fails leaves nothing behind
and is applied event by event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from cloud.alarms import AlarmEventSink, AlarmService
from cloud.alarms.tables import Alarm
from cloud.assets.register import create_asset, link_device
from cloud.db import Database
from cloud.ingest.pipeline import IngestedEvent
from cloud.workorders.from_alarms import AlarmWorkOrders, MaintenanceWorkCoverage
from cloud.workorders.tables import WorkOrder, WorkOrderAlarm
from tests.cloud.alarms.support import T0, RecordingNotifier, seed_site
from tests.cloud.alarms.test_sink import CATALOGUE, event

PUMP_ALARMS = ("pump1_tripped", "pump2_tripped", "pump_set_down", "low_outlet_pressure")


@pytest.fixture
def sink(db: Database) -> AlarmEventSink:
    with db.transaction() as session:
        seed_site(session)
        pumps = create_asset(session, site="alpha", name="Booster set", asset_class="pump",
                             now_ms=T0, user=None)
        link_device(session, pumps, "gw1", "pump-1", now_ms=T0, user=None)
    service = AlarmService(observers=[AlarmWorkOrders()], coverage=MaintenanceWorkCoverage(),
                           notifier=RecordingNotifier())
    return AlarmEventSink(db, service, CATALOGUE)


@contextmanager
def reads(db: Database) -> Iterator[Counter[str]]:
    """SELECTs per table (the first table named after FROM)."""
    seen: Counter[str] = Counter()

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        words = statement.split()
        if words[0] == "SELECT" and "FROM" in words:
            seen[words[words.index("FROM") + 1]] += 1

    sa_event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", count)


async def test_a_batch_looks_things_up_once_not_per_event(
        sink: AlarmEventSink, db: Database) -> None:
    """A batch of 4 events of one device and one of 12 events of 3 devices read as often."""
    def batch(devices: tuple[str, ...], first_seq: int) -> list[IngestedEvent]:
        return [event(name, device=device, seq=first_seq + n, at=T0 + n)
                for n, (device, name) in enumerate(
                    [(d, a) for d in devices for a in PUMP_ALARMS])]

    with reads(db) as small:
        await sink.handle(batch(("pump-1",), 1))
    with reads(db) as large:
        await sink.handle(batch(("meter-1", "lift-1", "pump-1"), 100))
    with db.transaction() as session:
        alarms = session.scalar(select(func.count()).select_from(Alarm))
        orders = session.scalars(select(WorkOrder).order_by(WorkOrder.id)).all()
    assert alarms == 12 and sink.failed == 0
    assert len(orders) == 12  # every alarm is high or medium: one work order each
    assert {o.asset_id is not None for o in orders if o.device_id == "pump-1"} == {True}
    assert small == large, (small, large)
    assert sum(large.values()) <= 10 and max(large.values()) <= 2, large


async def test_raised_cleared_and_raised_again_in_one_batch(
        sink: AlarmEventSink, db: Database) -> None:
    await sink.handle([event("pump1_tripped", seq=1), event("pump1_tripped", "cleared", seq=2),
                       event("pump1_tripped", seq=3, at=T0 + 10),
                       event("pump1_tripped", seq=4, at=T0 + 20)])
    with db.transaction() as session:
        (alarm,) = session.scalars(select(Alarm)).all()
        (order,) = session.scalars(select(WorkOrder)).all()
        links = session.scalars(select(WorkOrderAlarm)).all()
        assert (alarm.occurrences, alarm.state, alarm.active) == (2, "unack_active", True)
        assert order.occurrences == 2 and [link.alarm_id for link in links] == [alarm.id]


async def test_a_failing_batch_is_retried_event_by_event(
        sink: AlarmEventSink, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    good = sink.apply

    def apply(session, item, values):  # type: ignore[no-untyped-def]
        if item.event.name == "pump2_tripped":
            raise RuntimeError("a bad event")
        good(session, item, values)

    monkeypatch.setattr(sink, "apply", apply)
    await sink.handle([event("pump1_tripped", seq=1), event("pump2_tripped", seq=2),
                       event("pump_set_down", seq=3)])
    with db.transaction() as session:
        names = sorted(session.scalars(select(Alarm.name)))
        orders = session.scalar(select(func.count()).select_from(WorkOrder))
    assert (names, orders, sink.failed) == (["pump1_tripped", "pump_set_down"], 2, 1)
