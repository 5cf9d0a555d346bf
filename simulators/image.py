"""The register image of a simulated Modbus device, generated from its profile.

A model speaks in engineering values by point id; the image turns them into the
registers and bits the profile says a real device would hold (through the same
codec the gateway decodes with), and turns client writes back into point values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from device_profiles.codec import (
    CodecError,
    decode_modbus,
    encode_event_record,
    encode_modbus,
    encode_raw,
    event_slot_address,
    set_bit,
)
from device_profiles.schema import ByteOrder, ModbusPoint, ModbusProfile, ModbusTable, ModbusType
from simulators.models.base import EventRecord, Value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddressRange:
    """Addresses ``start``..``end`` (inclusive) of one table."""

    table: ModbusTable
    start: int
    end: int

    def touches(self, table: ModbusTable, start: int, count: int) -> bool:
        return table is self.table and start <= self.end and self.start <= start + count - 1


class ModbusImage:
    """Registers (holding/input) and bits (coil/discrete) of one device, kept current."""

    def __init__(self, profile: ModbusProfile, *, byte_order: ByteOrder | None = None) -> None:
        self.profile = profile
        self._byte_order = byte_order
        sizes: dict[ModbusTable, int] = {}
        for point in profile.points:
            end = point.address + point.width
            if point.event_log is not None:
                end = max(end, point.event_log.head + 2)
            sizes[point.table] = max(sizes.get(point.table, 0), end)
        for forbidden in profile.limits.forbidden:
            sizes[forbidden.table] = max(sizes.get(forbidden.table, 0), forbidden.end + 1)
        self.tables: dict[ModbusTable, list[int]] = {t: [0] * n for t, n in sizes.items()}
        self.forbidden = [AddressRange(f.table, f.start, f.end) for f in profile.limits.forbidden]
        self._last: dict[str, Value] = {}
        self._last_seq: dict[str, int] = {}
        self._failed: set[str] = set()

    def byte_order(self, point: ModbusPoint) -> ByteOrder:
        return point.byte_order or self._byte_order or self.profile.byte_order

    def update(self, values: Mapping[str, Value], events: Sequence[EventRecord] = ()) -> None:
        """Write changed values (and new event records) into the image."""
        for point in self.profile.points:
            if point.event_log is not None:
                self._write_events(point, events)
                continue
            value = values.get(point.id)
            if value is None or self._last.get(point.id) == value:
                continue
            try:
                self._write_point(point, value)
            except CodecError as exc:
                if point.id not in self._failed:
                    log.warning("%s: cannot serve %s=%r: %s", self.profile.id, point.id, value, exc)
                    self._failed.add(point.id)
                continue
            self._last[point.id] = value
            self._failed.discard(point.id)

    def _write_point(self, point: ModbusPoint, value: Value) -> None:
        table = self.tables[point.table]
        if point.table.is_bit_table:
            table[point.address] = 1 if value else 0
            return
        order = self.byte_order(point)
        if point.bit is not None:
            current = table[point.address:point.address + point.width]
            registers = set_bit(current, point.bit, bool(value))
        else:
            registers = encode_modbus(point, value, byte_order=order, enums=self.profile.enums)
        table[point.address:point.address + len(registers)] = registers

    def _write_events(self, point: ModbusPoint, events: Sequence[EventRecord]) -> None:
        spec = point.event_log
        assert spec is not None
        last = self._last_seq.get(point.id, 0)
        fresh = [e for e in events[-spec.capacity:] if int(e["seq"]) > last]
        if not fresh:
            return
        table = self.tables[point.table]
        order = self.byte_order(point)
        for record in fresh:
            slot = event_slot_address(point, int(record["seq"]))
            registers = encode_event_record(spec, record, byte_order=order,
                                            enums=self.profile.enums)
            table[slot:slot + len(registers)] = registers
        newest = int(fresh[-1]["seq"])
        table[spec.head:spec.head + 2] = encode_raw(newest, ModbusType.U32, order)
        self._last_seq[point.id] = newest

    def forbidden_at(self, table: ModbusTable, start: int, count: int) -> bool:
        return any(r.touches(table, start, count) for r in self.forbidden)

    def write(self, table: ModbusTable, start: int, values: Sequence[int]) -> dict[str, Value]:
        """Apply a client write; return the point values it sets.

        Raises ``PermissionError`` when the write touches a point that is not writable
        or no point at all (the server answers illegal-address).
        """
        touched = [p for p in self.profile.points
                   if p.table is table and p.address < start + len(values)
                   and start < p.address + p.width]
        if not touched:
            raise PermissionError(f"no point at {table} {start}")
        refused = [p.id for p in touched if not p.writable]
        if refused:
            raise PermissionError(f"points {', '.join(refused)} are read-only")
        image = self.tables[table]
        staged = list(image)
        staged[start:start + len(values)] = [int(v) for v in values]
        result: dict[str, Value] = {}
        for point in touched:
            registers = staged[point.address:point.address + point.width]
            decoded = decode_modbus(point, registers, byte_order=self.byte_order(point),
                                    enums=self.profile.enums)
            if decoded.value is None:
                raise ValueError(f"{point.id}: {decoded.reason}")
            result[point.id] = decoded.value
        image[:] = staged
        self._last.update(result)
        return result
