"""Elevator scenarios end to end: simulator → edge → Mosquitto → cloud (SQLite and
PostgreSQL) → API.

- a passenger trapped raises an emergency alarm and a work order whose arrival deadline is
  30 minutes after it was raised (the entrapment norm); the rescue returns the alarm;
"""

from __future__ import annotations

import pytest

from tests.integration.scenario_rig import ScenarioRig, scenario_fixtures

pytestmark = pytest.mark.integration
MIN = 60_000


building, rig = scenario_fixtures("127.0.71.0", ["lift-1", "lift-2"])


async def test_a_trapped_passenger_raises_an_emergency_alarm_and_a_30_minute_work_order(
        rig: ScenarioRig) -> None:
    rig.fault("lift-1", "passenger_trapped", until=lambda v: v["passenger_trapped"] is True)
    alarm = await rig.alarm("lift-1", "passenger_trapped")
    assert (alarm["priority"], alarm["category"], alarm["state"]) == (
        "emergency", "elevator", "unack_active")
    assert alarm["text_en"] and alarm["text_zh"] != alarm["text_en"]
    order = await rig.work_order_of(alarm["id"])
    assert order["priority"] == "emergency"
    assert order["category"] == "elevator"
    assert order["arrive_due"] - order["created"] == 30 * MIN
    assert order["created"] == alarm["raised"]
    rig.repair("lift-1", "passenger_trapped", until=lambda v: v["passenger_trapped"] is False)
    back = await rig.alarm("lift-1", "passenger_trapped",
                           where=lambda a: a["state"] == "unack_rtn")
    assert back["active"] is False and back["id"] == alarm["id"]
