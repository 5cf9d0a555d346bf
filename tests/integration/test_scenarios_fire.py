"""Fire first, and the pump set that trips and is taken over by its standby, end to end:
simulator → edge (real time, fast polls; the BACnet fire panel by COV) → Mosquitto →
cloud (SQLite and PostgreSQL) → API.

- a fire alarm in zone 3 is an emergency alarm at the top of the alarm board, above an
  entrapment raised after it, and its work order must see the micro fire station on site
  within 3 minutes;
- a duty pump trips, the standby takes over: an alarm and a work order; when the pump is
  reset the alarm returns, and acknowledging it brings it back to normal.
"""

from __future__ import annotations

import pytest

from tests.integration.scenario_rig import ScenarioRig, scenario_fixtures

pytestmark = pytest.mark.integration
MIN = 60_000
STANDBY_IN_USE = 1 << 2


building, rig = scenario_fixtures("127.0.73.0",
                                  ["fire-panel", "door-lobby", "lift-2", "booster"])


async def test_a_zone_3_fire_is_an_emergency_at_the_top_of_the_board(rig: ScenarioRig) -> None:
    rig.fault("door-lobby", "door_forced", {"door": 1},
              until=lambda v: v["door1_forced"] is True)
    await rig.alarm("door-lobby", "door1_forced")
    rig.fault("fire-panel", "fire_alarm", {"zone": 3, "hold": 3600},
              until=lambda v: v["zone3_fire"] is True)
    fire = await rig.alarm("fire-panel", "zone3_fire")
    assert (fire["priority"], fire["category"], fire["state"]) == (
        "emergency", "fire", "unack_active")
    assert fire["text_zh"] == "3号防区火警"
    rig.fault("lift-2", "passenger_trapped", until=lambda v: v["passenger_trapped"] is True)
    trapped = await rig.alarm("lift-2", "passenger_trapped")
    assert trapped["priority"] == "emergency" and trapped["last_active"] > fire["last_active"]
    board = await rig.alarms()
    assert [(a["device"], a["name"]) for a in board[:3]] == [
        ("fire-panel", "zone3_fire"), ("lift-2", "passenger_trapped"),
        ("door-lobby", "door1_forced")]
    order = await rig.work_order_of(fire["id"])
    assert (order["priority"], order["category"]) == ("emergency", "fire")
    assert order["arrive_due"] - order["created"] == 3 * MIN
    assert order["respond_due"] - order["created"] == 5 * MIN


async def test_a_pump_trip_is_taken_over_and_returns_to_normal_on_reset(
        rig: ScenarioRig) -> None:
    duty = int(rig.building.values("booster")["duty_pump"])
    alarm_name = f"pump{duty}_tripped"
    rig.fault("booster", "pump_trip", {"pump": duty}, within=120,
              until=lambda v: bool(int(v["status_word"]) & STANDBY_IN_USE)
              and int(v["pumps_running"]) >= 1)
    assert rig.building.values("booster")["set_state"] == "degraded"
    alarm = await rig.alarm("booster", alarm_name)
    assert (alarm["priority"], alarm["category"], alarm["state"]) == (
        "medium", "water", "unack_active")
    order = await rig.work_order_of(alarm["id"])
    assert (order["priority"], order["category"], order["state"]) == ("normal", "water", "new")
    assert order["resolve_due"] - order["created"] == 24 * 60 * MIN
    rig.repair("booster", "pump_trip", {"pump": duty},
               until=lambda v: not int(v["fault_word"]) & (1 << (duty - 1)))
    back = await rig.alarm("booster", alarm_name, where=lambda a: a["state"] == "unack_rtn")
    assert back["id"] == alarm["id"] and back["active"] is False
    reply = await rig.call("POST", f"{rig.base}/alarms/{alarm['id']}/acknowledge",
                           {"comment": "pump reset at the panel"})
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["open"]) == ("normal", False)
    assert await rig.alarms(device="booster", name=alarm_name) == []
