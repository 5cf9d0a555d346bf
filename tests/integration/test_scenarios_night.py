"""The night shift end to end: a door forced open and water that never stops flowing.

Simulator (its clock at 23:00 site time) → edge (real time, fast polls) → Mosquitto →
cloud (SQLite and PostgreSQL) → API:

- a door forced open raises a high access alarm and an urgent work order (30 minutes to
  respond and to arrive);
- a leak keeps the main water meter from ever reading zero flow through the night: the
  meter flags continuous flow and the cloud shows the leak alarm and a work order.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.integration.scenario_rig import ScenarioRig, scenario_fixtures

pytestmark = pytest.mark.integration
MIN = 60_000
NIGHT = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
CONTINUOUS_FLOW = 1 << 0
LEAK_DETECT_HOURS = 2


building, rig = scenario_fixtures("127.0.74.0", ["door-lobby", "water-main"], start=NIGHT)


async def test_a_forced_door_raises_an_access_alarm_and_an_urgent_work_order(
        rig: ScenarioRig) -> None:
    rig.fault("door-lobby", "door_forced", {"door": 3}, until=lambda v: v["door3_forced"] is True)
    alarm = await rig.alarm("door-lobby", "door3_forced")
    assert (alarm["priority"], alarm["category"], alarm["state"]) == (
        "high", "access", "unack_active")
    assert "异常开门" in alarm["text_zh"]
    order = await rig.work_order_of(alarm["id"])
    assert (order["priority"], order["category"]) == ("urgent", "access")
    assert order["respond_due"] - order["created"] == 30 * MIN
    assert order["arrive_due"] - order["created"] == 30 * MIN


async def test_continuous_night_flow_raises_the_leak_alarm(rig: ScenarioRig) -> None:
    meter = rig.building.device("water-main").model
    meter.write("leak_detect_time", LEAK_DETECT_HOURS)  # the meter's own setting (hours)
    rig.step(30 * 60, every=60)  # a quiet half hour: no leak, no alarm
    assert not int(rig.building.values("water-main")["meter_status"]) & CONTINUOUS_FLOW
    assert await rig.alarms(device="water-main") == []
    rig.fault("water-main", "leak", {"rate": 0.3}, every=60,
              within=(LEAK_DETECT_HOURS + 1) * 3600,
              until=lambda v: bool(int(v["meter_status"]) & CONTINUOUS_FLOW))
    assert rig.building.clock.local().hour < 6  # flagged in the small hours
    alarm = await rig.alarm("water-main", "continuous_flow")
    assert (alarm["priority"], alarm["category"]) == ("medium", "water")
    order = await rig.work_order_of(alarm["id"])
    assert order["category"] == "water" and order["device"] == "water-main"
