"""The gateway's BACnet/IP client against the example building's simulated BACnet devices.

Devices answer at ``127.0.12.N/8:47808``; the client binds ``127.0.0.1/8`` on a free
port (a packet to 127.x on the sender's own port loops back into its own stack).
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device_profiles.codec import decode_bacnet, encode_bacnet
from device_profiles.loader import ProfileSet, load_profiles
from device_profiles.schema import BacnetPoint, BacnetProfile
from edge.bacnet_poller import BacnetDevice
from edge.config import BacnetClientConfig, DeviceConfig, PollingConfig
from edge.drivers.bacnet import BacnetClient, CovSubscription, PropertyRef
from edge.errors import DeviceException, DeviceTimeout, DeviceUnreachable
from edge.messages import MessageBuilder
from edge.metrics import GatewayMetrics
from edge.outbox import Outbox
from edge.runtime import GatewayContext
from edge.scan_bacnet import scan_bacnet
from simulators.building import SimBuilding
from tests.integration.edge_rig import running_building
from tests.servers.ports import free_udp_port

pytestmark = pytest.mark.integration

NETWORK = "127.0.12.0"
EVENING = datetime(2026, 11, 23, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
TIMEOUT = 0.3


def _config() -> BacnetClientConfig:
    return BacnetClientConfig(address=f"127.0.0.1/8:{free_udp_port()}", instance=4194001)


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles()  # ~0.7 s: once for the module


@pytest.fixture
async def building(profiles: ProfileSet) -> AsyncIterator[SimBuilding]:
    async with running_building(NETWORK, start=EVENING, warm=0, profiles=profiles) as sim:
        yield sim


@pytest.fixture
async def client() -> AsyncIterator[BacnetClient]:
    bacnet = BacnetClient(_config(), timeout=TIMEOUT, retries=0)
    await bacnet.start()
    try:
        yield bacnet
    finally:
        await bacnet.close()


def _address(building: SimBuilding, device_id: str) -> str:
    return f"{building.device(device_id).bacnet_address}:{building.site.bacnet.port}"


def _instance(building: SimBuilding, device_id: str) -> int:
    instance = building.device(device_id).bacnet_instance
    assert instance is not None
    return instance


def _profile(building: SimBuilding, device_id: str) -> BacnetProfile:
    profile = building.device(device_id).profile
    assert isinstance(profile, BacnetProfile)
    return profile


def _point(profile: BacnetProfile, point_id: str) -> BacnetPoint:
    point = profile.point(point_id)
    assert isinstance(point, BacnetPoint)
    return point


def _decode(profile: BacnetProfile, point_id: str, value: object) -> object:
    return decode_bacnet(_point(profile, point_id), value, enums=profile.enums).value


class Notifications:
    """What a COV subscription delivered, decoded through the point's profile."""

    def __init__(self, profile: BacnetProfile, point_id: str) -> None:
        self.profile, self.point_id = profile, point_id
        self.queue: asyncio.Queue[tuple[str, str, object]] = asyncio.Queue()

    def __call__(self, object_id: str, prop: str, value: object) -> None:
        self.queue.put_nowait((object_id, prop, value))

    async def next_value(self, within: float) -> object:
        """The next present value, decoded (status flags are checked and skipped)."""
        async with asyncio.timeout(within):
            while True:
                object_id, prop, value = await self.queue.get()
                assert object_id == _point(self.profile, self.point_id).object
                if prop == "present-value":
                    return _decode(self.profile, self.point_id, value)
                assert prop == "status-flags"
                assert isinstance(value, tuple)
                assert len(value) == 4


async def test_who_is_finds_lift_3_and_the_fire_panel(building: SimBuilding,
                                                      client: BacnetClient) -> None:
    expected = {_instance(building, d): _address(building, d) for d in ("lift-3", "fire-panel")}
    found = {i.instance: i for i in await client.who_is(wait=0.5)}
    # other tests' devices on loopback may answer the broadcast too
    assert {i: found[i].address for i in expected if i in found} == expected
    assert all(found[i].vendor_id == 999 and found[i].max_apdu >= 480 for i in expected)

    fire = _instance(building, "fire-panel")
    started = time.monotonic()
    one = await client.who_is(address=_address(building, "fire-panel"), low=fire, high=fire)
    assert [(i.instance, i.address) for i in one] == [(fire, expected[fire])]
    assert time.monotonic() - started < 1.0  # an exact range returns on the first answer
    assert await client.who_is(address=_address(building, "fire-panel"), low=1, high=2,
                               wait=0.3) == []


