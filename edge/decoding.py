"""Point decoders: registers or BACnet property values -> (value, reason), fast.

A decoder maps a point's "key" (its one register, or a tuple of its registers) to
``(value, reason)``: the same value and reason as
:func:`device_profiles.codec.decode_modbus` (and ``decode_bacnet``), which remains the
fallback for every case the compiled decoders do not cover. :func:`compile_modbus`
builds one per point at construction; integer and float points get a closure that
reads, checks sentinels and scales without going through the codec. Pure code, no I/O;
:class:`edge.points.PointTable` is the only user on the hot path.

Also here: the exact decimal arithmetic the point table shares with the decoders
(:func:`exact_add` for counters, :func:`moved_beyond` for deadbands).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from decimal import Context, Decimal
from fractions import Fraction
from typing import Any, Final

from device_profiles.codec import decode_bacnet, decode_modbus
from device_profiles.registers import shortest_f32
from device_profiles.schema import (
    BacnetPoint,
    BacnetProfile,
    ByteOrder,
    EnumEntry,
    ModbusPoint,
    ModbusType,
    PointKind,
)

__all__ = ["Decoder", "Result", "Scalar", "compile_bacnet", "compile_modbus", "exact_add",
           "moved_beyond"]

Scalar = bool | int | float | str

Result = tuple[Scalar | None, str | None]
Decoder = Callable[[Any], Result]
_TRUE: Final[Result] = (True, None)
_FALSE: Final[Result] = (False, None)
_SENTINEL: Final[Result] = (None, "invalid sentinel")
_NOT_FINITE: Final[Result] = (None, "not a finite number")
_DECIMAL = Context(prec=80)
_CODEC_DECIMAL = Context(prec=60)  # the codec's: scaled floats must round exactly as it does
_F32_CACHE: dict[int, float] = {}
_F32_CACHE_SIZE = 65536


def _dec(number: int | float) -> Decimal:
    return Decimal(number) if isinstance(number, int) else Decimal(repr(number))


def exact_add(a: int | float, b: int | float) -> int | float:
    """``a + b`` on the shortest decimals of floats (no binary noise); ints stay exact."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return float(_DECIMAL.add(_dec(a), _dec(b)))


_DEADBANDS: dict[float, Decimal] = {}


def moved_beyond(old: object, new: object, deadband: float) -> bool:
    """Whether ``new`` is more than ``deadband`` away from ``old``, compared in decimal."""
    if type(old) is int and type(new) is int:  # the common case: exact as it is
        exact = _DEADBANDS.get(deadband)
        if exact is None:
            if len(_DEADBANDS) >= 1024:
                _DEADBANDS.clear()
            exact = _DEADBANDS[deadband] = _dec(deadband)
        return abs(new - old) > exact
    if (isinstance(old, bool) or isinstance(new, bool) or not isinstance(old, int | float)
            or not isinstance(new, int | float)):
        return old != new
    distance = abs(new - old)
    margin = 1e-9 * deadband + 1e-15 * (abs(old) + abs(new))
    if distance > deadband + margin:
        return True
    if distance < deadband - margin:
        return False
    return abs(_DECIMAL.subtract(_dec(new), _dec(old))) > _dec(deadband)


def _unsigned_reader(width: int, order: ByteOrder) -> Callable[[Any], int | None]:
    """Key -> the registers as one unsigned integer in value order; None if a word is off."""
    reverse = order in (ByteOrder.CDAB, ByteOrder.DCBA)
    swap = order in (ByteOrder.BADC, ByteOrder.DCBA)

    def one(word: Any) -> int | None:
        if word.__class__ is not int or not 0 <= word <= 0xFFFF:
            return None
        number: int = word
        return (number >> 8) | ((number & 0xFF) << 8) if swap else number

    def many(words: Any) -> int | None:
        total = 0
        for word in reversed(words) if reverse else words:
            if word.__class__ is not int or not 0 <= word <= 0xFFFF:
                return None
            total = total << 16 | ((word >> 8) | ((word & 0xFF) << 8) if swap else word)
        return total
    return one if width == 1 else many


def _sentinels(invalid: Sequence[int], bits: int) -> frozenset[int]:
    """Unsigned values whose unsigned or two's-complement reading is listed in ``invalid``."""
    full = 1 << bits
    found = {s for s in invalid if 0 <= s < full}
    found |= {s + full for s in invalid if -(full >> 1) <= s < 0}
    return frozenset(found)


