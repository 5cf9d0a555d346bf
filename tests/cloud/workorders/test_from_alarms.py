"""Alarms raise work orders through the real alarm service (SQLite and PostgreSQL): one
open work order per (asset, alarm), links both ways, maintenance coverage, and a
concurrent burst on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from cloud.alarms.service import AlarmService, AlarmSpec
from cloud.alarms.tables import Alarm
from cloud.assets.register import create_asset, link_device
from cloud.db import Database, learn_birth
from cloud.security.passwords import PasswordHasher
from cloud.workorders.from_alarms import (
    AlarmWorkOrders,
    MaintenanceWorkCoverage,
    alarms_of,
    work_orders_for_alarm,
)
from cloud.workorders.service import create_work_order
from cloud.workorders.states import Actor
from cloud.workorders.tables import WorkOrder, WorkOrderAlarm
from cloud.workorders.transitions import transition
from tests.cloud.api.support import T0_MS, seed
from towerwatch.contract import Birth, DeviceDescriptor

M = 60_000
LIFT_DEVICES = ["lift-ctl", "lift-mon"]


def _service() -> AlarmService:
    return AlarmService(observers=[AlarmWorkOrders()], coverage=MaintenanceWorkCoverage(),
                        clock=lambda: T0_MS / 1000)


def _spec(device: str, name: str = "passenger_trapped", priority: str = "emergency",
          category: str = "elevator") -> AlarmSpec:
    return AlarmSpec(site="alpha", gateway="gw3", device=device, name=name, source="edge",
                     priority=priority, category=category,
                     text_en="PASSENGER TRAPPED in lift 1", text_zh="1号电梯困人")


def _lift(db: Database, devices: list[str]) -> int:
    """Gateway gw3 with ``devices``, all watching one elevator asset."""
    with db.transaction() as session:
        learn_birth(session, "alpha", "gw3", Birth(
            boot_id="boot-0003", version="1.0.0", ts=T0_MS,
            devices=[DeviceDescriptor(id=d, profile="lift") for d in devices]),
            received_ms=T0_MS)
        asset = create_asset(session, site="alpha", name="Lift 1", asset_class="elevator",
                             now_ms=T0_MS, user=None)
        for device in devices:
            link_device(session, asset, "gw3", device, now_ms=T0_MS, user=None)
        return asset.id


@pytest.fixture
def lift(seeded: Database) -> int:
    return _lift(seeded, LIFT_DEVICES)


def _raise(db: Database, service: AlarmService, spec: AlarmSpec, at_ms: int) -> Alarm:
    with db.transaction() as session:
        return service.raise_(session, spec, at_ms)


def test_entrapment_alarm_raises_an_emergency_work_order(seeded: Database, lift: int) -> None:
    alarm = _raise(seeded, _service(), _spec("lift-ctl"), T0_MS)
    with seeded.transaction() as session:
        [order] = work_orders_for_alarm(session, alarm.id)
        assert alarms_of(session, order.id) == [alarm.id]
    assert (order.category, order.priority, order.source) == ("elevator", "emergency", "alarm")
    assert order.asset_id == lift and order.alarm_id == alarm.id
    assert order.arrive_due_ms == T0_MS + 30 * M
    assert "1号电梯困人" in order.description


def test_later_occurrences_attach_until_resolution(seeded: Database, lift: int) -> None:
    service = _service()
    first = _raise(seeded, service, _spec("lift-ctl"), T0_MS)
    # the other device watching the same lift raises the same alarm: same work order
    second = _raise(seeded, service, _spec("lift-mon"), T0_MS + M)
    # the first alarm clears and comes back (reactivation): still the same work order
    with seeded.transaction() as session:
        service.clear(session, "alpha", "gw3", "lift-ctl", "passenger_trapped", T0_MS + 2 * M)
    _raise(seeded, service, _spec("lift-ctl"), T0_MS + 3 * M)
    with seeded.transaction() as session:
        [order] = session.scalars(select(WorkOrder)).all()
        assert order.occurrences == 3
        assert alarms_of(session, order.id) == [first.id, second.id]
        supervisor = Actor("supervisor-a", may_progress=True, may_manage=True)
        for action in ("assign", "accept", "start", "resolve"):
            transition(session, order.id, action, actor=supervisor, now_ms=T0_MS + 4 * M,
                       assignee="engineer-a", comment="released")
    # after resolution a new occurrence opens a new work order
    with seeded.transaction() as session:
        service.clear(session, "alpha", "gw3", "lift-mon", "passenger_trapped", T0_MS + 5 * M)
    third = _raise(seeded, service, _spec("lift-mon"), T0_MS + 6 * M)
    with seeded.transaction() as session:
        orders = session.scalars(select(WorkOrder).order_by(WorkOrder.id)).all()
        assert len(orders) == 2
        # the unacknowledged alarm instance came back: it now links to both, newest first
        assert third.id == second.id
        assert [o.id for o in work_orders_for_alarm(session, third.id)] == [
            orders[1].id, orders[0].id]


def test_low_priority_and_unlinked_devices(seeded: Database, lift: int) -> None:
    service = _service()
    low = _raise(seeded, service, _spec("lift-ctl", name="door_slow", priority="low"), T0_MS)
    pump = _raise(seeded, service, AlarmSpec(
        site="alpha", gateway="gw1", device="pump-1", name="pump_trip", source="edge",
        priority="high", category="water", text_en="Pump 1 tripped", text_zh="1号泵跳闸"), T0_MS)
    with seeded.transaction() as session:
        assert work_orders_for_alarm(session, low.id) == []
        [order] = work_orders_for_alarm(session, pump.id)
    assert (order.priority, order.category, order.asset_id) == ("urgent", "water", None)
    assert order.open_key == "device:alpha/gw1/pump-1|pump_trip"


def test_maintenance_in_progress_puts_the_lift_out_of_service(
    seeded: Database, lift: int
) -> None:
    coverage = MaintenanceWorkCoverage()
    with seeded.transaction() as session:
        pm = create_work_order(session, site="alpha", category="elevator", priority="normal",
                               title="Half-monthly service", source="pm", now_ms=T0_MS,
                               actor=None, asset_id=lift, assignee="engineer-a")
        assert not coverage.covers(session, "alpha", "gw3", "lift-ctl", T0_MS)  # not started
        engineer = Actor("engineer-a", may_progress=True)
        for action in ("accept", "arrive", "start"):
            transition(session, pm.id, action, actor=engineer, now_ms=T0_MS + M)
        assert coverage.covers(session, "alpha", "gw3", "lift-ctl", T0_MS + M)
        assert coverage.covers(session, "alpha", "gw3", "lift-mon", T0_MS + M)
        assert not coverage.covers(session, "alpha", "gw1", "pump-1", T0_MS + M)
    alarm = _raise(seeded, _service(), _spec("lift-ctl", name="door_fault", priority="high"),
                   T0_MS + 2 * M)
    assert alarm.out_of_service
    with seeded.transaction() as session:
        assert work_orders_for_alarm(session, alarm.id) == []


@pytest.mark.integration
def test_concurrent_burst_makes_one_open_work_order(pg: Database, hasher: PasswordHasher) -> None:
    """Eight workers raise the same alarm on eight devices of one lift at the same moment,
    in three rounds (new alarms, another alarm, reactivations): one open work order per
    alarm name, every alarm and occurrence attached."""
    with pg.transaction() as session:
        seed(session, hasher)
    devices = [f"lift-{n}" for n in range(8)]
    _lift(pg, devices)
    service = _service()
    errors: list[BaseException] = []
    for round_ in range(3):
        if round_ == 2:  # fault-0 clears everywhere, then comes back at once (reactivations)
            with pg.transaction() as session:
                for device in devices:
                    service.clear(session, "alpha", "gw3", device, "fault-0", T0_MS + M)
        barrier = threading.Barrier(len(devices))
        name, at_ms = f"fault-{round_ % 2}", T0_MS + round_ * M

        def worker(device: str, barrier: threading.Barrier = barrier, name: str = name,
                   at_ms: int = at_ms) -> None:
            try:
                barrier.wait(timeout=30)
                with pg.transaction() as session:
                    service.raise_(session, _spec(device, name=name), at_ms)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(d,)) for d in devices]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    with pg.transaction() as session:
        orders = session.scalars(select(WorkOrder).order_by(WorkOrder.id)).all()
        attached = session.scalar(select(func.count()).select_from(WorkOrderAlarm))
        alarms = session.scalar(select(func.count()).select_from(Alarm))
    # rounds 0 and 2 raise fault-0, round 1 raises fault-1: one work order per alarm name
    assert [o.alarm_key for o in orders] == ["fault-0", "fault-1"]
    assert alarms == 16 and attached == 16
    assert [o.occurrences for o in orders] == [16, 8]
