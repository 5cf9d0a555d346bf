"""The edge Modbus driver and commissioning scan against the simulated building.

Every test starts the example building on free ports; the driver talks to it over real
sockets (Modbus TCP, RTU framing over TCP) and a real pty (serial RTU through socat).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from device_profiles.codec import decode_modbus, encode_modbus, register_count
from device_profiles.schema import ModbusProfile, ModbusTable
from edge.config import ModbusSerial, ModbusTcp
from edge.drivers.modbus import GatewayNoResponse, ModbusClient
from edge.errors import DeviceException, DeviceTimeout, DeviceUnreachable
from edge.scan_modbus import ScanHit, parse_units, scan_modbus
from simulators.building import SimBuilding, SimulatedDevice
from tests.integration.edge_rig import running_building
from tests.servers.plugin import tool
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

TIMEOUT = 0.3


@pytest.fixture
async def building() -> AsyncIterator[SimBuilding]:
    async with running_building("127.0.11.0", warm=30) as sim:
        yield sim


def _endpoint(device: SimulatedDevice) -> ModbusTcp:
    assert device.host is not None and device.port is not None
    return ModbusTcp(host=device.host, port=device.port, unit=device.unit or 1,
                     framing=device.spec.modbus.framing)


@contextlib.asynccontextmanager
async def _client(building: SimBuilding, device_id: str,
                  name: str | None = None) -> AsyncIterator[ModbusClient]:
    """The driver's client for one device of the building, closed on leaving."""
    client = ModbusClient(_endpoint(building.device(device_id)), timeout=TIMEOUT,
                          name=name or device_id)
    try:
        yield client
    finally:
        await client.close()


def _unit(device: SimulatedDevice) -> int:
    assert device.unit is not None
    return device.unit


def _connected(client: ModbusClient) -> bool:
    return client.connected


def _matches(decoded: object, expected: object, scale: float) -> bool:
    if isinstance(expected, float) and isinstance(decoded, int | float):
        return math.isclose(decoded, expected, abs_tol=abs(scale) / 2 + 1e-6, rel_tol=1e-6)
    return decoded == expected


async def _check_device(building: SimBuilding, client: ModbusClient, device_id: str) -> int:
    """Read every point of the device one by one, decode, compare with the model."""
    device = building.device(device_id)
    profile = device.profile
    assert isinstance(profile, ModbusProfile)
    expected = building.values(device_id)
    checked = 0
    for point in profile.points:
        if point.event_log is not None or point.id not in expected:
            continue
        registers = await client.read(_unit(device), point.table, point.address,
                                      register_count(point))
        assert len(registers) == register_count(point)
        decoded = decode_modbus(point, registers, byte_order=profile.byte_order_of(point),
                                enums=profile.enums)
        want = expected[point.id]
        assert decoded.quality == "good", (device_id, point.id, decoded)
        assert _matches(decoded.value, want, point.scale), (device_id, point.id, decoded, want)
        checked += 1
    return checked


# -- reading and decoding ------------------------------------------------------------------


async def test_every_modbus_device_decodes_to_the_model_values(building: SimBuilding) -> None:
    tables: set[ModbusTable] = set()
    checked: dict[str, int] = {}
    clients: dict[ModbusTcp, ModbusClient] = {}
    try:
        for device in building.devices.values():
            if not isinstance(device.profile, ModbusProfile):
                continue
            endpoint = _endpoint(device).model_copy(update={"unit": 1})
            client = clients.setdefault(endpoint, ModbusClient(endpoint, timeout=TIMEOUT,
                                                               name=device.id))
            checked[device.id] = await _check_device(building, client, device.id)
            tables.update(p.table for p in device.profile.points)
    finally:
        for client in clients.values():
            await client.close()
    assert set(checked) == {"booster", "lift-1", "lift-2", "fire-annex", "door-lobby",
                            "meter-main", "sump-b2", "water-main"}
    assert all(n > 0 for n in checked.values()), checked
    assert tables == set(ModbusTable)
    # sump-b2 and water-main are two units behind one RTU-over-TCP endpoint: one client
    assert len(clients) == len(checked) - 1


