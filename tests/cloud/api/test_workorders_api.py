"""The work-order API over the app (SQLite, and PostgreSQL marked integration): roles,
transitions, SLA fields, history, follow-up, photos, filters, SLA policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.alarms.service import AlarmService, AlarmSpec
from cloud.db import Database
from cloud.workorders.breaches import check_sla
from cloud.workorders.from_alarms import AlarmWorkOrders
from cloud.workorders.photos import PhotoStore
from tests.cloud.api.support import T0_MS, AsUser, FakeClock, assert_error

BASE = "/api/v1/sites/alpha"
M = 60_000
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 50


@pytest.fixture
def photos(app: FastAPI, tmp_path: Path) -> PhotoStore:
    store = PhotoStore(tmp_path / "photos", max_bytes=1024)
    app.state.photo_store = store
    return store


async def _create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"category": "elevator", "priority": "emergency", "title": "Passenger trapped"}
    body.update(fields)
    response = await http.post(f"{BASE}/work-orders", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _act(http: httpx.AsyncClient, order: int, action: str, **fields: Any) -> httpx.Response:
    return await http.post(f"{BASE}/work-orders/{order}/transitions",
                           json={"action": action, **fields})


async def test_roles(as_user: AsUser) -> None:
    viewer, engineer, supervisor, guard, other = [
        await as_user(u) for u in ("viewer-a", "engineer-a", "supervisor-a", "guard-a",
                                   "viewer-b")]
    order = await _create(engineer)
    assert order["state"] == "new" and order["created_by"] == "engineer-a"
    assert order["arrive_due"] == T0_MS + 30 * M and order["sla_status"] == "ok"
    # a viewer reads but cannot create or transition
    assert (await viewer.get(f"{BASE}/work-orders/{order['id']}")).status_code == 200
    assert_error(await viewer.post(f"{BASE}/work-orders", json={
        "category": "general", "priority": "low", "title": "x"}), 403, "forbidden")
    assert_error(await _act(viewer, order["id"], "cancel", comment="no"), 403, "forbidden")
    # guards and other sites see nothing
    assert_error(await guard.get(f"{BASE}/work-orders"), 403, "forbidden")
    assert_error(await other.get(f"{BASE}/work-orders/{order['id']}"), 403, "forbidden")
    # an engineer cannot assign (not even on creation) or close
    assert_error(await _act(engineer, order["id"], "assign", assignee="engineer-a"),
                 403, "forbidden")
    assert_error(await engineer.post(f"{BASE}/work-orders", json={
        "category": "general", "priority": "low", "title": "x", "assignee": "engineer-a"}),
        403, "forbidden")
    assigned = (await _act(supervisor, order["id"], "assign", assignee="engineer-a")).json()
    assert assigned["state"] == "assigned" and assigned["assignee"] == "engineer-a"
    for action in ("accept", "arrive", "start"):
        assert (await _act(engineer, order["id"], action)).status_code == 200
    resolved = await _act(engineer, order["id"], "resolve", comment="released the passenger")
    assert resolved.json()["state"] == "resolved"
    assert_error(await _act(engineer, order["id"], "close"), 403, "forbidden")
    assert_error(await _act(supervisor, order["id"], "close"), 409, "conflict")  # follow-up
    assert_error(await engineer.post(f"{BASE}/work-orders/{order['id']}/follow-up",
                                     json={"outcome": "satisfied"}), 403, "forbidden")
    follow = await supervisor.post(f"{BASE}/work-orders/{order['id']}/follow-up",
                                   json={"outcome": "satisfied", "note": "called back"})
    assert follow.json()["follow_up_outcome"] == "satisfied"
    closed = (await _act(supervisor, order["id"], "close")).json()
    assert closed["state"] == "closed"
    assert [(h["action"], h["user"]) for h in closed["history"]] == [
        ("create", "engineer-a"), ("assign", "supervisor-a"), ("accept", "engineer-a"),
        ("arrive", "engineer-a"), ("start", "engineer-a"), ("resolve", "engineer-a"),
        ("follow_up", "supervisor-a"), ("close", "supervisor-a")]
    assert closed["history"][5]["comment"] == "released the passenger"


async def test_errors_name_what_is_wrong(as_user: AsUser) -> None:
    supervisor = await as_user("supervisor-a")
    bad = await supervisor.post(f"{BASE}/work-orders", json={
        "category": "plumbing", "priority": "low", "title": "x"})
    assert assert_error(bad, 400, "validation_failed")["details"][0]["path"] == "body.category"
    missing = await supervisor.post(f"{BASE}/work-orders", json={"category": "general"})
    assert assert_error(missing, 400, "validation_failed")["details"]
    assert_error(await supervisor.get(f"{BASE}/work-orders/999"), 404, "work_order_not_found")
    order = await _create(supervisor)
    refused = await _act(supervisor, order["id"], "resolve", comment="x")
    assert assert_error(refused, 409, "invalid_transition")["details"]["state"] == "new"
    hold = await _act(supervisor, order["id"], "cancel")
    assert assert_error(hold, 400, "validation_failed")["details"][0]["path"] == "body.comment"
    unknown = await _act(supervisor, order["id"], "assign", assignee="viewer-a")
    assert assert_error(unknown, 400, "validation_failed")["details"][0]["path"] == \
        "body.assignee"
    assert_error(await supervisor.post(f"{BASE}/work-orders", json={
        "category": "general", "priority": "low", "title": "x", "asset_id": 42}),
        404, "asset_not_found")


async def test_hold_moves_deadlines_and_list_filters(
    as_user: AsUser, clock: FakeClock, database: Database
) -> None:
    supervisor = await as_user("supervisor-a")
    lift = await _create(supervisor, assignee="engineer-a")
    wall = await _create(supervisor, category="general", priority="low", title="Scuffed wall")
    await _act(supervisor, lift["id"], "accept")
    clock.advance(10 * 60)
    held = (await _act(supervisor, lift["id"], "hold", comment="waiting for parts")).json()
    assert held["state"] == "on_hold" and held["sla_status"] == "paused"
    clock.advance(60 * 60)
    supervisor = await as_user("supervisor-a")  # a fresh token (they last an hour here)
    now = (await supervisor.get(f"{BASE}/work-orders/{lift['id']}")).json()
    assert now["arrive_due"] == T0_MS + 90 * M  # moved along with the clock
    resumed = (await _act(supervisor, lift["id"], "resume")).json()
    assert resumed["arrive_due"] == T0_MS + 90 * M and resumed["paused_ms"] == 60 * M
    listed = (await supervisor.get(f"{BASE}/work-orders")).json()
    assert [o["id"] for o in listed] == [lift["id"], wall["id"]]  # emergency first
    by_state = await supervisor.get(f"{BASE}/work-orders", params={"state": "accepted"})
    assert [o["id"] for o in by_state.json()] == [lift["id"]]
    by_prio = await supervisor.get(f"{BASE}/work-orders",
                                   params=[("priority", "low"), ("priority", "normal")])
    assert [o["id"] for o in by_prio.json()] == [wall["id"]]
    clock.advance(30 * 60)  # past the (moved) arrival deadline
    with database.transaction() as session:
        check_sla(session, clock.ms)
    breached = await supervisor.get(f"{BASE}/work-orders", params={"sla": "breached"})
    assert [o["id"] for o in breached.json()] == [lift["id"]]
    detail = (await supervisor.get(f"{BASE}/work-orders/{lift['id']}")).json()
    assert [b["kind"] for b in detail["breaches"]] == ["arrive"]
    assert detail["breaches"][0]["escalated_via"] == "log"
    breaches = (await supervisor.get(f"{BASE}/sla-breaches")).json()
    assert [(b["work_order_id"], b["kind"]) for b in breaches] == [(lift["id"], "arrive")]
    due_sorted = (await supervisor.get(f"{BASE}/work-orders", params={"sort": "due"})).json()
    assert [o["id"] for o in due_sorted] == [lift["id"], wall["id"]]
    assert_error(await supervisor.get(f"{BASE}/work-orders", params={"sort": "random"}),
                 400, "validation_failed")


async def test_comments_and_photos(as_user: AsUser, photos: PhotoStore) -> None:
    engineer, viewer = await as_user("engineer-a"), await as_user("viewer-a")
    order = await _create(engineer)
    url = f"{BASE}/work-orders/{order['id']}"
    commented = await engineer.post(f"{url}/comments", json={"comment": "on my way"})
    assert commented.json()["history"][-1]["comment"] == "on my way"
    assert_error(await viewer.post(f"{url}/comments", json={"comment": "hi"}), 403, "forbidden")
    up = await engineer.post(f"{url}/photos", params={"filename": "car.jpg"}, content=JPEG,
                             headers={"content-type": "image/jpeg"})
    assert up.status_code == 201, up.text
    photo = up.json()
    assert (photo["filename"], photo["size"], photo["user"]) == ("car.jpg", len(JPEG),
                                                                 "engineer-a")
    down = await viewer.get(photo["url"])
    assert down.content == JPEG and down.headers["content-type"] == "image/jpeg"
    assert_error(await engineer.post(f"{url}/photos", content=JPEG,
                                     headers={"content-type": "application/pdf"}),
                 415, "unsupported_media_type")
    assert_error(await engineer.post(f"{url}/photos", content=PNG,
                                     headers={"content-type": "image/jpeg"}),
                 415, "unsupported_media_type")
    assert_error(await engineer.post(f"{url}/photos", content=b"\xff\xd8\xff" + b"0" * 2000,
                                     headers={"content-type": "image/jpeg"}),
                 413, "payload_too_large")
    assert_error(await viewer.post(f"{url}/photos", content=JPEG,
                                   headers={"content-type": "image/jpeg"}), 403, "forbidden")
    detail = (await viewer.get(url)).json()
    assert [p["id"] for p in detail["photos"]] == [photo["id"]]
    assert_error(await viewer.get(f"{url}/photos/999"), 404, "photo_not_found")
    assert len(list((photos.directory).rglob("*.jpg"))) == 1


async def test_sla_policies(as_user: AsUser) -> None:
    supervisor, engineer = await as_user("supervisor-a"), await as_user("engineer-a")
    table = (await engineer.get(f"{BASE}/sla-policies")).json()
    fire = next(r for r in table if (r["category"], r["priority"]) == ("fire", "emergency"))
    assert (fire["arrive_minutes"], fire["origin"]) == (3, "default")
    body = {"respond_minutes": 10, "arrive_minutes": 20, "resolve_minutes": 120,
            "follow_up_minutes": 60}
    assert_error(await engineer.put(f"{BASE}/sla-policies/water/urgent", json=body),
                 403, "forbidden")
    put = await supervisor.put(f"{BASE}/sla-policies/water/urgent", json=body)
    assert put.status_code == 200 and put.json()["origin"] == "site"
    order = await _create(supervisor, category="water", priority="urgent", title="Pump down")
    assert order["arrive_due"] == T0_MS + 20 * M
    assert_error(await supervisor.put(f"{BASE}/sla-policies/plumbing/urgent", json=body),
                 400, "validation_failed")
    assert (await supervisor.delete(f"{BASE}/sla-policies/water/urgent")).status_code == 204
    assert_error(await supervisor.delete(f"{BASE}/sla-policies/water/urgent"), 404,
                 "sla_policy_not_found")


async def test_alarm_to_work_order_links(as_user: AsUser, database: Database) -> None:
    service = AlarmService(observers=[AlarmWorkOrders()], clock=lambda: T0_MS / 1000)
    with database.transaction() as session:
        alarm = service.raise_(session, AlarmSpec(
            site="alpha", gateway="gw1", device="panel-1", name="fire_zone_3", source="edge",
            priority="emergency", category="fire", text_en="FIRE in zone 3",
            text_zh="3区火警"), T0_MS)
    viewer = await as_user("viewer-a")
    [order] = (await viewer.get(f"{BASE}/alarms/{alarm.id}/work-orders")).json()
    assert (order["category"], order["priority"], order["source"]) == ("fire", "emergency",
                                                                       "alarm")
    assert order["arrive_due"] == T0_MS + 3 * M
    detail = (await viewer.get(f"{BASE}/work-orders/{order['id']}")).json()
    assert detail["alarms"] == [alarm.id]
    assert (await viewer.get(f"{BASE}/alarms/{alarm.id + 1}/work-orders")).json() == []
