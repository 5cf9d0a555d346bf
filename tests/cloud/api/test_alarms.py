"""The alarm routes on SQLite and PostgreSQL: the board, filters and paging, acknowledge,
shelve/unshelve with their checks, comments, history, alarm-load figures, permissions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.alarms import AlarmService, AlarmSpec
from cloud.db import Database, list_audit
from cloud.notify.base import LogNotifier
from tests.cloud.api.support import T0_MS, AsUser, FakeClock, assert_error

MIN = 60_000


@pytest.fixture
def alarms(app: FastAPI, clock: FakeClock) -> AlarmService:
    service = AlarmService(clock=clock, notifier=LogNotifier())
    app.state.alarms = service
    return service


def raise_(database: Database, service: AlarmService, name: str, priority: str, category: str,
           at: int, device: str = "pump-1", site: str = "alpha") -> int:
    with database.transaction() as session:
        return service.raise_(session, AlarmSpec(
            site, "gw1" if site == "alpha" else "gw9", device, name, "edge", priority, category,
            f"{name} text", f"{name} 文字"), at).id


async def test_board_puts_fire_first_filters_and_pages(
        database: Database, alarms: AlarmService, as_user: AsUser) -> None:
    ids = {name: raise_(database, alarms, name, priority, category, T0_MS + n * 1000)
           for n, (name, priority, category) in enumerate([
               ("pump1_tripped", "high", "water"), ("zone1_fault", "low", "fire"),
               ("passenger_trapped", "emergency", "elevator"),
               ("zone3_fire", "emergency", "fire")])}
    viewer = await as_user("viewer-a")
    body = (await viewer.get("/api/v1/sites/alpha/alarms")).json()
    assert body["total"] == 4
    assert [a["name"] for a in body["items"]] == [
        "zone3_fire", "zone1_fault", "passenger_trapped", "pump1_tripped"]
    first = body["items"][0]
    assert (first["state"], first["open"], first["gateway"], first["text_zh"]) == (
        "unack_active", True, "gw1", "zone3_fire 文字")
    page = (await viewer.get("/api/v1/sites/alpha/alarms",
                             params={"priority": "emergency", "limit": 1, "offset": 1})).json()
    assert page["total"] == 2 and [a["id"] for a in page["items"]] == [ids["passenger_trapped"]]
    recent = (await viewer.get("/api/v1/sites/alpha/alarms", params={"sort": "recent"})).json()
    assert recent["items"][0]["name"] == "zone3_fire"
    assert recent["items"][-1]["name"] == "pump1_tripped"
    bad = await viewer.get("/api/v1/sites/alpha/alarms", params={"since": "yesterday"})
    assert assert_error(bad, 400, "validation_failed")["details"][0]["path"] == "query.since"
    assert_error(await (await as_user("viewer-b")).get("/api/v1/sites/alpha/alarms"),
                 403, "forbidden")
    assert_error(await (await as_user("guard-a")).get("/api/v1/sites/alpha/alarms"),
                 403, "forbidden")


async def test_acknowledge_is_audited_and_refused_twice(
        database: Database, alarms: AlarmService, as_user: AsUser, clock: FakeClock) -> None:
    alarm_id = raise_(database, alarms, "pump1_tripped", "high", "water", T0_MS)
    url = f"/api/v1/sites/alpha/alarms/{alarm_id}/acknowledge"
    assert_error(await (await as_user("viewer-a")).post(url), 403, "forbidden")
    engineer = await as_user("engineer-a")
    clock.advance(30)
    response = await engineer.post(url, json={"comment": "standby running, going down"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["acked_by"], body["acked"]) == (
        "ack_active", "engineer-a", T0_MS + 30_000)
    again = assert_error(await engineer.post(url), 409, "invalid_transition")
    assert again["details"] == {"alarm_id": alarm_id, "state": "ack_active"}
    with database.transaction() as session:
        audit = [(e.action, e.username, e.target) for e in list_audit(session, site="alpha")]
    assert audit == [("alarm.acknowledge", "engineer-a", "gw1/pump-1/pump1_tripped")]
    assert_error(await engineer.post("/api/v1/sites/alpha/alarms/999999/acknowledge"),
                 404, "alarm_not_found")
    other = raise_(database, alarms, "meter_offline", "medium", "water", T0_MS,
                   device="meter-1", site="beta")
    admin = await as_user("admin")
    assert_error(await admin.post(f"/api/v1/sites/alpha/alarms/{other}/acknowledge"),
                 404, "alarm_not_found")


async def test_shelve_needs_a_reason_and_a_bounded_time_then_unshelve_and_comment(
        database: Database, alarms: AlarmService, as_user: AsUser) -> None:
    alarm_id = raise_(database, alarms, "pump1_tripped", "high", "water", T0_MS)
    base = f"/api/v1/sites/alpha/alarms/{alarm_id}"
    assert_error(await (await as_user("engineer-a")).post(
        f"{base}/shelve", json={"reason": "x", "duration_s": 60}), 403, "forbidden")
    supervisor = await as_user("supervisor-a")
    no_reason = await supervisor.post(f"{base}/shelve", json={"reason": " ", "duration_s": 60})
    assert assert_error(no_reason, 400, "validation_failed")["details"][0]["path"] == \
        "body.reason"
    too_long = await supervisor.post(f"{base}/shelve",
                                     json={"reason": "repair", "duration_s": 9 * 3600})
    assert assert_error(too_long, 400, "validation_failed")["details"][0]["path"] == "body.until"
    both = await supervisor.post(f"{base}/shelve", json={"reason": "repair"})
    assert_error(both, 400, "validation_failed")
    until = "2025-06-15T15:00:00Z"
    shelved = (await supervisor.post(f"{base}/shelve",
                                     json={"reason": "pressure sensor replaced",
                                           "until": until})).json()
    assert (shelved["shelved"], shelved["shelved_until"], shelved["shelve_reason"]) == (
        True, T0_MS + 3_600_000, "pressure sensor replaced")
    listed = (await supervisor.get("/api/v1/sites/alpha/alarms",
                                   params={"shelved": "false"})).json()
    assert listed["total"] == 0
    assert (await supervisor.post(f"{base}/unshelve")).json()["shelved"] is False
    assert_error(await supervisor.post(f"{base}/unshelve"), 409, "invalid_transition")
    note = await supervisor.post(f"{base}/comments", json={"text": "ordered a new sensor"})
    assert note.status_code == 201 and note.json()["change"] == "comment"
    detail = (await supervisor.get(base)).json()
    assert [(h["change"], h["user"]) for h in detail["history"]] == [
        ("raised", None), ("shelved", "supervisor-a"), ("unshelved", "supervisor-a"),
        ("comment", "supervisor-a")]
    assert detail["history"][1]["comment"] == "pressure sensor replaced"
    with database.transaction() as session:
        actions = [e.action for e in list_audit(session, site="alpha")]
    assert actions == ["alarm.comment", "alarm.unshelved", "alarm.shelve"]


async def test_alarm_load_counts_annunciations_chattering_and_priorities(
        database: Database, alarms: AlarmService, as_user: AsUser) -> None:
    for n in range(3):  # the same alarm three times within a minute: chattering
        raise_(database, alarms, "door1_forced", "high", "access", T0_MS + n * 10_000)
        with database.transaction() as session:
            alarms.clear(session, "alpha", "gw1", "pump-1", "door1_forced", T0_MS + n * 10_000
                         + 5000)
    for n in range(9):
        raise_(database, alarms, f"zone{n}_fault", "low", "fire", T0_MS + 60_000 + n)
    viewer = await as_user("viewer-a")
    response = await viewer.get("/api/v1/sites/alpha/alarm-load",
                                params={"start": str(T0_MS), "end": str(T0_MS + 3_600_000)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["annunciations"] == 12
    assert body["per_10min_max"] == 12 and body["flood_windows"] == [
        {"start": T0_MS, "count": 12}]
    assert body["chattering"] == [{"gateway": "gw1", "device": "pump-1", "name": "door1_forced",
                                   "max_per_minute": 3}]
    assert body["bad_actors"][0] == {"gateway": "gw1", "device": "pump-1",
                                     "name": "door1_forced", "count": 3, "share": 0.25}
    assert body["priority_split"]["low"] == {"count": 9, "share": 0.75}
    too_long = await viewer.get("/api/v1/sites/alpha/alarm-load",
                                params={"start": "0", "end": str(T0_MS)})
    assert_error(too_long, 422, "range_too_large")


async def test_unknown_site_alarm_list_is_404_for_admins(
        as_user: AsUser, alarms: AlarmService) -> None:
    admin: httpx.AsyncClient = await as_user("admin")
    assert_error(await admin.get("/api/v1/sites/nowhere/alarms"), 404, "site_not_found")
