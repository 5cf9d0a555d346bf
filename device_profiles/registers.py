"""Raw Modbus registers <-> raw numbers and strings, per type and byte order.

Pure functions, no I/O. Point-level meaning (scale, enums, sentinels, quality) lives in
:mod:`device_profiles.codec`; this module only knows 16-bit registers and bytes.

Byte orders, with ``A`` the most significant byte of the value (``ABCDEFGH`` for the
64-bit types) and registers listed in wire order (lowest address first):

=======  ======================  ==============================  ==========================
order    32-bit value            64-bit value                    rule
=======  ======================  ==============================  ==========================
ABCD     ``AB CD``               ``AB CD EF GH``                 big-endian (Modbus standard)
CDAB     ``CD AB``               ``GH EF CD AB``                 register order reversed
BADC     ``BA DC``               ``BA DC FE HG``                 bytes swapped in each register
DCBA     ``DC BA``               ``HG FE DC BA``                 both: fully little-endian
=======  ======================  ==============================  ==========================

One-register values (``u16``, ``s16``, ``bool``) follow the same rules, so ``BADC`` and
``DCBA`` swap their two bytes while ``CDAB`` leaves them alone. A point that needs
otherwise overrides the profile's byte order with its own ``byte_order``.

Event-log records are fixed blocks of ``record_size`` registers; each field sits at its
``offset`` and is read and written like a value of its type; registers no field covers
are 0.

Strings are UTF-8 (ASCII is a subset), two bytes per register, in address order: the
first character is in the high byte of the first register for ``ABCD`` and ``CDAB``,
in the low byte for ``BADC`` and ``DCBA``. Register order is never reversed for strings.
Decoding stops at the first NUL and strips trailing spaces; bytes that are not UTF-8
become U+FFFD. Encoding pads with NUL and refuses a string that does not fit.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from device_profiles.schema import ByteOrder, EventField, EventLogSpec, ModbusType

__all__ = [
    "CodecError",
    "decode_raw",
    "encode_raw",
    "integer_range",
    "pack_record",
    "set_bit",
    "shortest_f32",
    "to_signed",
    "unpack_record",
    "unsigned_of",
]

RawValue = bool | int | float | str
"""What one typed value in registers decodes to (``bool`` only for the ``bool`` type)."""


class CodecError(ValueError):
    """A value or register block cannot be decoded or encoded as the profile says."""


_FORMAT: dict[ModbusType, str] = {
    ModbusType.U16: ">H",
    ModbusType.S16: ">h",
    ModbusType.BOOL: ">H",
    ModbusType.U32: ">I",
    ModbusType.S32: ">i",
    ModbusType.F32: ">f",
    ModbusType.U64: ">Q",
    ModbusType.S64: ">q",
    ModbusType.F64: ">d",
}

_WORD_REVERSED = (ByteOrder.CDAB, ByteOrder.DCBA)
_BYTE_SWAPPED = (ByteOrder.BADC, ByteOrder.DCBA)


def integer_range(type: ModbusType) -> tuple[int, int]:
    """Smallest and largest raw value of an integer type (``bool``: 0 and 1)."""
    if type is ModbusType.BOOL:
        return 0, 1
    if not type.is_integer:
        raise CodecError(f"type {type} is not an integer type")
    bits = 16 * (type.width or 1)
    if type.value.startswith("s"):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def to_signed(unsigned: int, bits: int) -> int:
    """Two's-complement reading of an unsigned ``bits``-wide integer."""
    return unsigned - (1 << bits) if unsigned >> (bits - 1) & 1 else unsigned


def _checked(registers: Sequence[int]) -> list[int]:
    regs = list(registers)
    for index, word in enumerate(regs):
        if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= 0xFFFF:
            raise CodecError(f"register {index} is {word!r}; registers hold integers 0..65535")
    return regs


def _swap(word: int) -> int:
    return (word >> 8) | ((word & 0xFF) << 8)


def _reorder(words: list[int], byte_order: ByteOrder, *, reverse_words: bool = True) -> list[int]:
    """Big-endian words <-> wire registers. It is its own inverse."""
    if reverse_words and byte_order in _WORD_REVERSED:
        words = words[::-1]
    if byte_order in _BYTE_SWAPPED:
        words = [_swap(w) for w in words]
    return words


def _to_bytes(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(2, "big") for w in words)


def _to_words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def unsigned_of(registers: Sequence[int], byte_order: ByteOrder) -> int:
    """The registers as one unsigned integer of ``16 * len(registers)`` bits."""
    words = _reorder(_checked(registers), ByteOrder(byte_order))
    return int.from_bytes(_to_bytes(words), "big")


def _from_unsigned(value: int, count: int, byte_order: ByteOrder) -> list[int]:
    return _reorder(_to_words(value.to_bytes(2 * count, "big")), byte_order)


def set_bit(
    registers: Sequence[int], bit: int, on: bool, *, byte_order: ByteOrder = ByteOrder.ABCD
) -> list[int]:
    """A copy of ``registers`` with ``bit`` (0 = least significant) of their value set or cleared.

    Writing a ``bit`` point is read-modify-write: read the register(s), ``set_bit``, write
    them back. ``byte_order`` matters only when the value spans several registers.
    """
    regs = _checked(registers)
    bits = 16 * len(regs)
    if not 0 <= bit < bits:
        raise CodecError(f"bit {bit} is outside a {len(regs)}-register value (bits 0..{bits - 1})")
    value = unsigned_of(regs, byte_order)
    value = value | (1 << bit) if on else value & ~(1 << bit)
    return _from_unsigned(value, len(regs), ByteOrder(byte_order))


