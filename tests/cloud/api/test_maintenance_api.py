"""Maintenance plans over the API: roles, defaults, validation, generated work orders."""

from __future__ import annotations

from cloud.db import Database
from cloud.maintenance.generate import generate_due
from tests.cloud.api.support import AsUser, FakeClock, assert_error

BASE = "/api/v1/sites/alpha"


async def test_plans(as_user: AsUser, database: Database, clock: FakeClock) -> None:
    supervisor, engineer = await as_user("supervisor-a"), await as_user("engineer-a")
    lift = (await supervisor.post(f"{BASE}/assets", json={
        "name": "Lift 1", "asset_class": "elevator"})).json()
    body = {"name": "Half-monthly lift service", "level": "monthly", "asset_id": lift["id"],
            "anchor_date": "2025-06-16", "contractor": "Lift Co."}
    assert_error(await engineer.post(f"{BASE}/pm-plans", json=body), 403, "forbidden")
    created = await supervisor.post(f"{BASE}/pm-plans", json=body)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert (plan["interval_days"], plan["window_start_min"], plan["window_minutes"],
            plan["category"]) == (15, 0, 360, "elevator")
    missing = await supervisor.post(f"{BASE}/pm-plans", json={
        "name": "No anchor", "level": "monthly", "asset_id": lift["id"]})
    assert assert_error(missing, 400, "validation_failed")["details"][0]["path"] == \
        "body.anchor_date"
    with database.transaction() as session:
        [made] = generate_due(session, clock.ms)
    orders = (await engineer.get(f"{BASE}/work-orders", params={"source": "pm"})).json()
    assert [(o["id"], o["pm_plan_id"], o["reference"]) for o in orders] == [
        (made.id, plan["id"], "Lift Co.")]
    changed = await supervisor.patch(f"{BASE}/pm-plans/{plan['id']}", json={"lead_days": 7})
    assert changed.json()["lead_days"] == 7
    assert [p["id"] for p in (await engineer.get(f"{BASE}/pm-plans")).json()] == [plan["id"]]
    assert (await supervisor.delete(f"{BASE}/pm-plans/{plan['id']}")).status_code == 204
    assert_error(await engineer.get(f"{BASE}/pm-plans/{plan['id']}"), 404, "pm_plan_not_found")
