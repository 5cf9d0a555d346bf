"""The asset register over the API: roles, device links, asset ↔ work-order links."""

from __future__ import annotations

from tests.cloud.api.support import AsUser, assert_error

BASE = "/api/v1/sites/alpha"


async def test_register_and_links(as_user: AsUser) -> None:
    supervisor, viewer = await as_user("supervisor-a"), await as_user("viewer-a")
    body = {"name": "Booster pump set", "asset_class": "pump", "model": "CR 10-4",
            "supplier": "Grundfos", "install_date": "2019-03-01", "building": "A",
            "floor": "B2", "room": "Pump room"}
    assert_error(await viewer.post(f"{BASE}/assets", json=body), 403, "forbidden")
    created = await supervisor.post(f"{BASE}/assets", json=body)
    assert created.status_code == 201, created.text
    asset = created.json()
    assert asset["maintenance_cycle_days"] == 30 and asset["install_date"] == "2019-03-01"
    assert_error(await supervisor.post(f"{BASE}/assets", json=body), 409, "conflict")
    bad = await supervisor.post(f"{BASE}/assets", json={**body, "asset_class": "robot"})
    assert assert_error(bad, 400, "validation_failed")["details"][0]["path"] == \
        "body.asset_class"
    url = f"{BASE}/assets/{asset['id']}"
    linked = await supervisor.put(f"{url}/devices/gw1/pump-1")
    assert linked.json()["devices"] == [{"gateway": "gw1", "device": "pump-1"}]
    assert_error(await supervisor.put(f"{url}/devices/gw1/nope"), 404, "device_not_found")
    watched = await viewer.get(f"{BASE}/assets", params={"gateway": "gw1", "device": "pump-1"})
    assert [a["id"] for a in watched.json()] == [asset["id"]]
    order = (await supervisor.post(f"{BASE}/work-orders", json={
        "category": "water", "priority": "urgent", "title": "Pump 1 tripped",
        "asset_id": asset["id"]})).json()
    assert order["asset_id"] == asset["id"]
    assert (await viewer.get(url)).json()["open_work_orders"] == [order["id"]]
    by_asset = await viewer.get(f"{BASE}/work-orders", params={"asset": asset["id"]})
    assert [o["id"] for o in by_asset.json()] == [order["id"]]
    changed = await supervisor.patch(url, json={"room": "Plant room 2", "model": None})
    assert (changed.json()["room"], changed.json()["model"]) == ("Plant room 2", None)
    assert (await supervisor.delete(f"{url}/devices/gw1/pump-1")).json()["devices"] == []
    assert (await supervisor.delete(url)).status_code == 204
    assert_error(await viewer.get(url), 404, "asset_not_found")
    kept = (await viewer.get(f"{BASE}/work-orders/{order['id']}")).json()
    assert kept["asset_id"] is None  # the work order outlives the register entry


async def test_other_sites_cannot_see_assets(as_user: AsUser) -> None:
    supervisor = await as_user("supervisor-a")
    asset = (await supervisor.post(f"{BASE}/assets", json={
        "name": "Lift 1", "asset_class": "elevator"})).json()
    assert asset["maintenance_cycle_days"] == 15
    outsider = await as_user("viewer-b")
    assert_error(await outsider.get(f"{BASE}/assets/{asset['id']}"), 403, "forbidden")
    admin = await as_user("admin")
    assert_error(await admin.get(f"/api/v1/sites/beta/assets/{asset['id']}"), 404,
                 "asset_not_found")
