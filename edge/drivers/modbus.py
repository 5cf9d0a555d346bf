"""Modbus driver: one connection (TCP, RTU framing over TCP, or a serial RTU line).

The only module in ``edge`` that imports pymodbus. The rest of the gateway sees
:class:`ModbusClient`, plain ``list[int]`` values and our own errors:

- no answer in time                          -> :class:`~edge.errors.DeviceTimeout`;
  a gateway's 0x0A/0x0B ("path unavailable", "target did not respond") is the same
  fact told by the gateway               -> :class:`GatewayNoResponse` (a DeviceTimeout)
- no connection: refused, reset, closed, serial port missing
                                              -> :class:`~edge.errors.DeviceUnreachable`
- an exception response (illegal address ...) -> :class:`~edge.errors.DeviceException`
  with ``code`` the Modbus exception code
- a reply that does not fit the request       -> :class:`~edge.errors.DeviceError`

pymodbus is set up to fail fast and leave policy to the gateway: ``retries=0`` and no
background reconnect (``reconnect_delay=0``); a lost connection is reopened lazily by
the next request. After a timeout on TCP the connection is dropped, so that a late
answer can never be taken for the answer to a later request (RTU framing has no
transaction id, and a silent device may answer long after we gave up); likewise after
a cancelled request or a reply that does not fit. A serial port stays open: the bus
scheduler's inter-frame gap keeps late answers apart, and pymodbus clears its receive
buffer before each request.

pymodbus' own log (an ERROR with a hex dump per timeout) is turned down to CRITICAL on
first use unless the application configured the ``pymodbus`` logger itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from device_profiles.schema import ModbusTable
from edge.config import ModbusSerial, ModbusTcp
from edge.errors import DeviceError, DeviceException, DeviceTimeout, DeviceUnreachable

MAX_READ_REGISTERS: Final = 125
MAX_READ_BITS: Final = 2000
MAX_WRITE_REGISTERS: Final = 123
MAX_WRITE_COILS: Final = 1968

EXCEPTION_NAMES: Final[dict[int, str]] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
GATEWAY_CODES: Final = frozenset({10, 11})
"""A TCP-to-RTU gateway answering for a device that did not: the device is not there."""

_READ_FC: Final = {ModbusTable.COIL: 1, ModbusTable.DISCRETE: 2, ModbusTable.HOLDING: 3,
                   ModbusTable.INPUT: 4}
_IDENTITY_OBJECTS: Final = {0: "vendor_name", 1: "product_code", 2: "revision",
                            3: "vendor_url", 4: "product_name", 5: "model_name",
                            6: "user_application_name"}

_Client = AsyncModbusTcpClient | AsyncModbusSerialClient


def _quiet_pymodbus() -> None:
    """pymodbus logs every timeout at ERROR with a hex dump of the last frames: a dead
    device would flood the log each cycle. Our errors carry the facts and the gateway logs
    them once; pymodbus keeps only CRITICAL unless someone configured its logger."""
    for name in ("pymodbus", "pymodbus.logging"):
        if logging.getLogger(name).level != logging.NOTSET:
            return
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class GatewayNoResponse(DeviceTimeout):
    """A TCP-to-RTU gateway answered 0x0A/0x0B for the unit: the device itself did not."""

    def __init__(self, device: str, message: str, code: int) -> None:
        self.code = code
        super().__init__(device, message)


@dataclass(slots=True)
class RequestStats:
    """Counters for /metrics; mutated by the client after every request."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    answered: int = 0
    """Requests that got a reply (data or exception); the count behind ``latency_sum``."""
    last_latency: float = 0.0
    """Seconds from send to reply of the last answered request."""
    latency_sum: float = 0.0


def exception_text(code: int) -> str:
    """``"illegal data address (2)"``."""
    return f"{EXCEPTION_NAMES.get(code, 'exception')} ({code})"


def _span(address: int, count: int) -> str:
    return f"{address}-{address + count - 1}" if count > 1 else str(address)