async def test_bit_tables_return_exactly_count_zero_or_one(building: SimBuilding) -> None:
    async with _client(building, "booster") as client:
        discretes = await client.read(1, ModbusTable.DISCRETE, 0, 2)
        assert discretes == [int(building.values("booster")["low_water_switch"]),
                             int(building.values("booster")["inlet_valve_open"])]
        coils = await client.read(1, ModbusTable.COIL, 0, 1)
        assert coils in ([0], [1])
        assert client.stats.requests == 2 and client.stats.errors == 0
        assert client.stats.answered == 2 and client.stats.latency_sum > 0


async def test_rtu_framing_over_tcp_reaches_both_units(building: SimBuilding) -> None:
    sump, water = building.device("sump-b2"), building.device("water-main")
    assert (sump.port, _unit(sump), _unit(water)) == (water.port, 1, 2)
    async with _client(building, "sump-b2", "rs485-b2") as client:
        assert client.where.startswith("rtu-over-tcp://")
        battery = await client.read(2, ModbusTable.HOLDING, 7, 1)
        assert battery == [int(building.values("water-main")["battery_level"])]
        assert await _check_device(building, client, "sump-b2") > 5
        with pytest.raises(GatewayNoResponse) as info:
            await client.read(3, ModbusTable.HOLDING, 0, 1)
        assert info.value.code == 11 and isinstance(info.value, DeviceTimeout)
        assert battery == await client.read(2, ModbusTable.HOLDING, 7, 1)  # still usable


async def test_serial_rtu_through_a_pty(building: SimBuilding, tmp_path: Path) -> None:
    water = building.device("water-main")
    tty = tmp_path / "ttyRS485"
    missing = ModbusClient(ModbusSerial(serial=str(tmp_path / "ttyNONE")), timeout=TIMEOUT,
                           name="nobody")
    with pytest.raises(DeviceUnreachable, match="cannot connect"):
        await missing.connect()
    bridge = await asyncio.create_subprocess_exec(
        tool("socat"), f"pty,raw,echo=0,link={tty}", f"tcp:127.0.0.1:{water.port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    client = ModbusClient(ModbusSerial(serial=str(tty), baud=19200, parity="N"),
                          timeout=TIMEOUT, name="rs485-b2")
    try:
        for _ in range(100):
            if tty.exists():
                break
            await asyncio.sleep(0.05)
        await client.connect()
        assert client.connected and client.serial
        assert await _check_device(building, client, "water-main") > 5
        assert await _check_device(building, client, "sump-b2") > 5
        with pytest.raises(DeviceException) as info:
            await client.read(2, ModbusTable.HOLDING, 60000, 4)
        assert info.value.code == 2
        with pytest.raises(DeviceTimeout):
            await client.read(9, ModbusTable.HOLDING, 0, 1)
        assert client.connected  # a serial port stays open across a unit's timeout
        assert await client.read(2, ModbusTable.HOLDING, 7, 1) == [
            int(building.values("water-main")["battery_level"])]
    finally:
        await client.close()
        if bridge.returncode is None:
            bridge.terminate()
        await bridge.wait()


# -- failures --------------------------------------------------------------------------------


async def test_illegal_address_is_a_device_exception_naming_the_range(
        building: SimBuilding) -> None:
    annex = building.device("fire-annex")
    async with _client(building, "fire-annex") as client:
        with pytest.raises(DeviceException) as info:
            await client.read(_unit(annex), ModbusTable.HOLDING, 21, 4)
        assert info.value.code == 2 and info.value.illegal_address
        assert str(info.value) == "fire-annex: read holding 21-24: illegal data address (2)"
        assert client.connected  # an exception answer is an answer: the line is fine
        zones = await client.read(_unit(annex), ModbusTable.HOLDING, 0, 8)
        assert len(zones) == 8
        assert client.stats.errors == 1 and client.stats.timeouts == 0


