"""Checks that look across a profile: addresses, references, spans, alarm rules.

Field-level checks happen in :mod:`device_profiles.schema`; these run on a profile
that parsed, and report every problem at once as located
:class:`~towerwatch.sourced_yaml.SourceIssue` objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from device_profiles.schema import (
    AlarmRule,
    BacnetProfile,
    DeviceProfile,
    ModbusPoint,
    ModbusProfile,
    ModbusType,
    PointBase,
    PointKind,
)
from towerwatch.sourced_yaml import SourceIssue, format_path, locate

Loc = tuple[int | str, ...]

_INT_RANGES: dict[ModbusType, tuple[int, int]] = {
    ModbusType.U16: (0, 2**16 - 1), ModbusType.S16: (-(2**15), 2**15 - 1),
    ModbusType.U32: (0, 2**32 - 1), ModbusType.S32: (-(2**31), 2**31 - 1),
    ModbusType.U64: (0, 2**64 - 1), ModbusType.S64: (-(2**63), 2**63 - 1),
    ModbusType.BOOL: (0, 1),
}
_NUMERIC_KINDS = (PointKind.NUMBER, PointKind.COUNTER)


def type_range(kind: ModbusType) -> tuple[int, int] | None:
    """Smallest and largest raw integer of a type; None for floats and strings."""
    return _INT_RANGES.get(kind)


def semantic_issues(profile: DeviceProfile, raw: Any) -> list[SourceIssue]:
    """Every cross-object problem of a parsed profile, located in ``raw``."""
    found: list[tuple[Loc, str]] = []
    found += _duplicates(profile)
    found += _references(profile)
    found += _alarms(profile)
    if isinstance(profile, ModbusProfile):
        found += _modbus_points(profile)
        found += _modbus_overlaps(profile)
    else:
        found += _bacnet_points(profile)
    return [SourceIssue(locate(raw, loc), format_path(loc), msg) for loc, msg in found]


def _duplicates(profile: DeviceProfile) -> Iterator[tuple[Loc, str]]:
    sections: list[tuple[str, list[str]]] = [
        ("points", [p.id for p in profile.points]), ("alarms", [a.id for a in profile.alarms])]
    for section, ids in sections:
        seen: set[str] = set()
        for i, item_id in enumerate(ids):
            if item_id in seen:
                yield (section, i, "id"), f"duplicate id {item_id!r} in {section}"
            seen.add(item_id)
    tables: list[tuple[str, str, list[tuple[int, str]]]] = [
        *(("enums", name, [(e.value, e.name) for e in entries])
          for name, entries in profile.enums.items()),
        *(("bits", name, [(b.bit, b.name) for b in entries])
          for name, entries in profile.bits.items()),
    ]
    for section, name, pairs in tables:
        names: set[str] = set()
        numbers: set[int] = set()
        for i, (number, entry_name) in enumerate(pairs):
            if number in numbers:
                yield (section, name, i), f"{section[:-1]} {name!r} lists {number} twice"
            if entry_name in names:
                yield (section, name, i), f"{section[:-1]} {name!r} names {entry_name!r} twice"
            numbers.add(number)
            names.add(entry_name)


def _references(profile: DeviceProfile) -> Iterator[tuple[Loc, str]]:
    for i, point in enumerate(profile.points):
        if point.enum is not None and point.enum not in profile.enums:
            yield ("points", i, "enum"), f"unknown enum {point.enum!r}"
        if point.bits is not None and point.bits not in profile.bits:
            yield ("points", i, "bits"), f"unknown bits {point.bits!r}"
        if point.poll not in profile.poll_groups:
            known = ", ".join(sorted(profile.poll_groups))
            yield ("points", i, "poll"), f"unknown poll group {point.poll!r} (known: {known})"
        if point.writable and profile.read_only:
            yield (("points", i, "writable"),
                   f"{profile.equipment} points are read-only; remove 'writable'")


def _alarms(profile: DeviceProfile) -> Iterator[tuple[Loc, str]]:
    points = {p.id: p for p in profile.points}
    for i, alarm in enumerate(profile.alarms):
        point = points.get(alarm.when.point)
        if point is None:
            yield ("alarms", i, "when", "point"), f"alarm on unknown point {alarm.when.point!r}"
            continue
        problem = _condition_problem(alarm, point, profile)
        if problem:
            yield ("alarms", i, "when", alarm.when.operator), problem


def _condition_problem(alarm: AlarmRule, point: PointBase, profile: DeviceProfile) -> str | None:
    op, operand = alarm.when.operator, alarm.when.operand
    if op == "stale":
        return None
    if op == "bit":
        if point.kind is not PointKind.BITFIELD:
            return f"'bit' needs a bitfield point; {point.id!r} is {point.kind}"
        bit_names = {b.name for b in profile.bits.get(point.bits or "", [])}
        if isinstance(operand, str) and operand not in bit_names:
            return f"point {point.id!r} has no bit named {operand!r}"
        return None
    if op in ("gt", "ge", "lt", "le") and point.kind not in _NUMERIC_KINDS:
        return f"'{op}' compares numbers; point {point.id!r} is {point.kind}"
    values = operand if isinstance(operand, list) else [operand]
    if point.kind is PointKind.ENUM:
        names = {e.name for e in profile.enums.get(point.enum or "", [])}
        bad = [v for v in values if v not in names]
        if bad:
            return f"{bad[0]!r} is not a state of enum {point.enum!r}"
    if point.kind is PointKind.BOOL and any(not isinstance(v, bool) for v in values):
        return f"point {point.id!r} is a bool; compare with true or false"
    return None


def _modbus_points(profile: ModbusProfile) -> Iterator[tuple[Loc, str]]:
    limits = profile.limits
    for i, point in enumerate(profile.points):
        at: Loc = ("points", i)
        yield from ((at + loc, msg) for loc, msg in _modbus_point(point, profile))
        if point.table.is_bit_table:
            if point.width > limits.max_bits:
                yield (*at, "count"), f"spans {point.width} bits, over max_bits {limits.max_bits}"
        else:
            span = point.event_log.record_size if point.event_log else point.width
            if span > min(125, limits.max_registers):
                yield ((*at, "count"),
                       f"spans {span} registers; one read takes at most "
                       f"{min(125, limits.max_registers)}")
        if point.address + point.width > 65536:
            yield (*at, "address"), "runs past the last address 65535"
        for forbidden in limits.forbidden:
            if forbidden.table == point.table and _overlap(
                (point.address, point.address + point.width - 1), (forbidden.start, forbidden.end)
            ):
                yield ((*at, "address"),
                       f"lies in the forbidden range {forbidden.start}-{forbidden.end}")


def _modbus_point(point: ModbusPoint, profile: ModbusProfile) -> Iterator[tuple[Loc, str]]:
    kind, width = point.type, point.type.width
    if point.table.is_bit_table:
        if kind is not ModbusType.BOOL or point.kind is not PointKind.BOOL:
            yield ("type",), f"{point.table} points hold single bits: use type bool, kind bool"
        if point.bit is not None:
            yield ("bit",), f"'bit' applies to registers, not to {point.table} points"
        return
    if kind is ModbusType.STRING:
        if point.count is None:
            yield ("count",), "a string needs 'count' (registers it takes)"
        if point.kind is not PointKind.TEXT:
            yield ("kind",), "a string point has kind text"
    elif point.count is not None and point.count != width and point.kind is not PointKind.EVENT_LOG:
        yield ("count",), f"type {kind} takes {width} register(s), but count is {point.count}"
    if point.kind is PointKind.TEXT and kind is not ModbusType.STRING:
        yield ("type",), "kind text needs type string"
    if point.bit is not None:
        if not kind.is_integer:
            yield ("bit",), f"'bit' needs an integer type, not {kind}"
        elif point.bit >= 16 * (width or 1):
            top = 16 * (width or 1) - 1
            yield ("bit",), f"bit {point.bit} is out of range for {kind} (0-{top})"
        if point.kind is not PointKind.BOOL:
            yield ("kind",), "a point with 'bit' has kind bool"
    needs_int = (PointKind.ENUM, PointKind.BITFIELD, PointKind.COUNTER)
    if point.kind in needs_int and not kind.is_integer:
        yield ("type",), f"kind {point.kind} needs an integer type, not {kind}"
    if point.scale == 0:
        yield ("scale",), "scale must not be 0"
    if point.writable and point.table in ("input", "discrete"):
        yield ("writable",), f"{point.table} points cannot be written"
    yield from _fits_type(point, profile)


def _fits_type(point: ModbusPoint, profile: ModbusProfile) -> Iterator[tuple[Loc, str]]:
    bounds = type_range(point.type)
    if bounds is None:
        return
    low, high = bounds
    for i, sentinel in enumerate(point.invalid):
        if not (low <= sentinel <= high or 0 <= sentinel < 2 ** (16 * (point.type.width or 1))):
            yield ("invalid", i), f"sentinel {sentinel} does not fit {point.type}"
    if point.enum in profile.enums:
        for entry in profile.enums[point.enum or ""]:
            if not low <= entry.value <= high:
                yield ("enum",), (f"enum {point.enum!r} value {entry.value} ({entry.name}) "
                                  f"does not fit {point.type}")
    if point.bits in profile.bits:
        limit = 16 * (point.type.width or 1)
        for bit_entry in profile.bits[point.bits or ""]:
            if bit_entry.bit >= limit:
                yield ("bits",), (f"bits {point.bits!r} uses bit {bit_entry.bit} "
                                  f"({bit_entry.name}), out of range for {point.type} "
                                  f"(0-{limit - 1})")
    if point.event_log is not None:
        yield from _event_log(point)


def _event_log(point: ModbusPoint) -> Iterator[tuple[Loc, str]]:
    spec = point.event_log
    assert spec is not None
    used: dict[int, str] = {}
    for i, fld in enumerate(spec.fields):
        width = fld.count if fld.type is ModbusType.STRING else fld.type.width
        if width is None:
            yield ("event_log", "fields", i, "count"), "a string field needs 'count'"
            continue
        if fld.offset + width > spec.record_size:
            yield (("event_log", "fields", i, "offset"),
                   f"field {fld.id!r} ends past the record ({spec.record_size} registers)")
        for reg in range(fld.offset, fld.offset + width):
            if reg in used:
                yield (("event_log", "fields", i, "offset"),
                       f"field {fld.id!r} overlaps field {used[reg]!r}")
                break
            used[reg] = fld.id


def _modbus_overlaps(profile: ModbusProfile) -> Iterator[tuple[Loc, str]]:
    """Each point that overlaps an earlier-defined point, reported once, at the later one."""
    spans: list[tuple[int, int, int, ModbusPoint]] = []
    for i, point in enumerate(profile.points):
        spans.append((point.address, point.address + point.width - 1, i, point))
        if point.event_log is not None:
            head = point.event_log.head
            spans.append((head, head + 1, i, point))
    reported: set[int] = set()
    for a in spans:
        for b in spans:
            pa, pb = a[3], b[3]
            if a[2] >= b[2] or b[2] in reported or pa.table != pb.table:
                continue
            if not _overlap(a[:2], b[:2]) or _shared_register_bits(pa, pb):
                continue
            reported.add(b[2])
            yield (("points", b[2], "address"),
                   f"{pb.table} {b[0]}-{b[1]} of {pb.id!r} overlaps {pa.id!r} ({a[0]}-{a[1]})")


def _shared_register_bits(a: ModbusPoint, b: ModbusPoint) -> bool:
    """Two single-bit views of the same register(s) may share it, on different bits."""
    return ((a.address, a.width) == (b.address, b.width) and a.bit is not None
            and b.bit is not None and a.bit != b.bit)


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


_BACNET_KINDS = {
    "binary": (PointKind.BOOL,),
    "multi-state": (PointKind.ENUM,),
    "analog": (PointKind.NUMBER,),
    "accumulator": (PointKind.COUNTER,),
}


def _bacnet_points(profile: BacnetProfile) -> Iterator[tuple[Loc, str]]:
    seen: dict[tuple[str, str, int | None], str] = {}
    for i, point in enumerate(profile.points):
        key = (point.object, point.prop, point.index)
        if key in seen:
            yield (("points", i, "object"),
                   f"{point.object} {point.prop} is also read by {seen[key]!r}")
        seen[key] = point.id
        family = next((f for f in _BACNET_KINDS if point.object_type.startswith(f)), None)
        if family and point.prop == "present-value" and point.kind not in _BACNET_KINDS[family]:
            allowed = " or ".join(str(k) for k in _BACNET_KINDS[family])
            yield ("points", i, "kind"), f"{point.object_type} present-value is kind {allowed}"
        states = profile.enums.get(point.enum or "", []) if point.kind is PointKind.ENUM else []
        if any(e.value < 1 for e in states):
            yield ("points", i, "enum"), "BACnet multi-state values start at 1"
        if point.cov_increment is not None and not point.cov:
            yield ("points", i, "cov_increment"), "cov_increment needs cov: true"
        if point.kind is PointKind.EVENT_LOG:
            yield ("points", i, "kind"), "event_log points are Modbus only"
