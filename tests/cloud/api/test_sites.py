"""Sites, gateways and devices with online state, location, points and last values."""

from __future__ import annotations

from cloud.timeseries import Sample, SeriesKey, SqliteStore
from tests.cloud.api.support import T0_MS, AsUser, assert_error


def key(point: str, device: str = "pump-1") -> SeriesKey:
    return SeriesKey("alpha", "gw1", device, point)


async def test_a_site_counts_its_gateways_and_devices(as_user: AsUser) -> None:
    viewer = await as_user("viewer-a")
    site = (await viewer.get("/api/v1/sites/alpha")).json()
    assert site == {
        "id": "alpha", "name": "Alpha Tower", "timezone": "Asia/Shanghai", "actions": ["read"],
        "gateways": 2, "gateways_online": 1,
        "devices": 2, "devices_online": 1, "devices_offline": 1,
    }


async def test_gateways_show_online_state_since_and_last_seen(as_user: AsUser) -> None:
    viewer = await as_user("viewer-a")
    gateways = (await viewer.get("/api/v1/sites/alpha/gateways")).json()
    assert gateways == [
        {"id": "gw1", "online": True, "since": T0_MS - 600_000, "last_seen": T0_MS - 599_000,
         "boot_id": "boot-0001", "version": "1.0.0", "reason": None},
        {"id": "gw2", "online": False, "since": T0_MS - 300_000, "last_seen": T0_MS - 900_000,
         "boot_id": "boot-0002", "version": "1.0.0", "reason": "connection lost"},
    ]


async def test_devices_show_online_state_and_location(as_user: AsUser) -> None:
    viewer = await as_user("viewer-a")
    devices = (await viewer.get("/api/v1/sites/alpha/devices")).json()
    assert [(d["gateway"], d["id"], d["online"], d["since"], d["reason"]) for d in devices] == [
        ("gw1", "panel-1", False, T0_MS - 580_000, "timeout"),
        ("gw1", "pump-1", True, T0_MS - 590_000, None),
    ]
    pump = devices[1]
    assert pump["name"] == "Booster pump 1" and pump["profile"] == "booster-pump"
    assert pump["listed"] is True
    assert pump["location"] == {"building": "A", "floor": "B2", "room": "Pump room"}
    only_gw2 = await viewer.get("/api/v1/sites/alpha/devices", params={"gateway": "gw2"})
    assert only_gw2.json() == []


async def test_a_device_shows_its_points_with_their_last_values(
    as_user: AsUser, store: SqliteStore
) -> None:
    await store.write([
        Sample(key("pressure"), T0_MS - 2000, 4.5, "good"),
        Sample(key("pressure"), T0_MS - 1000, 4.25, "good"),
        Sample(key("running"), T0_MS - 1000, True, "stale"),
        Sample(key("vibration"), T0_MS - 1000, 7, "good"),  # not in the profile
        Sample(key("fire", "panel-1"), T0_MS - 1000, False, "good"),  # another device
    ])
    viewer = await as_user("viewer-a")
    device = (await viewer.get("/api/v1/sites/alpha/devices/gw1/pump-1")).json()
    assert device["id"] == "pump-1" and device["online"] is True
    assert device["location"]["room"] == "Pump room"
    assert device["points"] == [
        {"id": "pressure", "name": {"en": "Outlet pressure", "zh": "出水压力"}, "unit": "bar",
         "kind": "number", "writable": False,
         "last": {"value": 4.25, "quality": "good", "ts": T0_MS - 1000}},
        {"id": "running", "name": {"en": "Running", "zh": "运行"}, "unit": "none",
         "kind": "bool", "writable": False,
         "last": {"value": True, "quality": "stale", "ts": T0_MS - 1000}},
        {"id": "setpoint", "name": {"en": "Pressure setpoint", "zh": "压力设定值"},
         "unit": "bar", "kind": "number", "writable": True, "last": None},
        {"id": "vibration", "name": None, "unit": None, "kind": None, "writable": False,
         "last": {"value": 7, "quality": "good", "ts": T0_MS - 1000}},
    ]
    points = (await viewer.get("/api/v1/sites/alpha/devices/gw1/pump-1/points")).json()
    assert points == device["points"]


async def test_an_unknown_device_is_404(as_user: AsUser) -> None:
    viewer = await as_user("viewer-a")
    for path in ("/api/v1/sites/alpha/devices/gw1/nothing",
                 "/api/v1/sites/alpha/devices/gw9/meter-1/points"):
        assert_error(await viewer.get(path), 404, "device_not_found")
