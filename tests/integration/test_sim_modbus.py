"""The example building over real Modbus sockets, read by clients we did not write.

``mbpoll`` (Debian) reads Modbus TCP directly and RTU through a ``socat`` pty bridged
to the RTU-over-TCP endpoint; pymodbus' client exercises the failure behaviours.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from simulators.building import SimBuilding, SimulatedDevice
from tests.integration.edge_rig import running_building
from tests.servers.plugin import tool

pytestmark = pytest.mark.integration



@pytest.fixture
async def building() -> AsyncIterator[SimBuilding]:
    async with running_building("127.0.4.0", warm=30) as sim:
        yield sim


async def _run(*argv: str, limit: float = 10.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), limit)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _port(device: SimulatedDevice) -> int:
    assert device.port is not None
    return device.port


def _mbpoll_values(output: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", output, re.M)}


async def test_mbpoll_reads_the_pump_set_outlet_pressure(building: SimBuilding) -> None:
    booster = building.device("booster")
    expected = building.values("booster")["outlet_pressure"]
    assert isinstance(expected, float) and 0.1 < expected < 1.6  # MPa
    code, out = await _run(tool("mbpoll"), "-m", "tcp", "-p", str(booster.port), "-a", "1",
                           "-t", "3", "-0", "-r", "2", "-c", "1", "-1", "-o", "2", "127.0.0.1")
    assert code == 0, out
    assert int(_mbpoll_values(out)[2]) * 0.001 == pytest.approx(expected, abs=0.0006)


async def test_mbpoll_reads_a_word_swapped_float(building: SimBuilding) -> None:
    meter = building.device("meter-main")
    volts = building.values("meter-main")["voltage_l1"]
    # mbpoll's float is little-endian word order, the meter's CDAB
    code, out = await _run(tool("mbpoll"), "-m", "tcp", "-p", str(meter.port), "-t", "3:float",
                           "-0", "-r", "0", "-c", "1", "-1", "127.0.0.1")
    assert code == 0, out
    assert float(_mbpoll_values(out)[0]) == pytest.approx(float(volts), rel=1e-5)
    assert 200 < float(volts) < 260


async def test_rtu_framing_through_a_serial_line(building: SimBuilding, tmp_path: Path) -> None:
    water = building.device("water-main")
    sump = building.device("sump-b2")
    assert (water.port, water.spec.modbus.framing) == (sump.port, "rtu")
    assert {water.unit, sump.unit} == {1, 2}
    tty = tmp_path / "ttyRS485"
    bridge = await asyncio.create_subprocess_exec(
        tool("socat"), f"pty,raw,echo=0,link={tty}", f"tcp:127.0.0.1:{water.port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(100):
            if tty.exists():
                break
            await asyncio.sleep(0.05)
        battery = building.values("water-main")["battery_level"]
        code, out = await _run(tool("mbpoll"), "-m", "rtu", "-b", "19200", "-P", "none",
                               "-a", str(water.unit), "-t", "4", "-0", "-r", "7", "-c", "1",
                               "-1", "-o", "2", str(tty))
        assert code == 0, out
        assert int(_mbpoll_values(out)[7]) == int(battery)
    finally:
        bridge.terminate()
        await bridge.wait()


async def test_scenario_fault_shows_on_the_wire(building: SimBuilding) -> None:
    annex = building.device("fire-annex")
    building.inject("fire-annex", "fire_alarm", {"zone": 3})
    building.clock.advance(2)
    building.tick()
    client = AsyncModbusTcpClient("127.0.0.1", port=_port(annex), timeout=1, retries=0)
    await client.connect()
    try:
        zones = await client.read_holding_registers(0, count=8, device_id=annex.unit or 1)
        assert not zones.isError()
        assert zones.registers[2] != 0 and zones.registers[0] == 0
        forbidden = await client.read_holding_registers(21, count=4, device_id=annex.unit or 1)
        assert forbidden.isError() and forbidden.exception_code == 2
        refused = await client.write_register(0, 0, device_id=annex.unit or 1)
        assert refused.isError()
    finally:
        client.close()


async def test_silent_and_slow_devices(building: SimBuilding) -> None:
    meter = building.device("meter-main")
    client = AsyncModbusTcpClient("127.0.0.1", port=_port(meter), timeout=0.5, retries=0)
    await client.connect()
    try:
        building.set_comms("meter-main", "silent")
        with pytest.raises(ModbusException):
            await client.read_input_registers(0, count=2, device_id=1)
        client.close()
        building.set_comms("meter-main", "slow", 0.3)
        client = AsyncModbusTcpClient("127.0.0.1", port=_port(meter), timeout=2, retries=0)
        await client.connect()
        started = asyncio.get_running_loop().time()
        reply = await client.read_input_registers(0, count=2, device_id=1)
        assert not reply.isError()
        assert asyncio.get_running_loop().time() - started >= 0.3
    finally:
        client.close()
