"""Simulated Modbus devices served over real TCP (Modbus TCP or RTU framing over TCP).

The only module in ``simulators`` that imports pymodbus. One :class:`ModbusEndpoint`
is one listening socket; it serves one or more unit ids (several units on one port
stand for RS-485 devices behind a serial gateway). Every request first brings the
unit's register image up to date, then applies the unit's communication behaviour:
normal, slow (answers after a delay), silent (never answers in time) or
illegal-address for chosen ranges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from device_profiles.schema import ModbusTable
from simulators.image import AddressRange, ModbusImage
from simulators.models.base import SimError, Value, WriteRefused

log = logging.getLogger(__name__)

CommsMode = Literal["normal", "slow", "silent"]
Framing = Literal["socket", "rtu"]

_FC_TABLE: dict[int, ModbusTable] = {
    1: ModbusTable.COIL, 5: ModbusTable.COIL, 15: ModbusTable.COIL,
    2: ModbusTable.DISCRETE,
    3: ModbusTable.HOLDING, 6: ModbusTable.HOLDING, 16: ModbusTable.HOLDING,
    22: ModbusTable.HOLDING, 23: ModbusTable.HOLDING,
    4: ModbusTable.INPUT,
}
_TUPLE_ORDER = (ModbusTable.COIL, ModbusTable.DISCRETE, ModbusTable.HOLDING, ModbusTable.INPUT)
SILENT_HOLD_S = 30.0
"""How long a silent unit holds a request before answering 'gateway: no response'."""
_CATCH_ALL_SPAN = 256
"""Addresses of unknown units that answer 0x0B; beyond them, illegal address."""


class ModbusServerError(SimError):
    """A simulated Modbus endpoint could not start."""


@dataclass(eq=False)
class ModbusUnit:
    """One simulated device behind an endpoint: its image and its behaviour on the wire."""

    unit: int
    image: ModbusImage
    refresh: Callable[[], None]
    """Brings the image up to date with the model (called before every request)."""
    on_write: Callable[[str, Value], None]
    illegal: list[AddressRange] = field(default_factory=list)
    comms: CommsMode = "normal"
    delay: float = 0.0
    requests: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def set_comms(self, mode: CommsMode, delay: float = 0.0) -> None:
        self.comms, self.delay = mode, delay
        if mode != "silent":
            self._wake.set()
            self._wake = asyncio.Event()

    async def handle(self, func_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: list[int] | list[bool] | None,
                     ) -> ExcCodes | None:
        self.requests += 1
        if self.comms == "silent":
            try:
                await asyncio.wait_for(self._wake.wait(), SILENT_HOLD_S)
            except TimeoutError:
                return ExcCodes.GATEWAY_NO_RESPONSE
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        table = _FC_TABLE.get(func_code)
        if table is None or table not in self.image.tables:
            return ExcCodes.ILLEGAL_ADDRESS
        span = max(1, count)
        if self.image.forbidden_at(table, address, span) or any(
            r.touches(table, address, span) for r in self.illegal
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        self.refresh()
        if set_values is not None:
            code = self._write(table, address, [int(v) for v in set_values])
            if code is not None:
                return code
        current = self.image.tables[table]
        if table.is_bit_table:
            packed = SimUtils.bitsToRegisters([bool(b) for b in _pad16(current)])
            registers[:len(packed)] = packed
        else:
            registers[:len(current)] = current
        return None

    def _write(self, table: ModbusTable, address: int, values: list[int]) -> ExcCodes | None:
        try:
            changes = self.image.write(table, address, values)
        except PermissionError as exc:
            log.info("unit %d: write refused: %s", self.unit, exc)
            return ExcCodes.ILLEGAL_ADDRESS
        except ValueError as exc:
            log.info("unit %d: write refused: %s", self.unit, exc)
            return ExcCodes.ILLEGAL_VALUE
        try:
            for point_id, value in changes.items():
                self.on_write(point_id, value)
        except WriteRefused as exc:
            log.info("unit %d: write refused by device: %s", self.unit, exc)
            return ExcCodes.ILLEGAL_VALUE
        return None


async def _no_such_unit(func_code: int, start_address: int, address: int, count: int,
                        registers: list[int], set_values: list[int] | list[bool] | None,
                        ) -> ExcCodes | None:
    """Any unit id the endpoint does not serve: answer like a TCP-to-RTU gateway would."""
    return ExcCodes.GATEWAY_NO_RESPONSE


def _catch_all() -> SimDevice:
    """Unit id 0 stands for every unit not defined. Requests within the first
    ``_CATCH_ALL_SPAN`` addresses (where scans probe) reach the action and answer 0x0B;
    spanning the whole address space would cost ~1 MB per endpoint."""
    block = SimData(address=0, count=_CATCH_ALL_SPAN, datatype=DataType.REGISTERS)
    return SimDevice(id=0, simdata=[block], action=_no_such_unit)


def _pad16(bits: Sequence[int]) -> list[int]:
    return list(bits) + [0] * (-len(bits) % 16)


def _simdata(image: ModbusImage) -> tuple[list[SimData], list[SimData], list[SimData],
                                           list[SimData]]:
    blocks: list[list[SimData]] = []
    for table in _TUPLE_ORDER:
        size = len(image.tables.get(table, ()))
        if table.is_bit_table:
            bits = max(16, size + (-size % 16))
            blocks.append([SimData(address=0, values=[False] * bits, datatype=DataType.BITS)])
        elif size:
            blocks.append([SimData(address=0, values=[0] * size, datatype=DataType.REGISTERS)])
        else:
            blocks.append([SimData(address=0, count=1, datatype=DataType.INVALID)])
    return blocks[0], blocks[1], blocks[2], blocks[3]


class ModbusEndpoint:
    """One TCP listener serving one or more simulated units."""

    def __init__(self, host: str, port: int, units: Sequence[ModbusUnit],
                 framing: Framing = "socket") -> None:
        if not units:
            raise ModbusServerError(f"{host}:{port}: an endpoint needs at least one unit")
        self.host, self.port, self.framing = host, port, framing
        self.units = {u.unit: u for u in units}
        if len(self.units) != len(units):
            raise ModbusServerError(f"{host}:{port}: duplicate unit ids")
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        devices = [SimDevice(id=u.unit, simdata=_simdata(u.image), action=u.handle)
                   for u in self.units.values()]
        devices.append(_catch_all())
        framer = FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET
        server = ModbusTcpServer(devices, framer=framer, address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except (OSError, RuntimeError) as exc:
            await server.shutdown()  # type: ignore[no-untyped-call]
            raise ModbusServerError(
                f"cannot serve Modbus on {self.host}:{self.port}: {exc}") from exc
        self._server = server

    @property
    def running(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
