"""BacnetDeviceServer against a plain bacpypes3 client over real UDP on loopback.

Three simulated devices at ``127.0.0.N/8:47808`` and one client at ``127.0.0.1/8`` on
another port (a packet to 127.x on the sender's own port loops back into its stack).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from bacpypes3.apdu import (
    AbortPDU,
    ErrorRejectAbortNack,
    WhoIsRequest,
    WritePropertyMultipleError,
    WritePropertyMultipleRequest,
)
from bacpypes3.basetypes import PropertyValue, WriteAccessSpecification
from bacpypes3.constructeddata import Any as AnyValue
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import Null, ObjectIdentifier, Real

from device_profiles.schema import BacnetProfile
from simulators.bacnet_objects import BacnetServerError
from simulators.bacnet_server import BacnetDeviceServer
from simulators.models.base import Value, WriteRefused
from tests.servers.ports import BACNET_PORT
from tests.simulators.bacnet_client import plain_client

DEVICE_PORT = BACNET_PORT
BASE_INSTANCE = 424_200
CLIENT_TIMEOUT_MS = 400

PROFILE = BacnetProfile.model_validate({
    "id": "test-pump-bacnet", "version": "1.2", "manufacturer": "Test", "model": "TP-1 BACnet",
    "protocol": "bacnet", "equipment": "Pump",
    "enums": {
        "pump_state": [
            {"value": 1, "name": "stopped", "en": "Stopped", "zh": "停止"},
            {"value": 2, "name": "running", "en": "Running", "zh": "运行"},
            {"value": 3, "name": "fault", "en": "Fault", "zh": "故障"},
        ],
        "mode": [
            {"value": 1, "name": "off", "en": "Off", "zh": "关"},
            {"value": 2, "name": "auto", "en": "Auto", "zh": "自动"},
            {"value": 3, "name": "hand", "en": "Hand", "zh": "手动"},
        ],
    },
    "points": [
        {"id": "pressure", "name": {"en": "Outlet pressure", "zh": "出口压力"},
         "object": "analog-input,1", "unit": "kPa", "cov": True, "cov_increment": 1.0},
        {"id": "running", "name": {"en": "Running", "zh": "运行"},
         "object": "binary-input,1", "kind": "bool", "cov": True},
        {"id": "state", "name": {"en": "Pump state", "zh": "泵状态"},
         "object": "multi-state-input,1", "kind": "enum", "enum": "pump_state", "cov": True},
        {"id": "mode", "name": {"en": "Mode", "zh": "模式"}, "object": "multi-state-output,1",
         "kind": "enum", "enum": "mode", "writable": True},
        {"id": "setpoint", "name": {"en": "Pressure setpoint", "zh": "压力设定"},
         "object": "analog-value,1", "unit": "kPa", "writable": True},
        {"id": "enable", "name": {"en": "Enable", "zh": "使能"}, "object": "binary-value,1",
         "kind": "bool", "writable": True},
        {"id": "starts", "name": {"en": "Starts", "zh": "启动次数"},  # covIncrement Unsigned
         "object": "positive-integer-value,1", "kind": "counter", "unit": "count", "cov": True},
    ],
})
INITIAL: dict[str, Value] = {"pressure": 101.5, "running": True, "state": "running",
                             "mode": "auto", "setpoint": 300.0, "enable": False,
                             "starts": 17}


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_hosts(count: int) -> list[str]:
    """``count`` loopback hosts whose BACnet port is free, from 127.0.0.11 on."""
    hosts = [h for n in range(11, 250) if _bindable(h := f"127.0.0.{n}", DEVICE_PORT)]
    assert len(hosts) >= count, "no free loopback BACnet addresses"
    return hosts[:count]


@dataclass
class Rig:
    hosts: list[str]
    servers: list[BacnetDeviceServer]
    client: Any
    writes: list[tuple[str, Value]] = field(default_factory=list)

    def addr(self, n: int) -> Any:
        return Address(f"{self.hosts[n]}:{DEVICE_PORT}")

    async def who_is(self) -> dict[int, Any]:
        self.client.i_ams = {}
        broadcast = Address(f"127.255.255.255:{DEVICE_PORT}")  # not the client's own port
        await self.client.request(WhoIsRequest(destination=broadcast))
        await asyncio.sleep(0.3)
        return {i: a for i, a in self.client.i_ams.items()
                if BASE_INSTANCE <= i < BASE_INSTANCE + len(self.servers)}

    async def rpm(self, n: int, *specs: Any) -> dict[tuple[str, str], Any]:
        rows = await self.client.read_property_multiple(self.addr(n), list(specs))
        return {(f"{oid[0]},{oid[1]}", str(prop)): value for oid, prop, _, value in rows}

    async def read(self, n: int, obj: str, prop: str = "present-value") -> Any:
        return await self.client.read_property(self.addr(n), obj, prop)

    async def write(self, n: int, obj: str, value: Any, priority: int | None = None) -> None:
        await self.client.write_property(self.addr(n), obj, "present-value", value,
                                         priority=priority)


def _on_write(writes: list[tuple[str, Value]]) -> Any:
    def on_write(point_id: str, value: Value) -> None:
        if point_id == "setpoint" and isinstance(value, float) and value > 1000:
            raise WriteRefused(f"setpoint {value} above 1000 kPa")
        writes.append((point_id, value))
    return on_write


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    hosts = _free_hosts(3)
    writes: list[tuple[str, Value]] = []
    servers = [BacnetDeviceServer(profile=PROFILE, device_instance=BASE_INSTANCE + n,
                                  device_name=f"pump-{n}", address=f"{host}/8:{DEVICE_PORT}",
                                  initial=INITIAL, on_write=_on_write(writes))
               for n, host in enumerate(hosts)]
    client: Any = None
    try:
        for server in servers:
            await server.start()
        client = plain_client(BASE_INSTANCE + 99, timeout_ms=CLIENT_TIMEOUT_MS, retries=0)
        yield Rig(hosts, servers, client, writes)
    finally:
        for server in servers:
            await server.stop()
        if client is not None:
            client.close()
        await asyncio.sleep(0.05)


async def _next_present_value(scm: Any, within: float) -> Any:
    """The next present-value a COV subscription delivers (status flags skipped)."""
    while True:
        prop, value = await asyncio.wait_for(scm.get_value(), within)
        if str(prop) == "present-value":
            return value


async def _drain(scm: Any) -> None:
    await asyncio.sleep(0.2)  # the initial notification, if it won the race
    while not scm.queue.empty():
        scm.queue.get_nowait()


def _error_code(excinfo: pytest.ExceptionInfo[ErrorRejectAbortNack]) -> str:
    return str(excinfo.value.errorCode)


@pytest.mark.integration
async def test_who_is_finds_every_device(rig: Rig) -> None:
    found = await rig.who_is()
    assert sorted(found) == [BASE_INSTANCE, BASE_INSTANCE + 1, BASE_INSTANCE + 2]
    for n, host in enumerate(rig.hosts):
        assert str(found[BASE_INSTANCE + n]) == host  # default port is not printed


@pytest.mark.integration
async def test_read_property_multiple_returns_present_values(rig: Rig) -> None:
    values = await rig.rpm(
        1,
        "analog-input,1", ["present-value", "units", "cov-increment", "object-name",
                           "description"],
        "binary-input,1", ["present-value"],
        "multi-state-input,1", ["present-value", "number-of-states", "state-text"],
        "multi-state-output,1", ["present-value"],
        "positive-integer-value,1", ["present-value", "cov-increment"],
        f"device,{BASE_INSTANCE + 1}", ["object-name", "model-name", "vendor-name",
                                        "firmware-revision"],
    )
    assert values[("analog-input,1", "present-value")] == 101.5
    assert str(values[("analog-input,1", "units")]) == "kilopascals"
    assert values[("analog-input,1", "cov-increment")] == 1.0
    assert values[("analog-input,1", "object-name")] == "pressure"
    assert values[("analog-input,1", "description")] == "Outlet pressure"
    assert str(values[("binary-input,1", "present-value")]) == "active"
    assert values[("multi-state-input,1", "present-value")] == 2
    assert values[("multi-state-input,1", "number-of-states")] == 3
    assert list(values[("multi-state-input,1", "state-text")]) == ["Stopped", "Running", "Fault"]
    assert values[("multi-state-output,1", "present-value")] == 2
    assert values[("positive-integer-value,1", "present-value")] == 17
    assert values[("positive-integer-value,1", "cov-increment")] == 0
    device = f"device,{BASE_INSTANCE + 1}"
    assert values[(device, "object-name")] == "pump-1"
    assert values[(device, "model-name")] == "TP-1 BACnet"
    assert values[(device, "vendor-name")] == "Towerwatch Simulator"
    assert values[(device, "firmware-revision")] == "1.2"


@pytest.mark.integration
async def test_update_then_read_returns_new_value(rig: Rig) -> None:
    rig.servers[0].update({"pressure": 250.25, "running": False, "state": "fault",
                           "no_such_point": 1})
    rig.servers[0].update({"state": "exploded"})  # not in the enum: logged, not raised
    values = await rig.rpm(0, "analog-input,1", ["present-value"],
                           "binary-input,1", ["present-value"],
                           "multi-state-input,1", ["present-value"])
    assert values[("analog-input,1", "present-value")] == 250.25
    assert str(values[("binary-input,1", "present-value")]) == "inactive"
    assert values[("multi-state-input,1", "present-value")] == 3
    assert await rig.read(1, "analog-input,1") == 101.5  # the other devices are their own


@pytest.mark.integration
async def test_cov_subscription_delivers_updates(rig: Rig) -> None:
    server = rig.servers[2]
    analog = ObjectIdentifier("analog-input,1")  # a str here never matches a notification
    async with rig.client.change_of_value(rig.addr(2), analog, None, True, 60) as scm:
        await _drain(scm)
        server.update({"pressure": 101.9})  # below cov_increment 1.0: no notification
        with pytest.raises(TimeoutError):
            await _next_present_value(scm, 0.3)
        server.update({"pressure": 103.5})
        assert await _next_present_value(scm, 2.0) == 103.5
    state = ObjectIdentifier("multi-state-input,1")
    async with rig.client.change_of_value(rig.addr(2), state, None, False, 60) as scm:
        await _drain(scm)
        server.update({"state": "stopped"})
        assert await _next_present_value(scm, 2.0) == 1


@pytest.mark.integration
async def test_writes_reach_the_model_and_read_only_points_refuse(rig: Rig) -> None:
    await rig.write(0, "analog-value,1", 55.5)
    await rig.write(0, "binary-value,1", "active")
    await rig.write(0, "multi-state-output,1", 3, priority=8)
    assert await rig.read(0, "analog-value,1") == 55.5
    assert await rig.read(0, "multi-state-output,1") == 3
    await rig.write(0, "multi-state-output,1", Null(()), priority=8)  # relinquish
    assert await rig.read(0, "multi-state-output,1") == 2
    assert rig.writes == [("setpoint", 55.5), ("enable", True), ("mode", "hand"),
                          ("mode", "auto")]

    for obj, value in (("analog-input,1", 1.0), ("multi-state-input,1", 1)):
        with pytest.raises(ErrorRejectAbortNack) as denied:
            await rig.write(0, obj, value)
        assert _error_code(denied) == "write-access-denied"
    with pytest.raises(ErrorRejectAbortNack) as denied:
        await rig.client.write_property(rig.addr(0), "analog-value,1", "description", "x")
    assert _error_code(denied) == "write-access-denied"
    with pytest.raises(ErrorRejectAbortNack) as refused:
        await rig.write(0, "analog-value,1", 5000.0)  # the model says no
    assert _error_code(refused) == "value-out-of-range"
    with pytest.raises(ErrorRejectAbortNack) as refused:
        await rig.write(0, "multi-state-output,1", 9)  # no such state
    assert _error_code(refused) == "value-out-of-range"
    assert await rig.read(0, "analog-value,1") == 55.5
    assert len(rig.writes) == 4


@pytest.mark.integration
async def test_write_property_multiple_stops_at_the_first_refusal(rig: Rig) -> None:
    def spec(obj: str, value: float) -> Any:
        item = PropertyValue(propertyIdentifier="present-value", value=AnyValue(Real(value)))
        return WriteAccessSpecification(objectIdentifier=ObjectIdentifier(obj),
                                        listOfProperties=[item])

    request = WritePropertyMultipleRequest(
        listOfWriteAccessSpecs=[spec("analog-value,1", 60.0), spec("analog-input,1", 1.0)],
        destination=rig.addr(1))
    with pytest.raises(WritePropertyMultipleError) as refused:
        await rig.client.request(request)
    assert str(refused.value.errorType.errorCode) == "write-access-denied"
    assert str(refused.value.firstFailedWriteAttempt.objectIdentifier[0]) == "analog-input"
    assert await rig.read(1, "analog-value,1") == 60.0
    assert await rig.read(1, "analog-input,1") == 101.5


@pytest.mark.integration
async def test_silent_device_answers_nothing_and_slow_device_answers_late(rig: Rig) -> None:
    rig.servers[1].set_comms("silent")
    with pytest.raises(AbortPDU) as aborted:
        await rig.read(1, "analog-input,1")
    assert "no-response" in str(aborted.value)
    assert sorted(await rig.who_is()) == [BASE_INSTANCE, BASE_INSTANCE + 2]

    rig.servers[1].set_comms("slow", 0.25)
    started = time.monotonic()
    assert await rig.read(1, "analog-input,1") == 101.5
    assert time.monotonic() - started >= 0.25
    rig.servers[1].set_comms("normal")
    assert len(await rig.who_is()) == 3


@pytest.mark.integration
async def test_stop_frees_the_address(rig: Rig) -> None:
    server = rig.servers[0]
    twin = BacnetDeviceServer(profile=PROFILE, device_instance=BASE_INSTANCE + 50,
                              device_name="twin", address=server.address, initial=INITIAL)
    with pytest.raises(BacnetServerError, match="cannot serve BACnet/IP"):
        await twin.start()
    server.update({"pressure": 99.0})
    await server.stop()
    await server.stop()  # idempotent
    assert not server.running
    with pytest.raises(AbortPDU):
        await rig.read(0, "analog-input,1")
    await twin.start()
    try:
        assert await rig.read(0, f"device,{BASE_INSTANCE + 50}", "object-name") == "twin"
    finally:
        await twin.stop()
    await server.start()  # and again, with the values it had
    assert await rig.read(0, "analog-input,1") == 99.0


def test_bad_configuration_is_refused_before_any_socket() -> None:
    def server(**changes: Any) -> BacnetDeviceServer:
        kwargs: dict[str, Any] = {"profile": PROFILE, "device_instance": 1, "device_name": "x",
                                  "address": "127.0.0.250/8:47808", "initial": INITIAL}
        return BacnetDeviceServer(**(kwargs | changes))

    with pytest.raises(BacnetServerError, match="address"):
        server(address="not an address")
    with pytest.raises(BacnetServerError, match="exploded"):
        server(initial={**INITIAL, "state": "exploded"})
    indexed = PROFILE.model_copy(update={"points": [
        PROFILE.points[0].model_copy(update={"index": 2})]})
    with pytest.raises(BacnetServerError, match="index"):
        server(profile=indexed)
    assert server(initial={}).running is False  # missing values take neutral defaults