async def test_a_silent_device_times_out_fast_and_recovers(building: SimBuilding) -> None:
    async with _client(building, "meter-main") as client:
        before = await client.read(1, ModbusTable.INPUT, 0, 2)
        building.set_comms("meter-main", "silent")
        started = time.perf_counter()
        with pytest.raises(DeviceTimeout, match=r"read input 0-1: no answer from unit 1"):
            await client.read(1, ModbusTable.INPUT, 0, 2)
        elapsed = time.perf_counter() - started
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 0.3
        assert not _connected(client)  # dropped, so a late answer cannot be mistaken
        assert client.stats.timeouts == 1
        building.set_comms("meter-main", "normal")
        assert await client.read(1, ModbusTable.INPUT, 0, 2) == before
        assert _connected(client)
        assert (client.stats.requests, client.stats.errors, client.stats.answered) == (3, 1, 2)


async def test_a_closed_port_is_unreachable_at_once() -> None:
    client = ModbusClient(ModbusTcp(host="127.0.0.1", port=free_port()), timeout=2.0,
                          name="ghost")
    started = time.perf_counter()
    with pytest.raises(DeviceUnreachable, match="cannot connect"):
        await client.read(1, ModbusTable.HOLDING, 0, 1)
    assert time.perf_counter() - started < 0.2
    assert client.stats.errors == 1
    await client.close()


async def test_a_stopped_endpoint_is_unreachable_even_mid_request(
        building: SimBuilding) -> None:
    meter, booster = building.device("meter-main"), building.device("booster")
    idle = ModbusClient(_endpoint(booster), timeout=2.0, name="booster")
    busy = ModbusClient(_endpoint(meter), timeout=2.0, name="meter-main")
    try:
        await idle.read(1, ModbusTable.INPUT, 0, 1)
        await busy.read(1, ModbusTable.INPUT, 0, 2)
        building.set_comms("meter-main", "silent")
        pending = asyncio.create_task(busy.read(1, ModbusTable.INPUT, 0, 2))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        await building.stop()
        with pytest.raises(DeviceUnreachable, match="connection lost"):
            await pending
        with pytest.raises(DeviceUnreachable):
            await idle.read(1, ModbusTable.INPUT, 0, 1)
        with pytest.raises(DeviceUnreachable, match="cannot connect"):
            await busy.read(1, ModbusTable.INPUT, 0, 2)
        assert time.perf_counter() - started < 0.5  # far below the 2 s timeout
    finally:
        building.set_comms("meter-main", "normal")
        await idle.close()
        await busy.close()


# -- writing ---------------------------------------------------------------------------------


async def test_writes_change_the_model(building: SimBuilding) -> None:
    booster = building.device("booster")
    profile = booster.profile
    assert isinstance(profile, ModbusProfile)
    setpoint = profile.point("pressure_setpoint")
    async with _client(building, "booster") as client:
        registers = encode_modbus(setpoint, 0.55, byte_order=profile.byte_order_of(setpoint),
                                  enums=profile.enums)
        await client.write(1, ModbusTable.HOLDING, 100, registers)
        assert building.values("booster")["pressure_setpoint"] == pytest.approx(0.55)
        assert await client.read(1, ModbusTable.HOLDING, 100, 1) == [550]
        await client.write(1, ModbusTable.HOLDING, 100, [600, 12])  # FC16, two points
        values = building.values("booster")
        assert values["pressure_setpoint"] == pytest.approx(0.6)
        assert values["rotation_period"] == 12
        await client.write(1, ModbusTable.COIL, 0, [1])  # fault reset (momentary)