async def test_scan_describes_what_answered(building: SimBuilding) -> None:
    results = {r.instance: r for r in await scan_bacnet(_config(), address=None, wait=0.5)}
    for device_id in ("lift-3", "fire-panel"):
        device = building.device(device_id)
        assert device.bacnet_instance is not None
        result = results[device.bacnet_instance]
        assert result.address == _address(building, device_id)
        assert result.name == device_id
        assert result.vendor_name == "Towerwatch Simulator"
        assert result.model_name == device.profile.model
        assert result.firmware == device.profile.version
        assert result.error is None
        assert str(result).startswith(f"device {device.bacnet_instance}  {result.address}  "
                                      f"'{device_id}'  Towerwatch Simulator")


async def test_read_multiple_decodes_to_the_model_values(building: SimBuilding,
                                                         client: BacnetClient) -> None:
    building.inject("fire-panel", "fire_alarm", {"zone": 2})
    building.inject("fire-panel", "zone_fault", {"zone": 5})
    building.clock.advance(2)
    building.tick()
    profile = _profile(building, "fire-panel")
    points = [p for p in profile.points if isinstance(p, BacnetPoint)]
    refs = {PropertyRef(p.object, p.prop): p for p in points}
    before = client.stats.requests
    values = await client.read_multiple("fire-panel", _address(building, "fire-panel"),
                                        list(refs), max_properties=profile.limits.max_properties)
    assert client.stats.requests - before == math.ceil(len(refs) / 16)
    decoded = {p.id: decode_bacnet(p, values[ref], enums=profile.enums).value
               for ref, p in refs.items()}
    model = building.values("fire-panel")
    assert decoded == {p.id: model[p.id] for p in points}
    assert decoded["zone2_state"] == "fire_alarm"
    assert decoded["zone2_fire"] is True
    assert decoded["zone5_state"] == "fault"
    assert decoded["zone1_state"] == "quiet"


async def test_unknown_objects_and_properties_are_per_property_errors(
        building: SimBuilding, client: BacnetClient) -> None:
    address = _address(building, "fire-panel")
    good = PropertyRef("multi-state-input,1")
    missing = PropertyRef("analog-input,99")
    no_property = PropertyRef("analog-input,1", "state-text")
    values = await client.read_multiple("fire-panel", address, [good, missing, no_property])
    assert values[good] == 1
    unknown, unsupported = values[missing], values[no_property]
    assert isinstance(unknown, DeviceException)
    assert unknown.code == "unknown-object"
    assert unknown.illegal_address
    assert isinstance(unsupported, DeviceException)
    assert unsupported.code == "unknown-property"
    # the device refuses a request whose every object is unknown as a whole
    alone = (await client.read_multiple("fire-panel", address, [missing]))[missing]
    assert isinstance(alone, DeviceException)
    assert alone.code == "unknown-object"
    both = await client.read_multiple("fire-panel", address,
                                      [missing, PropertyRef("analog-input,98")])
    assert all(isinstance(v, DeviceException) and v.code == "unknown-object"
               for v in both.values())


async def test_a_device_without_rpm_is_read_one_property_at_a_time(
        building: SimBuilding, client: BacnetClient) -> None:
    server = building.device("lift-3").bacnet
    assert server is not None
    server._app.do_ReadPropertyMultipleRequest = None  # now it rejects: unrecognized-service
    profile = _profile(building, "lift-3")
    points = [p for p in profile.points if isinstance(p, BacnetPoint)][:6]
    refs = [PropertyRef(p.object, p.prop) for p in points]
    first = await client.read_multiple("lift-3", _address(building, "lift-3"), refs)
    before = client.stats.requests
    second = await client.read_multiple("lift-3", _address(building, "lift-3"), refs)
    assert client.stats.requests - before == len(refs)  # no more RPM attempts
    model = building.values("lift-3")
    for values in (first, second):
        decoded = {p.id: _decode(profile, p.id, values[r]) for p, r in zip(points, refs,
                                                                           strict=True)}
        assert decoded == {p.id: model[p.id] for p in points}


