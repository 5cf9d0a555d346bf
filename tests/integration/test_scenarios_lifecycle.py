"""The alarm and work-order clocks end to end, with the cloud's clock moved by hand:

- an unacknowledged emergency alarm escalates exactly when its delay has passed (and is
  notified), and stops climbing once acknowledged;
- a shelve needs a reason and a bounded duration, and expires by itself;
- deadlines that pass are recorded as SLA breaches (visible through the API);
- a preventive-maintenance plan gives an elevator its 15-day work orders, after midnight.

Simulator → edge (real time, fast polls) → Mosquitto → cloud (SQLite and PostgreSQL) → API.
"""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from tests.integration.scenario_rig import (
    WORK_ORDER_JOB,
    ScenarioRig,
    login,
    scenario_fixtures,
)

pytestmark = pytest.mark.integration
MIN = 60_000
DAY = 86_400_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


building, rig = scenario_fixtures("127.0.72.0", ["fire-annex", "door-lobby", "lift-1"])


async def at(rig: ScenarioRig, when_ms: int, *jobs: str) -> None:
    """Move the cloud clock to ``when_ms`` (never back) and run ``jobs`` there."""
    await rig.later(max(0.0, (when_ms - rig.now_ms()) / 1000), *jobs)


async def test_an_unacknowledged_emergency_alarm_escalates_on_time(rig: ScenarioRig) -> None:
    rig.fault("fire-annex", "fire_alarm", {"zone": 2, "hold": 3600},
              until=lambda v: v["zone2_fire"] is True)
    alarm = await rig.alarm("fire-annex", "zone2_fire")
    raised = alarm["raised"]
    assert alarm["priority"] == "emergency" and alarm["escalation_level"] == 0
    assert alarm["next_escalation"] == raised + 5 * MIN  # the 5-minute response norm
    await at(rig, raised + 5 * MIN - 3000, "alarm-timers")
    assert (await rig.alarm("fire-annex", "zone2_fire"))["escalation_level"] == 0
    await at(rig, raised + 5 * MIN, "alarm-timers")
    first = await rig.alarm("fire-annex", "zone2_fire")
    assert first["escalation_level"] == 1
    assert first["next_escalation"] == raised + 15 * MIN
    escalated = [n for n in rig.notifier.sent
                 if n.kind == "escalated" and n.alarm["id"] == alarm["id"]]
    assert [n.level for n in escalated] == [1]
    assert "已升级至第1级" in escalated[0].text("zh")
    assert "ESCALATED to level 1" in escalated[0].text("en")
    await at(rig, raised + 15 * MIN, "alarm-timers")
    assert (await rig.alarm("fire-annex", "zone2_fire"))["escalation_level"] == 2
    reply = await rig.call("POST", f"{rig.base}/alarms/{alarm['id']}/acknowledge",
                           {"comment": "control room confirmed: detector in zone 2"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "ack_active" and reply.json()["next_escalation"] is None
    await at(rig, raised + 31 * MIN, "alarm-timers")
    after = await rig.alarm("fire-annex", "zone2_fire")
    assert after["escalation_level"] == 2 and after["acked_by"] == "admin"


async def test_a_shelve_needs_a_reason_and_expires(rig: ScenarioRig) -> None:
    rig.fault("door-lobby", "door_forced", {"door": 2},
              until=lambda v: v["door2_forced"] is True)
    alarm = await rig.alarm("door-lobby", "door2_forced")
    assert (alarm["priority"], alarm["category"]) == ("high", "access")
    path = f"{rig.base}/alarms/{alarm['id']}/shelve"
    for body, field in [({"reason": "   ", "duration_s": 600}, "body.reason"),
                        ({"duration_s": 600}, "body.reason"),
                        ({"reason": "door contact replaced", "duration_s": 9 * 3600},
                         "body.until")]:
        refused = await rig.call("POST", path, body)
        assert refused.status_code in (400, 422), (body, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "validation_failed", error
        assert field in str(error["details"]), (body, error)
    shelved = await rig.call("POST", path, {"reason": "door contact being replaced",
                                            "duration_s": 600})
    assert shelved.status_code == 200, shelved.text
    until = shelved.json()["shelved_until"]
    assert shelved.json()["shelved"] is True and shelved.json()["shelve_reason"]
    assert await rig.alarms(shelved="false", device="door-lobby") == []
    await at(rig, until - 2000, "alarm-timers")
    assert (await rig.alarm("door-lobby", "door2_forced"))["shelved"] is True
    await at(rig, until, "alarm-timers")
    back = await rig.alarm("door-lobby", "door2_forced", shelved="false")
    assert back["state"] == "unack_active" and back["next_realarm"] is not None
    detail = await rig.get(f"{rig.base}/alarms/{alarm['id']}")
    changes = [h["change"] for h in detail["history"]]
    assert changes.index("shelved") < changes.index("shelve_expired")
    expired = next(h for h in detail["history"] if h["change"] == "shelve_expired")
    assert expired["user"] is None and expired["ts"] >= until


async def test_passed_deadlines_are_recorded_as_sla_breaches(rig: ScenarioRig) -> None:
    rig.fault("lift-1", "passenger_trapped", until=lambda v: v["passenger_trapped"] is True)
    alarm = await rig.alarm("lift-1", "passenger_trapped")
    order = await rig.work_order_of(alarm["id"])
    created = order["created"]
    assert (order["respond_due"], order["arrive_due"]) == (created + 5 * MIN,
                                                           created + 30 * MIN)
    await at(rig, created + 4 * MIN, WORK_ORDER_JOB)
    assert await rig.get(f"{rig.base}/sla-breaches") == []
    await at(rig, created + 6 * MIN, WORK_ORDER_JOB)
    breaches = await rig.get(f"{rig.base}/sla-breaches")
    assert [(b["work_order_id"], b["kind"], b["due"]) for b in breaches] == [
        (order["id"], "respond", created + 5 * MIN)]
    await at(rig, created + 31 * MIN, WORK_ORDER_JOB, WORK_ORDER_JOB)  # once per deadline
    kinds = sorted(b["kind"] for b in await rig.get(f"{rig.base}/sla-breaches"))
    assert kinds == ["arrive", "respond"]
    notified = [n for n in rig.notifier.sent if n.kind == "sla_breach"
                and n.alarm.get("work_order") == order["id"]]
    assert sorted(n.alarm["kind"] for n in notified) == ["arrive", "respond"]  # escalated once
    assert all(n.alarm["text_en"] and n.alarm["text_zh"] for n in notified)
    listed = await rig.work_orders(sla="breached")
    assert [o["id"] for o in listed] == [order["id"]]


async def test_a_pm_plan_gives_an_elevator_its_15_day_work_orders(rig: ScenarioRig) -> None:
    asset = await rig.call("POST", f"{rig.base}/assets", {
        "name": "Passenger lift 1", "asset_class": "elevator", "model": "GeN2",
        "supplier": "Otis", "install_date": "2019-05-01", "building": "T1", "floor": "R"})
    assert asset.status_code == 201, asset.text
    asset_id = asset.json()["id"]
    linked = await rig.call("PUT", f"{rig.base}/assets/{asset_id}/devices/gw-1/lift-1")
    assert linked.status_code == 200, linked.text
    today = dt.datetime.fromtimestamp(rig.now_ms() / 1000, SHANGHAI).date()
    plan = await rig.call("POST", f"{rig.base}/pm-plans", {
        "name": "Half-monthly lift maintenance", "level": "monthly", "asset_id": asset_id,
        "anchor_date": (today + dt.timedelta(days=1)).isoformat()})
    assert plan.status_code == 201, plan.text
    assert plan.json()["interval_days"] == 15  # the elevator default (DOMAIN.md)
    assert plan.json()["window_start_min"] == 0  # after midnight
    lead = plan.json()["lead_days"]
    await at(rig, rig.now_ms() + 60 * DAY, WORK_ORDER_JOB)
    rig.headers = await login(rig.client)  # the first token expired with the jump
    orders = sorted((o for o in await rig.work_orders(source="pm", limit=500)),
                    key=lambda o: o["scheduled_start"])
    assert len(orders) >= 4
    starts = [o["scheduled_start"] for o in orders]
    assert all(b - a == 15 * DAY for a, b in itertools.pairwise(starts))
    first = dt.datetime.fromtimestamp(starts[0] / 1000, SHANGHAI)
    assert first.date() == today + dt.timedelta(days=1) and (first.hour, first.minute) == (0, 0)
    assert starts[-1] <= rig.now_ms() + (lead + 1) * DAY
    assert all(o["asset_id"] == asset_id and o["category"] == "elevator" for o in orders)
    await rig.run_job(WORK_ORDER_JOB)
    assert len(await rig.work_orders(source="pm", limit=500)) == len(orders)  # nothing twice
