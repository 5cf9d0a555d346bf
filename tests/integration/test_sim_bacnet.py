"""The example building's BACnet devices, found and read by a plain bacpypes3 client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bacpypes3.apdu import WhoIsRequest
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import ObjectIdentifier

from device_profiles.schema import BacnetPoint
from simulators.building import SimBuilding
from tests.integration.edge_rig import running_building
from tests.simulators.bacnet_client import plain_client

pytestmark = pytest.mark.integration

NETWORK = "127.0.7.0"
EVENING = datetime(2026, 11, 23, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@pytest.fixture
async def building() -> AsyncIterator[SimBuilding]:
    async with running_building(NETWORK, start=EVENING, warm=0) as sim:
        yield sim


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    app = plain_client(599, timeout_ms=1000, retries=1)
    try:
        yield app
    finally:
        app.close()


def _addr(building: SimBuilding, device_id: str) -> Any:
    return Address(f"{building.device(device_id).bacnet_address}:{building.site.bacnet.port}")


async def test_who_is_finds_every_bacnet_device(building: SimBuilding, client: Any) -> None:
    expected = {d.bacnet_instance: d.bacnet_address for d in building.devices.values()
                if d.profile.protocol == "bacnet"}
    assert len(expected) == 2  # lift-3 and the fire panel
    await client.request(WhoIsRequest(destination=Address("127.255.255.255:47808")))
    for _ in range(40):
        if set(expected) <= set(client.i_ams):
            break
        await asyncio.sleep(0.05)
    found = {i: str(client.i_ams[i]).split(":")[0] for i in expected if i in client.i_ams}
    assert found == expected


async def test_read_property_multiple_sees_a_fire_alarm(building: SimBuilding,
                                                        client: Any) -> None:
    building.inject("fire-panel", "fire_alarm", {"zone": 3})
    building.clock.advance(2)
    building.tick()
    rows = await client.read_property_multiple(_addr(building, "fire-panel"), [
        "multi-state-input,3", ["present-value"], "multi-state-input,1", ["present-value"]])
    values = {f"{oid[0]},{oid[1]}": int(value) for oid, _prop, _i, value in rows}
    profile = building.device("fire-panel").profile
    states = {e.value: e.name for e in profile.enums["zone_state"]}
    assert states[values["multi-state-input,3"]] == "fire_alarm"
    assert states[values["multi-state-input,1"]] == "quiet"


async def test_cov_subscription_delivers_a_change(building: SimBuilding, client: Any) -> None:
    profile = building.device("fire-panel").profile
    point = profile.point("zone5_state")
    assert isinstance(point, BacnetPoint)
    states = {e.name: e.value for e in profile.enums["zone_state"]}
    oid = ObjectIdentifier(point.object)
    async with client.change_of_value(_addr(building, "fire-panel"), oid, None, True, 60) as scm:
        await client.read_property(_addr(building, "fire-panel"), point.object, "present-value")
        building.inject("fire-panel", "zone_fault", {"zone": 5})
        building.clock.advance(2)
        building.tick()
        deadline = asyncio.get_running_loop().time() + 5
        seen = None
        while asyncio.get_running_loop().time() < deadline:
            prop, value = await asyncio.wait_for(scm.get_value(), 5)
            if str(prop) == "present-value":
                seen = int(value)
                if seen == states["fault"]:
                    break
        assert seen == states["fault"]
