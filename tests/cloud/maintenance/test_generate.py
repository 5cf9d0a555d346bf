"""Preventive maintenance: an elevator's 15-day plan over 60 simulated days, idempotent
generation, site-local windows, class plans and counter (run-hours) plans."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cloud.assets.register import create_asset
from cloud.db import Database
from cloud.maintenance.generate import counter_targets, generate_due, read_counters
from cloud.maintenance.plans import create_plan, update_plan
from cloud.timeseries import SqliteStore
from cloud.timeseries.base import Sample, SeriesKey
from cloud.workorders.errors import InvalidInput
from cloud.workorders.tables import WorkOrder
from tests.cloud.api.support import T0_MS

DAY = 86_400_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _elevator(db: Database, name: str = "Lift 1") -> int:
    with db.transaction() as session:
        return create_asset(session, site="alpha", name=name, asset_class="elevator",
                            now_ms=T0_MS, user="supervisor-a").id


def _orders(db: Database) -> list[WorkOrder]:
    with db.transaction() as session:
        return list(session.scalars(select(WorkOrder).order_by(WorkOrder.scheduled_start_ms,
                                                               WorkOrder.asset_id)))


def test_elevator_every_15_days_over_60_days(seeded: Database) -> None:
    asset = _elevator(seeded)
    with seeded.transaction() as session:
        plan = create_plan(session, site="alpha", name="Half-monthly lift service",
                           level="monthly", asset_id=asset, anchor_date=dt.date(2025, 6, 20),
                           now_ms=T0_MS, user="supervisor-a")
        assert plan.interval_days == 15  # the asset's cycle
        assert (plan.window_start_min, plan.window_minutes) == (0, 360)  # after midnight
    # the clock runs 60 days in 3-hour steps (the service runs the job every 30 s; what
    # matters is that it runs often and generates each order once, 3 days ahead)
    for hour in range(0, 60 * 24, 3):
        with seeded.transaction() as session:
            generate_due(session, T0_MS + hour * 3_600_000)
    orders = _orders(seeded)
    dates = [dt.datetime.fromtimestamp(o.scheduled_start_ms / 1000, SHANGHAI)
             for o in orders if o.scheduled_start_ms is not None]
    # due dates within 60 days + 3 days lead: 06-20, 07-05, 07-20, 08-04
    assert [d.date() for d in dates] == [dt.date(2025, 6, 20), dt.date(2025, 7, 5),
                                         dt.date(2025, 7, 20), dt.date(2025, 8, 4)]
    assert all((d.hour, d.minute) == (0, 0) for d in dates)  # window opens at local 00:00
    first = orders[0]
    assert first.source == "pm" and first.category == "elevator" and first.asset_id == asset
    assert first.scheduled_end_ms == first.scheduled_start_ms + 6 * 3_600_000  # type: ignore[operator]
    assert first.resolve_due_ms == first.scheduled_end_ms and first.arrive_due_ms is None
    # each was generated 3 days (lead) before its window opened, not earlier
    for order in orders[1:]:
        assert order.scheduled_start_ms is not None
        assert 0 <= order.scheduled_start_ms - order.created_ms <= 3 * DAY
    assert "2025-07-05" in orders[1].description and "00:00-06:00" in orders[1].description


def test_generation_is_idempotent(seeded: Database) -> None:
    asset = _elevator(seeded)
    with seeded.transaction() as session:
        create_plan(session, site="alpha", name="Lift service", level="monthly",
                    asset_id=asset, anchor_date=dt.date(2025, 6, 16), now_ms=T0_MS, user=None)
    with seeded.transaction() as session:
        assert len(generate_due(session, T0_MS)) == 1
    with seeded.transaction() as session:
        assert generate_due(session, T0_MS) == []
        assert generate_due(session, T0_MS + DAY) == []
    assert len(_orders(seeded)) == 1


def test_a_new_plan_makes_no_backlog(seeded: Database) -> None:
    asset = _elevator(seeded)
    with seeded.transaction() as session:
        create_plan(session, site="alpha", name="Lift service", level="monthly",
                    asset_id=asset, anchor_date=dt.date(2024, 1, 1), now_ms=T0_MS, user=None)
        made = generate_due(session, T0_MS)
    # anchor 2024-01-01 + k*15 days: the next due date on or after 2025-06-15 (local)
    assert len(made) <= 1
    for order in made:
        assert order.scheduled_end_ms is not None and order.scheduled_end_ms > T0_MS


def test_class_plan_covers_every_elevator(seeded: Database) -> None:
    lifts = {_elevator(seeded, "Lift 1"), _elevator(seeded, "Lift 2")}
    with seeded.transaction() as session:
        create_asset(session, site="alpha", name="Pump set", asset_class="pump", now_ms=T0_MS,
                     user=None)
        plan = create_plan(session, site="alpha", name="Lift service", level="monthly",
                           asset_class="elevator", anchor_date=dt.date(2025, 6, 16),
                           now_ms=T0_MS, user=None)
        assert plan.interval_days == 15
        made = generate_due(session, T0_MS)
    assert {o.asset_id for o in made} == lifts


def test_fire_alarm_system_monthly_in_day_hours(seeded: Database) -> None:
    with seeded.transaction() as session:
        panel = create_asset(session, site="alpha", name="Fire alarm system",
                             asset_class="fire_alarm", now_ms=T0_MS, user=None)
        plan = create_plan(session, site="alpha", name="Monthly fire alarm test",
                           level="monthly", asset_id=panel.id, anchor_date=dt.date(2025, 6, 17),
                           now_ms=T0_MS, user=None)
        [order] = generate_due(session, T0_MS)
    assert plan.interval_days == 30 and plan.category == "fire"
    start = dt.datetime.fromtimestamp(order.scheduled_start_ms / 1000, SHANGHAI)  # type: ignore[operator]
    assert (start.date(), start.hour) == (dt.date(2025, 6, 17), 9)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [({"level": "weekly"}, "level"), ({"asset_id": None}, "asset_id"),
     ({"anchor_date": None}, "anchor_date"), ({"window_start_min": 1440}, "window_start_min"),
     ({"trigger": "counter"}, "counter_gateway"), ({"category": "plumbing"}, "category"),
     ({"level": "overhaul", "asset_id": None, "asset_class": "other"}, "interval_days")],
)
def test_plan_input_errors_name_the_field(seeded: Database, fields: dict[str, object],
                                         bad: str) -> None:
    asset = _elevator(seeded)
    values: dict[str, object] = {"name": "Plan", "level": "monthly", "asset_id": asset,
                                 "anchor_date": dt.date(2025, 7, 1)}
    values.update(fields)
    with pytest.raises(InvalidInput) as caught, seeded.transaction() as session:
        create_plan(session, site="alpha", now_ms=T0_MS, user=None, **values)
    assert caught.value.field == bad


async def test_pump_service_every_500_run_hours(seeded: Database, tmp_path: Path) -> None:
    with seeded.transaction() as session:
        pump = create_asset(session, site="alpha", name="Booster pump 1", asset_class="pump",
                            now_ms=T0_MS, user=None)
        plan = create_plan(session, site="alpha", name="Pump service", level="quarterly",
                           asset_id=pump.id, trigger="counter", counter_gateway="gw1",
                           counter_device="pump-1", counter_point="run_hours",
                           counter_start=1000.0, counter_interval=500.0, counter_lead=20.0,
                           now_ms=T0_MS, user=None)
        targets = counter_targets(session)
    series = SeriesKey("alpha", "gw1", "pump-1", "run_hours")
    async with SqliteStore(tmp_path / "ts.db") as store:
        made_by_reading = []
        for n, hours in enumerate([1200.0, 1479.0, 1481.0, 1490.0, 1985.0]):
            await store.write([Sample(series, T0_MS + n * DAY, hours, "good")])
            readings = await read_counters(store, targets)
            assert readings == {plan.id: hours}
            with seeded.transaction() as session:
                made_by_reading.append(len(generate_due(session, T0_MS + n * DAY, readings)))
    # due at 1500 h, generated 20 h ahead (1481); the next at 2000 h (1985 is 15 h short of 2000)
    assert made_by_reading == [0, 0, 1, 0, 1]
    orders = _orders(seeded)
    assert [o.pm_occurrence for o in orders] == [1, 2]
    assert "1500" in orders[0].description and "2000" in orders[1].description


def test_inactive_plans_generate_nothing(seeded: Database) -> None:
    asset = _elevator(seeded)
    with seeded.transaction() as session:
        plan = create_plan(session, site="alpha", name="Lift service", level="monthly",
                           asset_id=asset, anchor_date=dt.date(2025, 6, 16), now_ms=T0_MS,
                           user=None)
        update_plan(session, plan, {"active": False}, now_ms=T0_MS, user=None)
        assert generate_due(session, T0_MS + 30 * DAY) == []