async def test_writes_reach_the_device_and_fire_panels_refuse(building: SimBuilding,
                                                              client: BacnetClient) -> None:
    profile = _profile(building, "lift-3")
    point = _point(profile, "out_of_service_request")
    ref = PropertyRef(point.object, point.prop)
    address = _address(building, "lift-3")
    await client.write("lift-3", address, ref, encode_bacnet(point, True, enums=profile.enums))
    assert building.values("lift-3")["out_of_service_request"] is True
    assert (await client.read_multiple("lift-3", address, [ref]))[ref] == "active"

    fire = _point(_profile(building, "fire-panel"), "zone1_state")
    with pytest.raises(DeviceException) as refused:
        await client.write("fire-panel", _address(building, "fire-panel"),
                           PropertyRef(fire.object), 3)
    assert refused.value.code == "write-access-denied"


async def test_cov_delivers_a_zone_change(building: SimBuilding, client: BacnetClient) -> None:
    profile = _profile(building, "fire-panel")
    seen = Notifications(profile, "zone2_state")
    subscription = await client.subscribe_cov(
        "fire-panel", _address(building, "fire-panel"), _point(profile, "zone2_state").object,
        lifetime=60, on_value=seen)
    states = [subscription.active]
    assert await seen.next_value(2.0) == "quiet"  # the first notification is not lost
    building.inject("fire-panel", "fire_alarm", {"zone": 2})
    building.clock.advance(2)
    building.tick()
    assert await seen.next_value(2.0) == "fire_alarm"
    assert client.stats.cov_notifications >= 4  # two values, each with its status flags
    subscription.cancel()
    subscription.cancel()  # idempotent
    states += [subscription.active, subscription.failed]
    assert states == [True, False, False]


async def test_refused_subscriptions_raise(building: SimBuilding, client: BacnetClient) -> None:
    address = _address(building, "fire-panel")
    with pytest.raises(DeviceException) as unknown:
        await client.subscribe_cov("fire-panel", address, "analog-input,99", lifetime=60,
                                   on_value=lambda *_: None)
    assert unknown.value.code == "unknown-object"
    instance = _instance(building, "fire-panel")
    with pytest.raises(DeviceException) as refused:  # the device object has no COV
        await client.subscribe_cov("fire-panel", address, f"device,{instance}", lifetime=60,
                                   on_value=lambda *_: None)
    assert refused.value.code == "cov-subscription-failed"


async def test_short_subscription_is_renewed_and_keeps_delivering(
        building: SimBuilding, client: BacnetClient) -> None:
    profile = _profile(building, "lift-3")
    seen = Notifications(profile, "mode")
    subscription = await client.subscribe_cov(
        "lift-3", _address(building, "lift-3"), _point(profile, "mode").object,
        lifetime=6, confirmed=False, on_value=seen)
    assert await seen.next_value(2.0) == building.values("lift-3")["mode"] == "automatic"
    await asyncio.sleep(7.0)  # past the first lifetime: only a renewal keeps it alive
    assert subscription.renewals >= 1
    assert subscription.active
    while not seen.queue.empty():  # renewals bring a fresh notification each
        seen.queue.get_nowait()
    building.inject("lift-3", "out_of_service")
    building.clock.advance(5)
    building.tick()
    assert await seen.next_value(2.0) == "out_of_service"
    assert client.stats.cov_renewals >= 1