def _scaler(point: ModbusPoint, bits: int) -> Callable[[int], Result] | None:
    """raw * scale + offset, as the codec computes it in decimal, by exact integer division."""
    scale, offset = point.scale, point.offset
    if scale == 1 and offset == 0:
        return lambda raw: (int(raw), None)
    if not (math.isfinite(scale) and math.isfinite(offset)):
        return None
    s, o = Fraction(_dec(scale)), Fraction(_dec(offset))
    exponent = min(0, _dec(scale).as_tuple().exponent, _dec(offset).as_tuple().exponent)
    assert isinstance(exponent, int)
    if ((1 << bits) * abs(s) + abs(o)) * 10 ** -exponent >= 10 ** 59:
        return None  # the codec's 60-digit arithmetic could round: leave it to the codec
    den = math.lcm(s.denominator, o.denominator)
    a, b = s.numerator * (den // s.denominator), o.numerator * (den // o.denominator)
    return lambda raw: ((raw * a + b) / den, None)  # int / int is correctly rounded


def _integer_tail(point: ModbusPoint, bits: int,
                  enums: Mapping[str, Sequence[EnumEntry]]) -> Callable[[int], Result] | None:
    """Raw integer -> result by bit and kind; None where only the codec knows (or raises)."""
    if point.bit is not None:
        if point.bit >= bits:
            return None
        bit = point.bit
        return lambda raw: _TRUE if raw >> bit & 1 else _FALSE
    kind = point.kind
    if kind is PointKind.BOOL:
        return lambda raw: _TRUE if raw else _FALSE
    if kind in (PointKind.NUMBER, PointKind.COUNTER):
        return _scaler(point, bits)
    if kind is PointKind.BITFIELD:
        full = 1 << bits
        return lambda raw: (raw % full, None)
    if kind is PointKind.ENUM and point.enum is not None and point.enum in enums:
        names: dict[int, Result] = {}
        for entry in enums[point.enum]:
            names.setdefault(entry.value, (entry.name, None))

        def enum(raw: int) -> Result:
            return names.get(raw) or (f"unknown_{raw}", "unknown enum value")
        return enum
    return None


def compile_modbus(point: ModbusPoint, order: ByteOrder,
                   enums: Mapping[str, Sequence[EnumEntry]]) -> Decoder:
    """A decoder for ``point``: the results of decode_modbus, faster where it matters."""
    width = point.width

    def codec(key: Any) -> Result:
        registers = list(key) if width > 1 else [key]
        decoded = decode_modbus(point, registers, byte_order=order, enums=enums)
        return decoded.value, decoded.reason

    if point.table.is_bit_table:
        def bit(key: Any) -> Result:
            if key.__class__ is bool or (key.__class__ is int and (key == 0 or key == 1)):
                return _TRUE if key else _FALSE
            return codec(key)
        return bit if width == 1 else codec
    bits = 16 * width
    unsigned = _unsigned_reader(width, order)
    bad = _sentinels(point.invalid, bits)
    if point.type in (ModbusType.F32, ModbusType.F64):
        return _float_decoder(point, width, unsigned, bad, codec)
    tail = _integer_tail(point, bits, enums) if point.type is not ModbusType.STRING else None
    if tail is None or point.kind is PointKind.TEXT:
        return codec
    full = 1 << bits
    sign = full >> 1 if point.type in (ModbusType.S16, ModbusType.S32, ModbusType.S64) else 0
    boolean = point.type is ModbusType.BOOL

    if width == 1 and not boolean and order in (ByteOrder.ABCD, ByteOrder.CDAB):
        def word(key: Any) -> Result:  # the common case, without the reader's call
            if key.__class__ is not int or not 0 <= key <= 0xFFFF:
                return codec(key)
            if key in bad:
                return _SENTINEL
            return tail(key - full if key & sign else key)
        return word

    def decode(key: Any) -> Result:
        number = unsigned(key)
        if number is None:
            return codec(key)
        if number in bad:
            return _SENTINEL
        if boolean:
            return tail(1 if number else 0)  # the codec's integer of a bool
        return tail(number - full if number & sign else number)
    return decode


def _float_decoder(point: ModbusPoint, width: int, unsigned: Callable[[Any], int | None],
                   bad: frozenset[int], codec: Decoder) -> Decoder:
    if point.kind not in (PointKind.NUMBER, PointKind.COUNTER) or point.bit is not None:
        return codec
    unpack = struct.Struct(">f" if point.type is ModbusType.F32 else ">d").unpack
    size, f32 = 2 * width, point.type is ModbusType.F32
    bad_floats = frozenset(point.invalid)
    scaled = not (point.scale == 1 and point.offset == 0)
    scale, offset = _dec(point.scale), _dec(point.offset)

    def decode(key: Any) -> Result:
        number = unsigned(key)
        if number is None:
            return codec(key)
        if number in bad:
            return _SENTINEL
        raw: float = unpack(number.to_bytes(size, "big"))[0]
        if raw in bad_floats:
            return _SENTINEL
        if raw - raw != 0.0:  # NaN or an infinity
            return _NOT_FINITE
        if f32:
            shortest = _F32_CACHE.get(number)
            if shortest is None:
                if len(_F32_CACHE) >= _F32_CACHE_SIZE:
                    _F32_CACHE.clear()
                shortest = _F32_CACHE[number] = shortest_f32(raw)
            raw = shortest
        if scaled:
            exact = _CODEC_DECIMAL.add(_CODEC_DECIMAL.multiply(_dec(raw), scale), offset)
            return float(exact), None
        return raw, None
    return decode


def compile_bacnet(point: BacnetPoint, profile: BacnetProfile) -> Decoder:
    """A decoder for a BACnet ``point``: the results of decode_bacnet."""
    enums = profile.enums

    def decode(raw: Any) -> Result:
        decoded = decode_bacnet(point, raw, enums=enums)
        return decoded.value, decoded.reason
    return decode