def shortest_f32(value: float) -> float:
    """The shortest decimal that is the same float32 as ``value``: 123.45600128173828 -> 123.456.

    Values that are not exactly a float32 (and NaN, infinities) come back unchanged.
    """
    try:
        if struct.unpack(">f", struct.pack(">f", value))[0] != value:
            return value
        for digits in range(1, 10):  # nine significant digits always identify a float32
            candidate = float(f"{value:.{digits}g}")
            if struct.unpack(">f", struct.pack(">f", candidate))[0] == value:
                return candidate
    except OverflowError:
        pass
    return value


def decode_raw(registers: Sequence[int], type: ModbusType, byte_order: ByteOrder) -> RawValue:
    """Registers (wire order) -> the raw number or string of ``type``.

    Integer types give ``int``, float types ``float`` (exact, NaN and infinities
    included), ``bool`` gives ``register != 0``, ``string`` gives ``str``.
    """
    regs = _checked(registers)
    type = ModbusType(type)
    byte_order = ByteOrder(byte_order)
    if type is ModbusType.STRING:
        data = _to_bytes(_reorder(regs, byte_order, reverse_words=False))
        data = data.split(b"\x00", 1)[0]
        return data.decode("utf-8", errors="replace").rstrip(" ")
    width = type.width or 1
    if len(regs) != width:
        raise CodecError(f"type {type} takes {width} register(s), got {len(regs)}")
    data = _to_bytes(_reorder(regs, byte_order))
    result: int | float = struct.unpack(_FORMAT[type], data)[0]
    if type is ModbusType.BOOL:
        return result != 0
    return result


def encode_raw(
    value: RawValue, type: ModbusType, byte_order: ByteOrder, count: int | None = None
) -> list[int]:
    """The raw number or string ``value`` of ``type`` -> registers in wire order.

    ``count`` is the number of registers: required to pad a string to its field (without
    it a string takes as few registers as it needs, at least one), and checked against
    the type's width otherwise.
    """
    type = ModbusType(type)
    byte_order = ByteOrder(byte_order)
    if count is not None and count < 1:
        raise CodecError(f"count must be at least 1, got {count}")
    if type is ModbusType.STRING:
        return _encode_string(value, byte_order, count)
    width = type.width or 1
    if count is not None and count != width:
        raise CodecError(f"type {type} takes {width} register(s), not {count}")
    if type is ModbusType.BOOL:
        if isinstance(value, str) or value not in (0, 1):
            raise CodecError(f"type bool takes True/False or 1/0, got {value!r}")
        data = struct.pack(">H", int(value))
    elif type.is_integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"type {type} takes an int, got {value!r}")
        low, high = integer_range(type)
        if not low <= value <= high:
            raise CodecError(f"{value} is out of range for {type} ({low}..{high})")
        data = struct.pack(_FORMAT[type], value)
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"type {type} takes a number, got {value!r}")
        try:
            data = struct.pack(_FORMAT[type], value)
        except OverflowError as exc:
            raise CodecError(f"{value!r} is out of range for {type}") from exc
    return _reorder(_to_words(data), byte_order)


def _encode_string(value: RawValue, byte_order: ByteOrder, count: int | None) -> list[int]:
    if not isinstance(value, str):
        raise CodecError(f"type string takes a str, got {value!r}")
    data = value.encode("utf-8")
    registers = count if count is not None else max(1, (len(data) + 1) // 2)
    if len(data) > 2 * registers:
        raise CodecError(
            f"string {value!r} is {len(data)} bytes; {registers} register(s) hold {2 * registers}"
        )
    words = _to_words(data.ljust(2 * registers, b"\x00"))
    return _reorder(words, byte_order, reverse_words=False)


def _field_span(spec: EventLogSpec, field: EventField) -> slice:
    width = field.type.width
    if width is None and field.count is None:
        raise CodecError(f"event field {field.id!r}: a string needs 'count'")
    if width is not None and field.count not in (None, width):
        raise CodecError(f"event field {field.id!r}: type {field.type} takes {width} register(s)")
    end = field.offset + (field.count or width or 1)
    if end > spec.record_size:
        raise CodecError(f"event field {field.id!r} ends at register {end}, "
                         f"past the record size {spec.record_size}")
    return slice(field.offset, end)


def unpack_record(spec: EventLogSpec, registers: Sequence[int],
                  byte_order: ByteOrder) -> dict[str, RawValue]:
    """One event-log record -> ``{field id: raw value}``."""
    regs = _checked(registers)
    if len(regs) != spec.record_size:
        raise CodecError(f"an event record is {spec.record_size} registers, got {len(regs)}")
    return {f.id: decode_raw(regs[_field_span(spec, f)], f.type, byte_order) for f in spec.fields}


def pack_record(spec: EventLogSpec, values: Mapping[str, object],
                byte_order: ByteOrder) -> list[int]:
    """``{field id: raw value}`` (every field, no others) -> one event-log record."""
    ids = {f.id for f in spec.fields}
    if unknown := sorted(set(values) - ids):
        raise CodecError(f"event record has unknown field(s) {', '.join(unknown)}")
    if missing := sorted(ids - set(values)):
        raise CodecError(f"event record lacks field(s) {', '.join(missing)}")
    registers = [0] * spec.record_size
    for field in spec.fields:
        span, value = _field_span(spec, field), values[field.id]
        if not isinstance(value, bool | int | float | str):
            raise CodecError(f"event field {field.id!r}: cannot encode {value!r}")
        try:
            registers[span] = encode_raw(value, field.type, byte_order, span.stop - span.start)
        except CodecError as exc:
            raise CodecError(f"event field {field.id!r}: {exc}") from exc
    return registers
