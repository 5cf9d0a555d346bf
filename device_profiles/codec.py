"""Point values: raw registers or BACnet values <-> engineering values, and back.

Pure functions, no I/O: the gateway decodes what it read and encodes what it writes, the
simulators encode what they serve. Register-level work (types, byte orders, strings) is
in :mod:`device_profiles.registers`; this module adds what a profile point means. It is
the codecs' one import: BACnet values are in :mod:`device_profiles.codec_bacnet`, the
decoded reading and enum lookups in :mod:`device_profiles.codec_common`, both
re-exported here.

- Modbus ``decode_modbus``: ``invalid`` sentinels (matched on the unsigned and the
  signed integer of the registers, and on the value of a float) give quality ``bad``;
  ``bit`` takes one bit of the integer; then by kind: ``bool``, ``enum`` (unknown values
  decode as ``unknown_<n>``, still good), ``number``/``counter`` (``raw * scale +
  offset``), ``bitfield`` (unsigned integer), ``text``. NaN and infinities are ``bad``.
- Scaling is computed in decimal on the shortest decimal form of each operand, so
  ``3 * 0.1`` is ``0.3``, and a float32 reads as its shortest decimal (123.456, not
  123.45600128173828). Unscaled integers stay ``int``.
- Coils and discrete inputs: the "registers" are one 0/1 bit, decoded as a ``bool``.
- Counters are unsigned modulo ``rollover`` (or 2**bits of the type), times ``scale``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Context, Decimal

from device_profiles.codec_bacnet import decode_bacnet, encode_bacnet
from device_profiles.codec_common import (
    Decoded,
    Enums,
    Value,
    bad,
    enum_decoded,
    enum_name,
    enum_number,
    is_number,
)
from device_profiles.registers import (
    CodecError,
    RawValue,
    decode_raw,
    encode_raw,
    integer_range,
    pack_record,
    set_bit,
    shortest_f32,
    to_signed,
    unpack_record,
    unsigned_of,
)
from device_profiles.schema import (
    BitEntry,
    ByteOrder,
    EventLogSpec,
    ModbusPoint,
    ModbusType,
    PointKind,
)

__all__ = [
    "CodecError",
    "Decoded",
    "bits_set",
    "counter_delta",
    "counter_modulus",
    "counter_went_backwards",
    "decode_bacnet",
    "decode_event_record",
    "decode_modbus",
    "decode_raw",
    "encode_bacnet",
    "encode_event_record",
    "encode_modbus",
    "encode_raw",
    "event_slot_address",
    "register_count",
    "set_bit",
]

_DECIMAL = Context(prec=60)


def _dec(number: int | float) -> Decimal:
    return Decimal(number) if isinstance(number, int) else Decimal(repr(number))


def _exact_sum(*terms: int | float) -> int | float:
    """Sum without binary-float noise: ints stay exact, floats by their shortest decimal."""
    if all(isinstance(t, int) for t in terms):
        return sum(int(t) for t in terms)
    total = Decimal(0)
    for term in terms:
        total = _DECIMAL.add(total, _dec(term))
    return float(total)


# --- enums and bits ------------------------------------------------------------------


def _as_integer(raw: RawValue) -> int | None:
    if isinstance(raw, bool | int):
        return int(raw)
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return None


def bits_set(value: int, bits: Sequence[BitEntry]) -> list[str]:
    """Names of the bits set in ``value``, by ascending bit number."""
    return [b.name for b in sorted(bits, key=lambda b: b.bit) if value >> b.bit & 1]


# --- Modbus ----------------------------------------------------------------------------


def register_count(point: ModbusPoint) -> int:
    """Registers (bits, on coil/discrete tables) one decode consumes: one record for event logs."""
    if point.event_log is not None:
        return point.event_log.record_size
    return point.width


def _modbus_sentinel(point: ModbusPoint, registers: Sequence[int], raw: RawValue,
                     byte_order: ByteOrder) -> bool:
    if isinstance(raw, str):
        return False
    unsigned = unsigned_of(registers, byte_order)
    if unsigned in point.invalid or to_signed(unsigned, 16 * len(registers)) in point.invalid:
        return True
    return isinstance(raw, float) and raw in point.invalid


def _engineering(point: ModbusPoint, raw: int | float) -> int | float:
    if isinstance(raw, float) and point.type is ModbusType.F32:
        raw = shortest_f32(raw)
    if point.scale == 1 and point.offset == 0:
        return int(raw) if isinstance(raw, bool) else raw
    return float(_DECIMAL.add(_DECIMAL.multiply(_dec(raw), _dec(point.scale)), _dec(point.offset)))


def _by_kind(point: ModbusPoint, raw: RawValue, enums: Enums) -> Decoded:
    who = f"point {point.id!r}"
    kind = point.kind
    if isinstance(raw, str) != (kind is PointKind.TEXT):
        raise CodecError(f"{who}: kind {kind} does not go with type {point.type}")
    if isinstance(raw, str):
        return Decoded(value=raw, quality="good", raw=raw)
    if isinstance(raw, float) and not math.isfinite(raw):
        return bad(raw, "not a finite number")
    if kind is PointKind.BOOL:
        return Decoded(value=bool(raw), quality="good", raw=raw)
    if kind in (PointKind.NUMBER, PointKind.COUNTER):
        return Decoded(value=_engineering(point, raw), quality="good", raw=raw)
    number = _as_integer(raw)
    if number is None:
        return bad(raw, "not an integer")
    if kind is PointKind.BITFIELD:
        return Decoded(value=number % (1 << 16 * point.width), quality="good", raw=raw)
    return enum_decoded(point, number, raw, enums)


def _decode_bit(point: ModbusPoint, bits: Sequence[int]) -> Decoded:
    """Coils and discrete inputs: ``bits`` holds the one 0/1 read."""
    if any(not isinstance(b, int) or b not in (0, 1) for b in bits):
        raise CodecError(f"point {point.id!r}: coils and discrete inputs read 0 or 1, got {bits}")
    if len(bits) != 1:
        raise CodecError(f"point {point.id!r}: a coil or discrete input is one bit")
    return Decoded(value=bool(bits[0]), quality="good", raw=int(bits[0]))


def decode_modbus(point: ModbusPoint, registers: Sequence[int], *, byte_order: ByteOrder,
                  enums: Enums) -> Decoded:
    """The registers (or bits) read for ``point`` -> its engineering value and quality.

    ``byte_order`` is the point's effective order (``profile.byte_order_of(point)``);
    ``enums`` is the profile's ``enums``. Raises CodecError when the block does not fit
    the point or the point cannot mean what its profile says.
    """
    who = f"point {point.id!r}"
    if point.event_log is not None:
        raise CodecError(f"{who}: event logs are decoded record by record (decode_event_record)")
    if len(registers) != point.width:
        raise CodecError(f"{who} takes {point.width} register(s), got {len(registers)}")
    if point.table.is_bit_table:
        return _decode_bit(point, registers)
    raw = decode_raw(registers, point.type, byte_order)
    if point.invalid and _modbus_sentinel(point, registers, raw, byte_order):
        return bad(raw, "invalid sentinel")
    if point.bit is None:
        return _by_kind(point, raw, enums)
    number = _as_integer(raw) if not isinstance(raw, str | float) else None
    if number is None or point.bit >= 16 * point.width:
        raise CodecError(f"{who}: bit {point.bit} needs an integer type at least that wide, "
                         f"not {point.type}")
    return Decoded(value=bool(number >> point.bit & 1), quality="good", raw=raw)


def _raw_number(point: ModbusPoint, value: object) -> int | float:
    who = f"point {point.id!r}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise CodecError(f"{who}: expected a number, got {value!r}")
    if point.scale == 0:
        raise CodecError(f"{who}: scale 0 cannot be reversed")
    plain = point.scale == 1 and point.offset == 0
    if point.type in (ModbusType.F32, ModbusType.F64):
        if plain or not math.isfinite(value):
            return (float(value) - point.offset) / point.scale
        return float(_DECIMAL.divide(_DECIMAL.subtract(_dec(value), _dec(point.offset)),
                                     _dec(point.scale)))
    if not math.isfinite(value):
        raise CodecError(f"{who}: {value!r} cannot be written as {point.type}")
    if isinstance(value, int) and plain:
        number = value
    else:
        exact = _DECIMAL.divide(_DECIMAL.subtract(_dec(value), _dec(point.offset)),
                                _dec(point.scale))
        number = int(exact.to_integral_value(rounding=ROUND_HALF_UP, context=_DECIMAL))
    low, high = integer_range(point.type)
    if not low <= number <= high:
        raise CodecError(f"{who}: {value!r} is raw {number}, out of range for {point.type} "
                         f"({low}..{high})")
    return number


def _raw_for(point: ModbusPoint, value: object, enums: Enums) -> RawValue:
    """Engineering value -> the raw number or string ``encode_raw`` takes."""
    who = f"point {point.id!r}"
    kind = point.kind
    if (point.type is ModbusType.STRING) != (kind is PointKind.TEXT):
        raise CodecError(f"{who}: kind {kind} does not go with type {point.type}")
    if kind is PointKind.TEXT:
        if not isinstance(value, str):
            raise CodecError(f"{who}: expected a str, got {value!r}")
        return value
    if kind in (PointKind.NUMBER, PointKind.COUNTER):
        return _raw_number(point, value)
    if kind is PointKind.BOOL:
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise CodecError(f"{who}: expected True/False, got {value!r}")
        number = int(value)
    elif kind is PointKind.ENUM:
        assert point.enum is not None
        number = enum_number(point.enum, value, enums, who)
    else:  # bitfield: the unsigned integer, stored in the type's two's complement
        bits = 16 * point.width
        if not is_number(value) or not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise CodecError(f"{who}: a bitfield is an int 0..{(1 << bits) - 1}, got {value!r}")
        number = to_signed(value, bits) if point.type.value.startswith("s") else value
    if point.type is ModbusType.BOOL:
        return bool(number) if number in (0, 1) else number
    return float(number) if point.type in (ModbusType.F32, ModbusType.F64) else number


def encode_modbus(point: ModbusPoint, value: object, *, byte_order: ByteOrder,
                  enums: Enums) -> list[int]:
    """An engineering value of ``point`` -> the registers (or 0/1 bits) that hold it."""
    who = f"point {point.id!r}"
    if point.event_log is not None:
        raise CodecError(f"{who}: event logs are encoded record by record (encode_event_record)")
    if point.bit is not None:
        raise CodecError(f"{who} is bit {point.bit} of a register and encode_modbus cannot know "
                         f"the other bits: read the register and use set_bit(registers, "
                         f"{point.bit}, on)")
    if point.table.is_bit_table:
        if not isinstance(value, bool | int) or value not in (0, 1) or point.width != 1:
            raise CodecError(f"{who}: a coil is one bit, True or False; got {value!r}")
        return [int(value)]
    raw = _raw_for(point, value, enums)
    try:
        return encode_raw(raw, point.type, byte_order, count=point.width)
    except CodecError as exc:
        raise CodecError(f"{who}: {value!r}: {exc}") from exc


# --- counters --------------------------------------------------------------------------


def counter_modulus(point: ModbusPoint) -> int | float:
    """Where the counter wraps, in engineering units: ``rollover`` (else 2**bits) * ``scale``."""
    if point.rollover is not None:
        raw: int = point.rollover
    elif point.type.is_integer:
        raw = 1 << 16 * point.width
    else:
        raise CodecError(f"point {point.id!r}: a {point.type} counter needs 'rollover'")
    return raw if point.scale == 1 else float(_DECIMAL.multiply(Decimal(raw), _dec(point.scale)))


def counter_delta(previous: int | float, current: int | float, *,
                  modulus: int | float) -> int | float:
    """The increase from ``previous`` to ``current``, assuming at most one wrap at ``modulus``."""
    if not modulus > 0:
        raise CodecError(f"counter modulus must be positive, got {modulus!r}")
    if current >= previous:
        return _exact_sum(current, -previous)
    return _exact_sum(current, modulus, -previous)


def counter_went_backwards(previous: int | float, current: int | float, modulus: int | float,
                           max_plausible_delta: int | float) -> bool:
    """True when a decrease is no wrap: read as a wrap it would be more than plausible."""
    if current >= previous:
        return False
    return counter_delta(previous, current, modulus=modulus) > max_plausible_delta


# --- event logs ------------------------------------------------------------------------


def decode_event_record(spec: EventLogSpec, registers: Sequence[int], *, byte_order: ByteOrder,
                        enums: Enums) -> dict[str, Value]:
    """One record (``record_size`` registers) -> ``{field id: value}``; enums give names."""
    record = unpack_record(spec, registers, byte_order)
    for field in spec.fields:
        raw = record[field.id]
        if field.enum is not None:
            number = _as_integer(raw) if not isinstance(raw, str) else None
            if number is None:
                raise CodecError(f"event field {field.id!r}: enum value {raw!r} is not an integer")
            name = enum_name(field.enum, number, enums, f"event field {field.id!r}")
            record[field.id] = name if name is not None else f"unknown_{number}"
        elif isinstance(raw, float) and field.type is ModbusType.F32:
            record[field.id] = shortest_f32(raw)
    return record


def encode_event_record(spec: EventLogSpec, record: Mapping[str, object], *,
                        byte_order: ByteOrder, enums: Enums) -> list[int]:
    """``{field id: value}`` (every field, no others) -> ``record_size`` registers."""
    raw: dict[str, object] = dict(record)
    for field in spec.fields:
        if field.enum is not None and field.id in raw:
            raw[field.id] = enum_number(field.enum, raw[field.id], enums,
                                         f"event field {field.id!r}")
    return pack_record(spec, raw, byte_order)


def event_slot_address(point: ModbusPoint, seq: int) -> int:
    """Address of record ``seq`` in the ring: ``address + (seq % capacity) * record_size``."""
    if point.event_log is None:
        raise CodecError(f"point {point.id!r} is not an event log")
    if seq < 0:
        raise CodecError(f"event sequence numbers are not negative, got {seq}")
    return point.address + (seq % point.event_log.capacity) * point.event_log.record_size
