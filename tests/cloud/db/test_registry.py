"""The registry learns sites, gateways, devices and points from births, wills and states."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud.db import (
    Database,
    Device,
    PointSpec,
    Site,
    learn_birth,
    learn_device_state,
    learn_will,
    list_devices,
    list_gateways,
    list_points,
    list_sites,
    profile_points,
    set_device_details,
    sync_points,
    touch_gateways,
    upsert_site,
)
from device_profiles.loader import load_profiles
from towerwatch.contract import Birth, DeviceDescriptor, DeviceState, Will

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BOOT1 = "11111111-aaaa-4bbb-8ccc-000000000001"
BOOT2 = "22222222-aaaa-4bbb-8ccc-000000000002"

PUMP_POINTS = (
    PointSpec("outlet-pressure", "Outlet pressure", "出水压力", "bar", "number"),
    PointSpec("setpoint", "Pressure setpoint", "压力设定值", "bar", "number", writable=True),
)
ELEVATOR_POINTS = (PointSpec("floor", "Current floor", "当前楼层", "none", "number"),)
PROFILES = {"pump-set": PUMP_POINTS, "elevator": ELEVATOR_POINTS}


def birth(boot_id: str, ts: int, *devices: tuple[str, str, str | None]) -> Birth:
    return Birth(
        boot_id=boot_id,
        version="1.2.0",
        ts=ts,
        devices=[DeviceDescriptor(id=d, profile=p, name=n) for d, p, n in devices],
    )


def test_birth_creates_site_gateway_devices_and_points(db: Database) -> None:
    with db.transaction() as session:
        gateway = learn_birth(
            session,
            "tower-a",
            "gw-1",
            birth(BOOT1, T0, ("pumps", "pump-set", "Booster pumps"), ("lift-1", "elevator", None)),
            received_ms=T0 + 40,
            profiles=PROFILES,
        )
        assert (gateway.online, gateway.boot_id, gateway.version) == (True, BOOT1, "1.2.0")
        assert (gateway.since_ms, gateway.last_seen_ms) == (T0, T0 + 40)

    with db.transaction() as session:
        [site] = list_sites(session)
        assert (site.id, site.name, site.timezone) == ("tower-a", "tower-a", "UTC")
        devices = list_devices(session, "tower-a")
        assert [(d.id, d.profile, d.name, d.listed, d.online) for d in devices] == [
            ("lift-1", "elevator", None, True, None),
            ("pumps", "pump-set", "Booster pumps", True, None),
        ]
        points = list_points(session, "tower-a", "gw-1", "pumps")
        assert [(p.id, p.name_zh, p.unit, p.writable) for p in points] == [
            ("outlet-pressure", "出水压力", "bar", False),
            ("setpoint", "压力设定值", "bar", True),
        ]


def test_a_new_boot_relists_devices_and_resyncs_points(db: Database) -> None:
    with db.transaction() as session:
        learn_birth(
            session,
            "tower-a",
            "gw-1",
            birth(BOOT1, T0, ("pumps", "pump-set", "Pumps"), ("lift-1", "elevator", None)),
            received_ms=T0,
            profiles=PROFILES,
        )
    new_points = {"pump-set": PUMP_POINTS[:1]}
    with db.transaction() as session:
        gateway = learn_birth(
            session,
            "tower-a",
            "gw-1",
            birth(BOOT2, T0 + 60_000, ("pumps", "pump-set", None)),
            received_ms=T0 + 60_000,
            profiles=new_points,
        )
        assert gateway.boot_id == BOOT2
    with db.transaction() as session:
        devices = {d.id: d for d in list_devices(session, "tower-a", "gw-1")}
        assert devices["pumps"].listed and devices["pumps"].name == "Pumps"  # name kept
        assert not devices["lift-1"].listed
        assert [p.id for p in list_points(session, "tower-a", "gw-1", "pumps")] == [
            "outlet-pressure"
        ]
        assert [p.id for p in list_points(session, "tower-a", "gw-1", "lift-1")] == ["floor"]
        assert list_devices(session, "tower-a", listed_only=True) == [devices["pumps"]]


def test_the_same_birth_twice_changes_nothing(db: Database) -> None:
    message = birth(BOOT1, T0, ("pumps", "pump-set", None))
    for received in (T0 + 5, T0 + 3):
        with db.transaction() as session:
            learn_birth(
                session, "tower-a", "gw-1", message, received_ms=received, profiles=PROFILES
            )
    with db.transaction() as session:
        [gateway] = list_gateways(session, "tower-a")
        assert gateway.last_seen_ms == T0 + 5  # only moves forward
        assert len(list_points(session, "tower-a", "gw-1", "pumps")) == 2


def test_a_birth_without_devices_unlists_them_all(db: Database) -> None:
    with db.transaction() as session:
        learn_birth(
            session,
            "tower-a",
            "gw-1",
            birth(BOOT1, T0, ("pumps", "pump-set", None)),
            received_ms=T0,
        )
        learn_birth(session, "tower-a", "gw-1", birth(BOOT2, T0 + 1), received_ms=T0 + 1)
    with db.transaction() as session:
        assert [(d.id, d.listed) for d in list_devices(session, "tower-a")] == [("pumps", False)]


def test_workers_learning_the_same_birth_at_once_agree(db: Database) -> None:
    """A plain subscription hands the retained birth to every worker: all must succeed."""
    message = birth(BOOT1, T0, ("pumps", "pump-set", None), ("lift-1", "elevator", None))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            with db.transaction() as session:
                learn_birth(session, "tower-a", "gw-1", message, received_ms=T0, profiles=PROFILES)
        except BaseException as err:  # pragma: no cover - asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with db.transaction() as session:
        assert len(list_devices(session, "tower-a", listed_only=True)) == 2
        assert len(list_points(session, "tower-a", "gw-1", "pumps")) == 2


def test_will_of_the_current_boot_takes_the_gateway_offline(db: Database) -> None:
    with db.transaction() as session:
        learn_birth(session, "tower-a", "gw-1", birth(BOOT2, T0), received_ms=T0)
    with db.transaction() as session:
        stale = Will(boot_id=BOOT1, ts=T0 + 1, reason="old boot")
        assert not learn_will(session, "tower-a", "gw-1", stale)
        [gateway] = list_gateways(session, "tower-a")
        assert gateway.online and gateway.boot_id == BOOT2
    with db.transaction() as session:
        will = Will(boot_id=BOOT2, ts=T0 + 2, reason="connection lost")
        assert learn_will(session, "tower-a", "gw-1", will)
    with db.transaction() as session:
        [gateway] = list_gateways(session)
        assert (gateway.online, gateway.since_ms, gateway.reason) == (
            False,
            T0 + 2,
            "connection lost",
        )


def test_a_will_for_an_unknown_gateway_registers_it_offline(db: Database) -> None:
    with db.transaction() as session:
        assert learn_will(session, "tower-b", "gw-9", Will(boot_id=BOOT1, ts=T0))
    with db.transaction() as session:
        [gateway] = list_gateways(session, "tower-b")
        assert (gateway.online, gateway.boot_id) == (False, BOOT1)


def test_device_state_before_birth_and_stale_states(db: Database) -> None:
    with db.transaction() as session:
        assert learn_device_state(
            session, "tower-a", "gw-1", "lift-1", DeviceState(online=False, since=T0 + 10)
        )
        assert not learn_device_state(  # older than what is stored
            session, "tower-a", "gw-1", "lift-1", DeviceState(online=True, since=T0 + 5)
        )
    with db.transaction() as session:
        learn_birth(
            session,
            "tower-a",
            "gw-1",
            birth(BOOT1, T0, ("lift-1", "elevator", None)),
            received_ms=T0,
        )
        assert learn_device_state(
            session,
            "tower-a",
            "gw-1",
            "lift-1",
            DeviceState(online=True, since=T0 + 20, reason=None),
        )
    with db.transaction() as session:
        [device] = list_devices(session, "tower-a")
        assert (device.profile, device.listed, device.online, device.since_ms) == (
            "elevator",
            True,
            True,
            T0 + 20,
        )


def test_sites_details_and_touch(db: Database) -> None:
    with db.transaction() as session:
        site = upsert_site(session, "tower-a", name="Tower A", timezone="Asia/Shanghai")
        assert (site.name, site.timezone) == ("Tower A", "Asia/Shanghai")
        upsert_site(session, "tower-a", name="Tower A (east)")
        with pytest.raises(ValueError, match="time zone"):
            upsert_site(session, "tower-a", timezone="Mars/Olympus")
        device = set_device_details(
            session, "tower-a", "gw-1", "pumps", name="Booster pumps", floor="B2", room="Pump room"
        )
        assert (device.name, device.building, device.floor) == ("Booster pumps", None, "B2")
        touch_gateways(session, {("tower-a", "gw-1"): T0 + 7, ("tower-b", "gw-2"): T0 + 9})
        touch_gateways(session, {("tower-a", "gw-1"): T0 + 3})
    with db.transaction() as session:
        stored = session.get(Site, "tower-a")
        assert stored is not None and (stored.name, stored.timezone) == (
            "Tower A (east)",
            "Asia/Shanghai",
        )
        seen = {(g.site_id, g.id): g.last_seen_ms for g in list_gateways(session)}
        assert seen == {("tower-a", "gw-1"): T0 + 7, ("tower-b", "gw-2"): T0 + 9}


@pytest.fixture(scope="module")
def elevator_points() -> tuple[PointSpec, ...]:
    return profile_points(load_profiles().get("elevator-ctl-modbus"))


def test_points_from_a_real_profile(db: Database, elevator_points: tuple[PointSpec, ...]) -> None:
    specs = elevator_points
    assert specs and any(p.kind == "enum" for p in specs)
    with db.transaction() as session:
        set_device_details(session, "tower-a", "gw-1", "lift-1")
        sync_points(session, "tower-a", "gw-1", "lift-1", specs)
    with db.transaction() as session:
        stored = list_points(session, "tower-a", "gw-1", "lift-1")
        assert [p.id for p in stored] == sorted(p.id for p in specs)


def test_foreign_keys_are_enforced(db: Database) -> None:
    def add_orphan() -> None:
        with db.transaction() as session:
            session.add(Device(site_id="nowhere", gateway_id="gw-1", id="d", listed=False))

    with pytest.raises(IntegrityError):
        add_orphan()
    with db.transaction() as session:
        assert list(session.scalars(select(Device))) == []


def test_deleting_a_site_cascades(db: Database) -> None:
    with db.transaction() as session:
        learn_birth(
            session,
            "tower-a",
            "gw-1",
            birth(BOOT1, T0, ("pumps", "pump-set", None)),
            received_ms=T0,
            profiles=PROFILES,
        )
    with db.transaction() as session:
        site = session.get(Site, "tower-a")
        assert site is not None
        session.delete(site)
    with db.transaction() as session:
        assert list_gateways(session) == []
        assert list_points(session, "tower-a", "gw-1", "pumps") == []