class ModbusClient:
    """One pymodbus async client, serialised by a lock; see the module docstring."""

    def __init__(self, endpoint: ModbusTcp | ModbusSerial, *, timeout: float, name: str) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.name = name
        self.stats = RequestStats()
        self._lock = asyncio.Lock()
        self._client: _Client | None = None
        self._in_flight = False

    def __repr__(self) -> str:
        return f"ModbusClient({self.name!r}, {self.where})"

    @property
    def where(self) -> str:
        """``tcp://host:port``, ``rtu-over-tcp://host:port`` or the serial device path."""
        ep = self.endpoint
        if isinstance(ep, ModbusTcp):
            scheme = "tcp" if ep.framing == "socket" else "rtu-over-tcp"
            return f"{scheme}://{ep.host}:{ep.port}"
        return f"{ep.serial} ({ep.baud} {ep.bytesize}{ep.parity}{ep.stopbits})"

    @property
    def serial(self) -> bool:
        return isinstance(self.endpoint, ModbusSerial)

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # -- connection ---------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the connection if it is not open; raise DeviceUnreachable if it cannot be."""
        async with self._lock:
            await self._ensure_connected()

    async def close(self) -> None:
        async with self._lock:
            self._drop()
        await asyncio.sleep(0)  # let the transport finish closing its socket / port

    def _build(self) -> _Client:
        _quiet_pymodbus()
        ep = self.endpoint
        if isinstance(ep, ModbusTcp):
            framer = FramerType.SOCKET if ep.framing == "socket" else FramerType.RTU
            return AsyncModbusTcpClient(
                ep.host, port=ep.port, framer=framer, name=self.name, timeout=self.timeout,
                retries=0, reconnect_delay=0.0, reconnect_delay_max=0.0,
                trace_connect=self._on_connection)
        return AsyncModbusSerialClient(
            ep.serial, framer=FramerType.RTU, baudrate=ep.baud, bytesize=ep.bytesize,
            parity=ep.parity, stopbits=ep.stopbits, name=self.name, timeout=self.timeout,
            retries=0, reconnect_delay=0.0, reconnect_delay_max=0.0,
            trace_connect=self._on_connection)

    async def _ensure_connected(self) -> _Client:
        if self._client is None:
            self._client = self._build()
        client = self._client
        if client.connected:
            return client
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            raise DeviceUnreachable(self.name, f"cannot connect to {self.where}: {exc}") from exc
        if not ok:
            raise DeviceUnreachable(self.name, f"cannot connect to {self.where}")
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()

    def _on_connection(self, up: bool) -> None:
        """pymodbus' connect trace: on a lost connection, fail the request in flight now
        instead of letting it wait out its timeout."""
        if up or not self._in_flight or self._client is None:
            return
        future = self._client.ctx.response_future
        if not future.done():
            future.set_exception(ConnectionException("connection lost"))

    # -- requests -----------------------------------------------------------------------
    async def read(self, unit: int, table: ModbusTable, address: int, count: int) -> list[int]:
        """``count`` registers (0..65535) or bits (0/1) from ``address`` (0-based)."""
        limit = MAX_READ_BITS if table.is_bit_table else MAX_READ_REGISTERS
        _check(unit, address, count, limit)
        what = f"read {table.value} {_span(address, count)}"
        reply = await self._request(what, table, unit, address, count, None)
        values = reply.bits if table.is_bit_table else reply.registers
        if len(values) < count or (not table.is_bit_table and len(values) != count):
            self.stats.errors += 1
            self._garbled()
            raise DeviceError(self.name, f"{what}: reply has {len(values)} values")
        if table.is_bit_table:
            return [1 if bit else 0 for bit in values[:count]]
        return list(values)

    async def write(self, unit: int, table: ModbusTable, address: int,
                    values: list[int]) -> None:
        """Holding registers (FC6 for one, FC16 for several) or coils (FC5 / FC15)."""
        if table not in (ModbusTable.HOLDING, ModbusTable.COIL):
            raise ValueError(f"{table.value} is read-only in Modbus; write holding or coil")
        limit = MAX_WRITE_COILS if table is ModbusTable.COIL else MAX_WRITE_REGISTERS
        _check(unit, address, len(values), limit)
        if table is ModbusTable.COIL:
            if any(v not in (0, 1) for v in values):
                raise ValueError(f"coils take 0 or 1, got {values}")
        elif any(not 0 <= v <= 0xFFFF for v in values):
            raise ValueError(f"registers take 0..65535, got {values}")
        what = f"write {table.value} {_span(address, len(values))}"
        await self._request(what, table, unit, address, len(values), values)

    async def identify(self, unit: int) -> dict[str, str]:
        """FC43/14 basic device identification: vendor, product code, revision (may be {})."""
        _check(unit, 0, 1, 1)
        reply = await self._request("read device identification", None, unit, 0, 0, None)
        info: dict[str, str] = {}
        for object_id, raw in getattr(reply, "information", {}).items():
            key = _IDENTITY_OBJECTS.get(int(object_id), f"object_{int(object_id)}")
            data = b"".join(raw) if isinstance(raw, list) else raw
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            if text:
                info[key] = text
        return info

    async def _request(self, what: str, table: ModbusTable | None, unit: int, address: int,
                       count: int, values: list[int] | None) -> ModbusPDU:
        async with self._lock:
            self.stats.requests += 1
            try:
                client = await self._ensure_connected()
                started = time.perf_counter()
                self._in_flight = True
                try:
                    reply = await _call(client, table, unit, address, count, values)
                finally:
                    self._in_flight = False
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Python 3.11's wait_for (inside pymodbus) can swallow a cancel that
                    # lands in the same turn as the reply: honour it here.
                    raise asyncio.CancelledError
                latency = time.perf_counter() - started
            except DeviceUnreachable:
                self.stats.errors += 1
                raise
            except asyncio.CancelledError:
                self._garbled()  # its answer may still come: resynchronise a TCP stream
                raise
            except ConnectionException as exc:
                self.stats.errors += 1
                self._drop()
                raise DeviceUnreachable(self.name, f"{what}: connection lost") from exc
            except ModbusIOException as exc:
                self.stats.errors += 1
                if not client.connected:
                    raise DeviceUnreachable(self.name, f"{what}: connection lost") from exc
                self.stats.timeouts += 1
                if not self.serial:
                    self._drop()  # a late answer must not pass for the next request's
                raise DeviceTimeout(
                    self.name, f"{what}: no answer from unit {unit} in {self.timeout:g} s",
                ) from exc
            except ModbusException as exc:
                self.stats.errors += 1
                raise DeviceError(self.name, f"{what}: {exc}") from exc
            self.stats.answered += 1
            self.stats.last_latency = latency
            self.stats.latency_sum += latency
            if isinstance(reply, ExceptionResponse):
                self.stats.errors += 1
                code = int(reply.exception_code)
                message = f"{what}: {exception_text(code)}"
                if code in GATEWAY_CODES:
                    self.stats.timeouts += 1
                    raise GatewayNoResponse(self.name, f"{message} for unit {unit}", code)
                raise DeviceException(self.name, message, code=code)
            expected = _READ_FC[table] if table is not None and values is None else None
            if expected is not None and reply.function_code != expected:
                self.stats.errors += 1
                self._garbled()
                raise DeviceError(self.name, f"{what}: reply is for function "
                                             f"{reply.function_code}, not {expected}")
            return reply

    def _garbled(self) -> None:
        """The stream may hold an answer nobody waits for: drop a TCP connection."""
        if not self.serial:
            self._drop()