async def test_a_write_to_a_read_only_point_is_refused(building: SimBuilding) -> None:
    annex = building.device("fire-annex")
    async with _client(building, "fire-annex") as client:
        before = await client.read(_unit(annex), ModbusTable.HOLDING, 0, 1)
        with pytest.raises(DeviceException, match=r"write holding 0: ") as info:
            await client.write(_unit(annex), ModbusTable.HOLDING, 0, [1])
        assert info.value.code in (2, 3)
        assert await client.read(_unit(annex), ModbusTable.HOLDING, 0, 1) == before
        with pytest.raises(ValueError, match="read-only"):
            await client.write(_unit(annex), ModbusTable.INPUT, 0, [1])
        with pytest.raises(ValueError, match="count"):
            await client.read(_unit(annex), ModbusTable.HOLDING, 0, 126)


# -- commissioning scan ----------------------------------------------------------------------


async def test_scan_of_an_rtu_bus_finds_exactly_its_units(building: SimBuilding) -> None:
    water = building.device("water-main")
    assert water.port is not None
    started = time.perf_counter()
    hits = await scan_modbus("127.0.0.1", water.port, range(1, 6), framing="rtu")
    elapsed = time.perf_counter() - started
    assert [h.unit for h in hits] == [1, 2, 3, 4, 5]
    assert [h.unit for h in hits if h.answered] == [1, 2]
    assert all("failed to respond (11)" in h.detail for h in hits[2:])
    assert elapsed < 1.0  # the gateway answers for absent units at once


async def test_scan_of_a_single_device_port_finds_unit_1_only(building: SimBuilding) -> None:
    booster = building.device("booster")
    assert booster.port is not None
    hits = await scan_modbus("127.0.0.1", booster.port, parse_units("1-4,200,247"))
    assert [h.unit for h in hits if h.answered] == [1]
    first = hits[0]
    assert first.detail.startswith("holding 0 = ") or first.detail.startswith("holding 0: ")
    assert first.elapsed > 0


async def test_scan_treats_a_timeout_as_nobody_and_carries_on(building: SimBuilding) -> None:
    sump = building.device("sump-b2")
    assert sump.port is not None
    building.set_comms("sump-b2", "silent")
    started = time.perf_counter()
    hits = await scan_modbus("127.0.0.1", sump.port, [1, 2], timeout=0.2, framing="rtu")
    assert time.perf_counter() - started < 0.2 + 0.5
    assert hits[0] == ScanHit(1, False, "no answer from unit 1 in 0.2 s", None,
                              hits[0].elapsed)
    assert hits[1].answered


async def test_scan_of_a_closed_port_is_unreachable() -> None:
    with pytest.raises(DeviceUnreachable):
        await scan_modbus("127.0.0.1", free_port(), [1])


@pytest.mark.parametrize(("text", "units"), [
    ("1-3,7", [1, 2, 3, 7]),
    (" 5 , 2-3 ,3", [2, 3, 5]),
    ("247", [247]),
    ("1-247", list(range(1, 248))),
])
def test_parse_units(text: str, units: list[int]) -> None:
    assert parse_units(text) == units


@pytest.mark.parametrize(("text", "message"), [
    ("", "no unit ids"),
    ("1-", "not a unit id"),
    ("a", "not a unit id"),
    ("5-1", "backwards"),
    ("0-3", "0 is broadcast"),
    ("250-256", r"1\.\.255"),
])
def test_parse_units_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_units(text)


# -- cost ------------------------------------------------------------------------------------


async def test_request_latency_and_cpu(building: SimBuilding) -> None:
    """500 block reads of 11 input registers; the simulator shares this process, so the
    CPU figure is client + server (the client alone is about half of it)."""
    async with _client(building, "booster") as client:
        await client.read(1, ModbusTable.INPUT, 0, 11)
        reads = 500
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(reads):
            await client.read(1, ModbusTable.INPUT, 0, 11)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        mean = client.stats.latency_sum / client.stats.answered
        print(f"\nmodbus driver: {reads} reads, {wall / reads * 1e6:.0f} us wall/request, "
              f"{cpu / reads * 1e6:.0f} us CPU/request (client+server), "
              f"mean latency {mean * 1e6:.0f} us")
        assert cpu / reads < 0.002
        assert client.stats.requests == reads + 1 and client.stats.errors == 0