async def test_a_silent_device_times_out_and_its_subscription_fails(
        building: SimBuilding, client: BacnetClient) -> None:
    profile = _profile(building, "fire-panel")
    address = _address(building, "fire-panel")
    failed: asyncio.Queue[CovSubscription] = asyncio.Queue()
    subscription = await client.subscribe_cov(
        "fire-panel", address, _point(profile, "zone3_state").object, lifetime=3,
        on_value=Notifications(profile, "zone3_state"), on_failed=failed.put_nowait)
    building.set_comms("fire-panel", "silent")
    started = time.monotonic()
    with pytest.raises(DeviceTimeout):
        await client.read_multiple("fire-panel", address, [PropertyRef("analog-input,10")])
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 0.4
    assert await asyncio.wait_for(failed.get(), 4.0) is subscription
    assert subscription.failed
    assert not subscription.active
    assert isinstance(subscription.error, DeviceTimeout)
    building.set_comms("fire-panel", "normal")
    value = await client.read_multiple("fire-panel", address, [PropertyRef("analog-input,20")])
    assert value[PropertyRef("analog-input,20")] == 8.0


async def test_start_names_an_address_it_cannot_bind() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        busy = BacnetClient(BacnetClientConfig(address=f"127.0.0.1/8:{port}"), timeout=TIMEOUT)
        with pytest.raises(DeviceUnreachable, match=re.escape(f"127.0.0.1/8:{port}")):
            await busy.start()
    foreign = BacnetClient(BacnetClientConfig(address="192.0.2.7/24:47809"), timeout=TIMEOUT)
    with pytest.raises(DeviceUnreachable, match=re.escape("192.0.2.7/24:47809")):
        await foreign.start()
    await foreign.close()  # never started: nothing to do


async def test_cpu_per_value_of_read_property_multiple(building: SimBuilding,
                                                        client: BacnetClient,
                                                        capsys: Any) -> None:
    profile = _profile(building, "fire-panel")
    refs = [PropertyRef(p.object, p.prop) for p in profile.points[:20]
            if isinstance(p, BacnetPoint)]
    address = _address(building, "fire-panel")
    await client.read_multiple("fire-panel", address, refs)
    calls = 200
    cpu, wall = time.process_time(), time.monotonic()
    for _ in range(calls):
        await client.read_multiple("fire-panel", address, refs)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    per_value = cpu / (calls * len(refs)) * 1e6
    with capsys.disabled():
        print(f"\nRPM of {len(refs)} properties x {calls}: {per_value:.0f} us CPU per value "
              f"(client and simulator in this process), {wall / calls * 1000:.1f} ms per call")
    assert per_value < 2000


async def test_cov_values_count_as_points_read(building: SimBuilding, client: BacnetClient,
                                               tmp_path: Path) -> None:
    """A value a COV notification brings is a point read, like a polled one."""
    fire = building.device("fire-panel")
    assert fire.bacnet_instance is not None
    metrics = GatewayMetrics()
    outbox = Outbox(tmp_path / "outbox.db", max_messages=1000, overflow="refuse_new")
    ctx = GatewayContext(MessageBuilder("tower-a", "gw-1", version="test"), outbox, metrics,
                         PollingConfig())
    config = DeviceConfig(id="fire-panel", profile="fire-panel-bacnet",
                          bacnet={"address": _address(building, "fire-panel"),
                                  "instance": fire.bacnet_instance})
    device = BacnetDevice(config, _profile(building, "fire-panel"), ctx, client,
                          cov_lifetime=60)

    def read() -> float:
        return metrics.registry.get_sample_value("towerwatch_edge_points_read_total") or 0.0

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(100):  # 5 s
            if condition():
                return
            await asyncio.sleep(0.05)

    try:
        device.online = True
        await device._subscribe()
        cov_points = [p.id for p in device.polled if p.cov]
        assert len(cov_points) >= 8 and set(device.subscriptions) == set(cov_points)
        await until(lambda: read() >= len(cov_points))  # every first notification
        assert read() >= len(cov_points)
        before = read()
        building.inject("fire-panel", "fire_alarm", {"zone": 2})
        building.clock.advance(2)
        building.tick()
        await until(lambda: read() > before)
        assert read() > before
        assert device.points.values()["zone2_state"] == "fire_alarm"
    finally:
        for subscription in device.subscriptions.values():
            subscription.cancel()
        ctx.flush()
        outbox.close()