def _check(unit: int, address: int, count: int, limit: int) -> None:
    if not 0 <= unit <= 255:
        raise ValueError(f"unit id {unit} is outside 0..255")
    if not 1 <= count <= limit:
        raise ValueError(f"count {count} is outside 1..{limit}")
    if address < 0 or address + count > 0x10000:
        raise ValueError(f"addresses {address}..{address + count - 1} are outside 0..65535")


def _call(client: _Client, table: ModbusTable | None, unit: int, address: int, count: int,
          values: list[int] | None) -> Awaitable[ModbusPDU]:
    """The pymodbus call for one request (``table`` None: device identification)."""
    if table is None:
        return client.read_device_information(read_code=1, device_id=unit)
    if values is None:
        read = {ModbusTable.COIL: client.read_coils,
                ModbusTable.DISCRETE: client.read_discrete_inputs,
                ModbusTable.HOLDING: client.read_holding_registers,
                ModbusTable.INPUT: client.read_input_registers}[table]
        return read(address, count=count, device_id=unit)
    if table is ModbusTable.COIL:
        if len(values) == 1:
            return client.write_coil(address, bool(values[0]), device_id=unit)
        return client.write_coils(address, [bool(v) for v in values], device_id=unit)
    if len(values) == 1:
        return client.write_register(address, values[0], device_id=unit)
    return client.write_registers(address, values, device_id=unit)
