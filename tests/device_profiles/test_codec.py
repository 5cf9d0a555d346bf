"""Point-level decoding and encoding: tables of hand-computed cases and round-trip properties."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles.codec import (
    CodecError,
    Decoded,
    bits_set,
    counter_delta,
    counter_modulus,
    counter_went_backwards,
    decode_bacnet,
    decode_event_record,
    decode_modbus,
    encode_bacnet,
    encode_event_record,
    encode_modbus,
    encode_raw,
    event_slot_address,
    register_count,
)
from device_profiles.registers import integer_range
from device_profiles.schema import (
    BacnetPoint,
    BitEntry,
    ByteOrder,
    EnumEntry,
    EventLogSpec,
    ModbusPoint,
    ModbusType,
)

ABCD, CDAB, BADC, DCBA = ByteOrder.ABCD, ByteOrder.CDAB, ByteOrder.BADC, ByteOrder.DCBA

ENUMS: dict[str, list[EnumEntry]] = {
    "car_state": [
        EnumEntry(value=1, name="idle", en="Idle", zh="空闲"),
        EnumEntry(value=2, name="moving", en="Moving", zh="运行"),
        EnumEntry(value=3, name="fault", en="Fault", zh="故障"),
    ],
    "event_code": [
        EnumEntry(value=1, name="door_open", en="Door open", zh="门开"),
        EnumEntry(value=2, name="door_forced", en="Door forced", zh="门被强行打开"),
    ],
}
BITS = [
    BitEntry(bit=0, name="overload", en="Overload", zh="超载"),
    BitEntry(bit=3, name="door_fault", en="Door fault", zh="门故障"),
    BitEntry(bit=15, name="estop", en="Emergency stop", zh="急停"),
]


def mp(**fields: Any) -> ModbusPoint:
    """A Modbus point: holding register 0, u16, unless ``fields`` say otherwise."""
    base: dict[str, Any] = {"id": "p", "name": {"en": "P", "zh": "点"}, "table": "holding",
                            "address": 0}
    return ModbusPoint.model_validate(base | fields)


def bp(obj: str, **fields: Any) -> BacnetPoint:
    base: dict[str, Any] = {"id": "b", "name": {"en": "B", "zh": "点"}, "object": obj}
    return BacnetPoint.model_validate(base | fields)


def decode(point: ModbusPoint, registers: list[int], order: ByteOrder = ABCD) -> Decoded:
    return decode_modbus(point, registers, byte_order=order, enums=ENUMS)


def encode(point: ModbusPoint, value: object, order: ByteOrder = ABCD) -> list[int]:
    return encode_modbus(point, value, byte_order=order, enums=ENUMS)


# --- Decoded ---------------------------------------------------------------------------


def test_decoded_checks_itself() -> None:
    with pytest.raises(ValueError, match="needs a value"):
        Decoded(value=None, quality="good")
    with pytest.raises(ValueError, match="says why"):
        Decoded(value=1, quality="bad", reason="x")
    with pytest.raises(ValueError, match="says why"):
        Decoded(value=None, quality="bad")
    with pytest.raises(ValueError, match="'good' or 'bad'"):
        Decoded(value=1, quality="stale")  # type: ignore[arg-type]
    reading = Decoded(value=1, quality="good", raw=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.value = 2  # type: ignore[misc]


# --- decode_modbus ---------------------------------------------------------------------

NUMBERS: list[tuple[dict[str, Any], list[int], ByteOrder, int | float]] = [
    ({"type": "u16"}, [1234], ABCD, 1234),
    ({"type": "u32"}, [0x1234, 0x5678], ABCD, 0x12345678),
    ({"type": "u32"}, [0x5678, 0x1234], CDAB, 0x12345678),
    ({"type": "s16"}, [0xFFFF], ABCD, -1),
    ({"type": "u16", "scale": 0.1}, [1234], ABCD, 123.4),
    ({"type": "u16", "scale": 0.1}, [3], ABCD, 0.3),  # not 0.30000000000000004
    ({"type": "s16", "scale": 0.1}, [0xFFFF], ABCD, -0.1),
    ({"type": "u16", "scale": 0.01}, [65535], ABCD, 655.35),
    ({"type": "u16", "offset": -40}, [100], ABCD, 60.0),
    ({"type": "s16", "scale": 0.5, "offset": 273.15}, [0xFFFE], ABCD, 272.15),
    ({"type": "u32", "scale": 0.001}, [0x0001, 0xE240], ABCD, 123.456),  # 123456
    ({"type": "f32"}, [0xE979, 0x42F6], CDAB, 123.456),
    ({"type": "f32"}, [0x42F6, 0xE979], ABCD, 123.456),
    ({"type": "f32", "scale": 10}, [0x42F6, 0xE979], ABCD, 1234.56),
    ({"type": "f64"}, [0x3FF0, 0, 0, 0], ABCD, 1.0),
    ({"type": "u64"}, [0xFFFF] * 4, ABCD, 2**64 - 1),
    ({"type": "u16", "kind": "counter", "scale": 0.1}, [11], ABCD, 1.1),
]


@pytest.mark.parametrize(("fields", "registers", "order", "expected"), NUMBERS)
def test_decode_numbers(
    fields: dict[str, Any], registers: list[int], order: ByteOrder, expected: int | float
) -> None:
    reading = decode(mp(**fields), registers, order)
    assert reading.quality == "good"
    assert reading.reason is None
    assert reading.value == expected
    assert type(reading.value) is type(expected)


def test_decode_keeps_the_exact_raw() -> None:
    reading = decode(mp(type="f32"), [0x42F6, 0xE979])
    assert reading.value == 123.456
    assert reading.raw == 123.45600128173828


@pytest.mark.parametrize(
    ("fields", "registers", "order"),
    [
        ({"type": "u16", "invalid": [0xFFFF]}, [0xFFFF], ABCD),
        ({"type": "s16", "invalid": [-1]}, [0xFFFF], ABCD),  # signed sentinel, signed type
        ({"type": "s16", "invalid": [0x8000]}, [0x8000], ABCD),  # unsigned sentinel, signed type
        ({"type": "u16", "invalid": [-32768]}, [0x8000], ABCD),  # signed sentinel, unsigned type
        ({"type": "u32", "invalid": [0xFFFFFFFF]}, [0xFFFF, 0xFFFF], CDAB),
        ({"type": "u32", "invalid": [0x7FFFFFFF]}, [0xFFFF, 0x7FFF], CDAB),
        ({"type": "s32", "invalid": [-2]}, [0xFEFF, 0xFFFF], DCBA),
        ({"type": "f32", "invalid": [-1]}, [0xBF80, 0x0000], ABCD),  # the value -1.0
        ({"type": "f32", "invalid": [0x7F7FFFFF]}, [0x7F7F, 0xFFFF], ABCD),  # the bit pattern
        ({"type": "u16", "kind": "enum", "enum": "car_state", "invalid": [0]}, [0], ABCD),
        ({"type": "u16", "bit": 3, "invalid": [0xFFFF]}, [0xFFFF], ABCD),
    ],
)
def test_invalid_sentinels(fields: dict[str, Any], registers: list[int], order: ByteOrder) -> None:
    reading = decode(mp(**fields), registers, order)
    assert reading == Decoded(value=None, quality="bad", raw=reading.raw,
                              reason="invalid sentinel")
    assert reading.raw is not None


def test_sentinel_does_not_match_other_values() -> None:
    assert decode(mp(type="s16", invalid=[-32768]), [0x7FFF]).value == 32767


@pytest.mark.parametrize(
    ("registers", "reason"),
    [([0x7FC0, 0x0000], "not a finite number"), ([0x7F80, 0x0000], "not a finite number"),
     ([0xFF80, 0x0000], "not a finite number")],
)
def test_non_finite_floats_are_bad(registers: list[int], reason: str) -> None:
    reading = decode(mp(type="f32", scale=2), registers)
    assert (reading.quality, reading.value, reading.reason) == ("bad", None, reason)


@pytest.mark.parametrize(
    ("fields", "registers", "order", "expected"),
    [
        ({"type": "u16", "bit": 3}, [0x0008], ABCD, True),
        ({"type": "u16", "bit": 3}, [0xFFF7], ABCD, False),
        ({"type": "u16", "bit": 0}, [0x0100], BADC, True),
        ({"type": "s16", "bit": 15}, [0x8000], ABCD, True),
        ({"type": "u32", "bit": 20}, [0x0010, 0x0000], ABCD, True),
        ({"type": "u32", "bit": 20}, [0x0000, 0x0010], CDAB, True),
        ({"type": "u32", "bit": 20, "kind": "bool"}, [0x0000, 0x0010], ABCD, False),
    ],
)
def test_bits(
    fields: dict[str, Any], registers: list[int], order: ByteOrder, expected: bool
) -> None:
    reading = decode(mp(**fields), registers, order)
    assert reading.value is expected
    assert reading.quality == "good"


@pytest.mark.parametrize("fields", [{"type": "f32", "bit": 1}, {"type": "u16", "bit": 16}])
def test_bit_needs_a_wide_enough_integer(fields: dict[str, Any]) -> None:
    with pytest.raises(CodecError, match="point 'p': bit"):
        decode(mp(**fields), [0, 0][: mp(**fields).width])


@pytest.mark.parametrize(
    ("fields", "registers", "expected"),
    [
        ({"type": "u16", "kind": "bool"}, [0], False),
        ({"type": "u16", "kind": "bool"}, [5], True),
        ({"type": "bool", "kind": "bool"}, [0xFF00], True),
        ({"type": "bool", "kind": "bool"}, [0], False),
        ({"type": "f32", "kind": "bool"}, [0x3F80, 0], True),
    ],
)
def test_bool_kind(fields: dict[str, Any], registers: list[int], expected: bool) -> None:
    assert decode(mp(**fields), registers).value is expected


def test_enum_known_and_unknown() -> None:
    point = mp(kind="enum", enum="car_state")
    assert decode(point, [2]) == Decoded(value="moving", quality="good", raw=2)
    assert decode(point, [9]) == Decoded(value="unknown_9", quality="good", raw=9,
                                         reason="unknown enum value")
    signed = mp(type="s16", kind="enum", enum="car_state")
    assert decode(signed, [0xFFFF]).value == "unknown_-1"


def test_enum_must_be_defined() -> None:
    with pytest.raises(CodecError, match="enum 'nope' is not defined"):
        decode(mp(kind="enum", enum="nope"), [1])


def test_enum_of_a_fractional_float_is_bad() -> None:
    reading = decode(mp(type="f32", kind="enum", enum="car_state"), [0x4020, 0])  # 2.5
    assert (reading.quality, reading.reason) == ("bad", "not an integer")
    assert decode(mp(type="f32", kind="enum", enum="car_state"), [0x4000, 0]).value == "moving"


@pytest.mark.parametrize(
    ("fields", "registers", "expected", "names"),
    [
        ({"type": "u16"}, [0x0009], 9, ["overload", "door_fault"]),
        ({"type": "s16"}, [0x8001], 0x8001, ["overload", "estop"]),
        ({"type": "u32"}, [0x0000, 0x0008], 8, ["door_fault"]),
        ({"type": "u16"}, [0x0000], 0, []),
    ],
)
def test_bitfield(
    fields: dict[str, Any], registers: list[int], expected: int, names: list[str]
) -> None:
    reading = decode(mp(kind="bitfield", bits="alarms", **fields), registers)
    assert reading.value == expected
    assert isinstance(reading.value, int)
    assert bits_set(reading.value, BITS) == names


def test_bits_set_orders_by_bit_number() -> None:
    assert bits_set(0xFFFF, list(reversed(BITS))) == ["overload", "door_fault", "estop"]


def test_text() -> None:
    point = mp(type="string", count=4, kind="text")
    assert decode(point, [0x4C31, 0x2D30, 0x3200, 0x0000]).value == "L1-02"
    assert decode(point, [0x314C, 0x302D, 0x0032, 0x0000], BADC).value == "L1-02"


@pytest.mark.parametrize(
    ("fields", "bits", "expected"),
    [
        ({"table": "coil"}, [1], True),
        ({"table": "coil"}, [True], True),  # pymodbus hands bits over as bools
        ({"table": "discrete"}, [0], False),
        ({"table": "discrete", "type": "bool", "kind": "bool"}, [1], True),
    ],
)
def test_coils_and_discrete_inputs(
    fields: dict[str, Any], bits: list[int], expected: bool | int | str
) -> None:
    reading = decode(mp(**fields), bits)
    assert reading.value == expected
    assert type(reading.value) is type(expected)


@pytest.mark.parametrize(
    ("fields", "registers", "message"),
    [
        ({"type": "u32"}, [1], "point 'p' takes 2 register"),
        ({"table": "coil"}, [2], "read 0 or 1"),
        ({"table": "coil", "count": 2}, [1, 0], "is one bit"),
        ({"type": "string", "count": 1}, [0x4100], "kind number does not go with type string"),
        ({"type": "u16", "kind": "text"}, [1], "kind text does not go with type u16"),
        ({"type": "u16", "registers": None}, [70000], "register 0 is 70000"),
    ],
)
def test_decode_modbus_errors(
    fields: dict[str, Any], registers: list[int], message: str
) -> None:
    fields.pop("registers", None)
    with pytest.raises(CodecError, match=message):
        decode(mp(**fields), registers)


# --- encode_modbus ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "value", "order", "registers"),
    [
        ({"type": "u16"}, 1234, ABCD, [1234]),
        ({"type": "u16", "scale": 0.1}, 123.4, ABCD, [1234]),
        ({"type": "s16", "scale": 0.1}, -0.1, ABCD, [0xFFFF]),
        ({"type": "u16", "scale": 0.1}, 0.25, ABCD, [3]),  # half rounds away from zero
        ({"type": "s16", "scale": 0.1}, -0.25, ABCD, [0xFFFD]),
        ({"type": "u16", "scale": 0.1}, 0.24, ABCD, [2]),
        ({"type": "u16", "scale": 0.1}, 0.35, ABCD, [4]),  # the decimal 0.35, a tie: up
        ({"type": "u16", "offset": -40}, 60, ABCD, [100]),
        ({"type": "s16", "scale": 0.5, "offset": 273.15}, 272.15, ABCD, [0xFFFE]),
        ({"type": "u32"}, 0x12345678, CDAB, [0x5678, 0x1234]),
        ({"type": "u32", "scale": 0.001}, 123.456, BADC, [0x0100, 0x40E2]),
        ({"type": "u64"}, 2**64 - 1, ABCD, [0xFFFF] * 4),  # exact, not through a float
        ({"type": "f32"}, 123.456, CDAB, [0xE979, 0x42F6]),
        ({"type": "f32", "scale": 10}, 1234.56, ABCD, [0x42F6, 0xE979]),
        ({"type": "f64", "offset": 1}, 2, ABCD, [0x3FF0, 0, 0, 0]),
        ({"kind": "bool"}, True, ABCD, [1]),
        ({"kind": "bool"}, False, ABCD, [0]),
        ({"type": "bool", "kind": "bool"}, True, DCBA, [0x0100]),
        ({"type": "f32", "kind": "bool"}, True, ABCD, [0x3F80, 0]),
        ({"kind": "enum", "enum": "car_state"}, "fault", ABCD, [3]),
        ({"kind": "enum", "enum": "car_state"}, "unknown_9", ABCD, [9]),
        ({"type": "s16", "kind": "enum", "enum": "car_state"}, "unknown_-1", ABCD, [0xFFFF]),
        ({"type": "s16", "kind": "bitfield", "bits": "x"}, 0x8001, ABCD, [0x8001]),
        ({"type": "string", "count": 3, "kind": "text"}, "L1", ABCD, [0x4C31, 0, 0]),
        ({"table": "coil"}, True, ABCD, [1]),
        ({"table": "coil", "type": "bool", "kind": "bool"}, False, ABCD, [0]),
    ],
)
def test_encode_modbus(
    fields: dict[str, Any], value: object, order: ByteOrder, registers: list[int]
) -> None:
    point = mp(**fields)
    assert encode(point, value, order) == registers
    assert register_count(point) == len(registers)


@pytest.mark.parametrize(
    ("fields", "value", "message"),
    [
        ({"type": "u16", "scale": 0.1}, 6553.6, r"point 'p': 6553\.6 is raw 65536, out of range"),
        ({"type": "u16"}, -1, r"point 'p': -1 is raw -1, out of range for u16 \(0..65535\)"),
        ({"type": "s16", "offset": 100}, 32868, "out of range for s16"),
        ({"type": "u16"}, math.nan, "cannot be written as u16"),
        ({"type": "u16"}, True, "expected a number"),
        ({"type": "u16"}, "12", "expected a number"),
        ({"type": "u16", "scale": 0}, 1, "scale 0"),
        ({"type": "f32"}, 1e39, "point 'p': 1e\\+39: .* out of range for f32"),
        ({"kind": "bool"}, 2, "expected True/False"),
        ({"kind": "enum", "enum": "car_state"}, "flying", r"one of: idle, moving, fault"),
        ({"kind": "enum", "enum": "car_state"}, 2, "not a value of enum"),
        ({"kind": "bitfield", "bits": "x"}, 65536, r"a bitfield is an int 0..65535"),
        ({"kind": "bitfield", "bits": "x"}, -1, "a bitfield is an int"),
        ({"type": "string", "count": 1, "kind": "text"}, "ABC", "3 bytes; 1 register"),
        ({"type": "string", "count": 1, "kind": "text"}, 1, "expected a str"),
        ({"bit": 4}, True, r"encode_modbus cannot know the other bits.*set_bit\(registers, 4"),
        ({"table": "coil"}, 2, "a coil is one bit, True or False"),
    ],
)
def test_encode_modbus_errors(fields: dict[str, Any], value: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(mp(**fields), value)


def test_event_log_points_go_record_by_record() -> None:
    point = mp(kind="event_log", event_log=SPEC.model_dump())
    with pytest.raises(CodecError, match="decode_event_record"):
        decode(point, [0] * point.width)
    with pytest.raises(CodecError, match="encode_event_record"):
        encode(point, {})


# --- register_count --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "count"),
    [({"type": "u16"}, 1), ({"type": "u32"}, 2), ({"type": "f64"}, 4),
     ({"type": "string", "count": 8, "kind": "text"}, 8), ({"table": "coil"}, 1)],
)
def test_register_count(fields: dict[str, Any], count: int) -> None:
    assert register_count(mp(**fields)) == count


# --- counters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "modulus", "delta"),
    [
        (10, 15, 2**32, 5),
        (15, 15, 2**32, 0),
        (4294967290, 5, 2**32, 11),  # u32 wrap
        (65530, 4, 2**16, 10),  # u16 wrap
        (99999990, 5, 99999999, 14),  # rollover 99999999: 99999999 reads as 0
        (0.1, 0.3, 100.0, 0.2),  # not 0.19999999999999998
        (42949672.9, 0.05, 42949672.96, 0.11),  # u32 * 0.01 wrapped
        (2**31 - 1, -(2**31), 2**32, 1),  # s32 wraps from +max to -min
    ],
)
def test_counter_delta(
    previous: int | float, current: int | float, modulus: int | float, delta: int | float
) -> None:
    result = counter_delta(previous, current, modulus=modulus)
    assert result == delta
    assert type(result) is type(delta)


def test_counter_delta_needs_a_positive_modulus() -> None:
    with pytest.raises(CodecError, match="positive"):
        counter_delta(1, 2, modulus=0)


@pytest.mark.parametrize(
    ("fields", "modulus"),
    [
        ({"type": "u16"}, 65536),
        ({"type": "u32"}, 2**32),
        ({"type": "s32"}, 2**32),
        ({"type": "u64"}, 2**64),
        ({"type": "u32", "rollover": 99999999}, 99999999),
        ({"type": "u32", "rollover": 100000000, "scale": 0.1}, 10000000.0),
        ({"type": "u32", "scale": 0.01}, 42949672.96),
        ({"type": "f32", "rollover": 1000000}, 1000000),
    ],
)
def test_counter_modulus(fields: dict[str, Any], modulus: int | float) -> None:
    result = counter_modulus(mp(kind="counter", **fields))
    assert result == modulus
    assert type(result) is type(modulus)


def test_float_counter_needs_rollover() -> None:
    with pytest.raises(CodecError, match="point 'p': a f32 counter needs 'rollover'"):
        counter_modulus(mp(kind="counter", type="f32"))


@pytest.mark.parametrize(
    ("previous", "current", "modulus", "max_delta", "backwards"),
    [
        (4294967290, 5, 2**32, 1000, False),  # a wrap of 11
        (1000, 990, 2**32, 1000, True),  # as a wrap it would be ~4.29e9
        (1000, 2000, 2**32, 10, False),  # forwards (too fast is not backwards)
        (99999990, 5, 99999999, 100, False),
        (500, 400, 99999999, 100, True),
        (10.5, 10.25, 1000.0, 50.0, True),
    ],
)
def test_counter_went_backwards(
    previous: int | float, current: int | float, modulus: int | float,
    max_delta: int | float, backwards: bool,
) -> None:
    assert counter_went_backwards(previous, current, modulus, max_delta) is backwards


# --- event logs ------------------------------------------------------------------------

SPEC = EventLogSpec.model_validate({
    "head": 900,
    "capacity": 50,
    "record_size": 12,
    "fields": [
        {"id": "seq", "offset": 0, "type": "u32"},
        {"id": "ts", "offset": 2, "type": "u32"},
        {"id": "code", "offset": 4, "type": "u16", "enum": "event_code"},
        {"id": "floor", "offset": 5, "type": "s16"},
        {"id": "door", "offset": 6, "type": "string", "count": 4},
        {"id": "temp", "offset": 10, "type": "f32"},
    ],
})
RECORD: dict[str, bool | int | float | str] = {
    "seq": 258, "ts": 1700000000, "code": "door_forced", "floor": -1, "door": "B1",
    "temp": 21.5,
}
# seq 258 = 0x00000102, ts 1700000000 = 0x6553F100, f32 21.5 = 0x41AC0000
RECORD_ABCD = [0x0000, 0x0102, 0x6553, 0xF100, 0x0002, 0xFFFF, 0x4231, 0, 0, 0, 0x41AC, 0x0000]
RECORD_CDAB = [0x0102, 0x0000, 0xF100, 0x6553, 0x0002, 0xFFFF, 0x4231, 0, 0, 0, 0x0000, 0x41AC]


@pytest.mark.parametrize(("order", "registers"), [(ABCD, RECORD_ABCD), (CDAB, RECORD_CDAB)])
def test_event_record(order: ByteOrder, registers: list[int]) -> None:
    assert decode_event_record(SPEC, registers, byte_order=order, enums=ENUMS) == RECORD
    assert encode_event_record(SPEC, RECORD, byte_order=order, enums=ENUMS) == registers


def test_event_record_unlisted_registers_are_zero() -> None:
    spec = EventLogSpec(head=0, capacity=4, record_size=6,
                        fields=[{"id": "seq", "offset": 2, "type": "u16"}])
    assert encode_event_record(spec, {"seq": 7}, byte_order=ABCD, enums=ENUMS) == [0, 0, 7, 0, 0, 0]


def test_event_record_unknown_enum_value() -> None:
    registers = list(RECORD_ABCD)
    registers[4] = 9
    record = decode_event_record(SPEC, registers, byte_order=ABCD, enums=ENUMS)
    assert record["code"] == "unknown_9"
    assert encode_event_record(SPEC, record, byte_order=ABCD, enums=ENUMS) == registers


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unknown field"),
        ({"seq": None}, "lacks field"),
        ({"code": "door_closed"}, "event field 'code': 'door_closed' is not a value of enum"),
        ({"floor": 40000}, "event field 'floor': 40000 is out of range for s16"),
        ({"door": "ABCDEFGHI"}, "event field 'door': string 'ABCDEFGHI' is 9 bytes"),
    ],
)
def test_encode_event_record_errors(change: dict[str, object], message: str) -> None:
    record: dict[str, object] = {**RECORD, **change}
    record = {k: v for k, v in record.items() if v is not None}
    with pytest.raises(CodecError, match=message):
        encode_event_record(SPEC, record, byte_order=ABCD, enums=ENUMS)


def test_decode_event_record_errors() -> None:
    with pytest.raises(CodecError, match="an event record is 12 registers, got 11"):
        decode_event_record(SPEC, RECORD_ABCD[:11], byte_order=ABCD, enums=ENUMS)
    spec = SPEC.model_copy(update={"record_size": 11})
    with pytest.raises(CodecError, match="'temp' ends at register 12, past the record size 11"):
        decode_event_record(spec, RECORD_ABCD[:11], byte_order=ABCD, enums=ENUMS)


@pytest.mark.parametrize(("seq", "address"), [(0, 1000), (1, 1012), (49, 1588), (50, 1000),
                                              (51, 1012), (2**32 - 1, 1000 + 45 * 12)])
def test_event_slot_address(seq: int, address: int) -> None:
    point = mp(address=1000, kind="event_log", event_log=SPEC.model_dump())
    assert event_slot_address(point, seq) == address
    assert register_count(point) == 12


def test_event_slot_address_needs_an_event_log() -> None:
    with pytest.raises(CodecError, match="not an event log"):
        event_slot_address(mp(), 1)


# --- BACnet ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "fields", "value", "expected"),
    [
        ("analog-input,1", {}, 21.5, 21.5),
        ("analog-input,1", {}, 123.45600128173828, 123.456),  # a REAL, read as its decimal
        ("analog-value,1", {}, 42, 42),
        ("accumulator,1", {"kind": "counter"}, 123456, 123456),
        ("binary-input,1", {"kind": "bool"}, "active", True),
        ("binary-input,1", {"kind": "bool"}, "inactive", False),
        ("binary-value,1", {"kind": "bool"}, "Active", True),
        ("binary-input,1", {"kind": "bool"}, 1, True),
        ("binary-input,1", {"kind": "bool"}, 0, False),
        ("binary-output,1", {"kind": "bool"}, True, True),
        ("multi-state-input,1", {"kind": "enum", "enum": "car_state"}, 1, "idle"),
        ("multi-state-input,1", {"kind": "enum", "enum": "car_state"}, 3, "fault"),
        ("multi-state-value,1", {"kind": "enum", "enum": "car_state"}, "moving", "moving"),
        ("characterstring-value,1", {"kind": "text"}, "Lobby", "Lobby"),
        ("analog-input,1", {"kind": "bitfield", "bits": "f", "property": "status-flags"},
         [True, False, True, False], 5),
        ("analog-input,1", {"kind": "bitfield", "bits": "f"}, 6, 6),
    ],
)
def test_decode_bacnet(obj: str, fields: dict[str, Any], value: object, expected: object) -> None:
    reading = decode_bacnet(bp(obj, **fields), value, enums=ENUMS)
    assert reading.quality == "good"
    assert reading.reason is None
    assert reading.value == expected
    assert type(reading.value) is type(expected)


def test_decode_bacnet_unknown_state() -> None:
    point = bp("multi-state-input,1", kind="enum", enum="car_state")
    assert decode_bacnet(point, 7, enums=ENUMS) == Decoded(
        value="unknown_7", quality="good", raw=7, reason="unknown enum value")


@pytest.mark.parametrize(("value", "reason"), [(None, "no value"),
                                               (math.nan, "not a finite number"),
                                               (math.inf, "not a finite number")])
def test_decode_bacnet_bad(value: object, reason: str) -> None:
    reading = decode_bacnet(bp("analog-input,1"), value, enums=ENUMS)
    assert (reading.quality, reading.value, reading.reason) == ("bad", None, reason)


@pytest.mark.parametrize(
    ("obj", "fields", "value"),
    [
        ("binary-input,1", {"kind": "bool"}, "on"),
        ("binary-input,1", {"kind": "bool"}, 2),
        ("analog-input,1", {}, "21.5"),
        ("analog-input,1", {}, True),
        ("multi-state-input,1", {"kind": "enum", "enum": "car_state"}, "flying"),
        ("multi-state-input,1", {"kind": "enum", "enum": "car_state"}, 1.0),
        ("characterstring-value,1", {"kind": "text"}, 5),
    ],
)
def test_decode_bacnet_errors(obj: str, fields: dict[str, Any], value: object) -> None:
    with pytest.raises(CodecError, match="point 'b'"):
        decode_bacnet(bp(obj, **fields), value, enums=ENUMS)


@pytest.mark.parametrize(
    ("obj", "fields", "value", "expected"),
    [
        ("binary-output,1", {"kind": "bool"}, True, "active"),
        ("binary-output,1", {"kind": "bool"}, False, "inactive"),
        ("binary-output,1", {"kind": "bool"}, "inactive", "inactive"),
        ("multi-state-output,1", {"kind": "enum", "enum": "car_state"}, "fault", 3),
        ("analog-output,1", {}, 21, 21.0),
        ("positive-integer-value,1", {}, 21, 21),
        ("characterstring-value,1", {"kind": "text"}, "Lobby", "Lobby"),
    ],
)
def test_encode_bacnet(obj: str, fields: dict[str, Any], value: object, expected: object) -> None:
    result = encode_bacnet(bp(obj, **fields), value, enums=ENUMS)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("obj", "fields", "value"),
    [("binary-output,1", {"kind": "bool"}, "on"), ("analog-output,1", {}, "1"),
     ("multi-state-output,1", {"kind": "enum", "enum": "car_state"}, "flying")],
)
def test_encode_bacnet_errors(obj: str, fields: dict[str, Any], value: object) -> None:
    with pytest.raises(CodecError, match="point 'b'"):
        encode_bacnet(bp(obj, **fields), value, enums=ENUMS)


# --- properties ------------------------------------------------------------------------

SCALES = [1, 0.1, 0.01, 0.001, 0.5, 2.5, 10, 1e-5]
OFFSETS = [0, -40, 0.5, 273.15]


@st.composite
def scaled_points(draw: st.DrawFn) -> tuple[ModbusPoint, int]:
    type_ = draw(st.sampled_from([t for t in ModbusType if t.is_integer]))
    point = mp(type=type_, scale=draw(st.sampled_from(SCALES)),
               offset=draw(st.sampled_from(OFFSETS)))
    low, high = integer_range(type_)
    # Scaled values are doubles (53 bits): beyond 2**48 or so a raw value and its neighbours
    # may share one engineering value, so the exact round trip is only promised below that.
    return point, draw(st.integers(max(low, -(2**48)), min(high, 2**48)))


@given(scaled_points(), st.sampled_from(list(ByteOrder)))
def test_scaled_integers_round_trip(case: tuple[ModbusPoint, int], order: ByteOrder) -> None:
    point, raw = case
    registers = encode_raw(raw, point.type, order)
    reading = decode(point, registers, order)
    assert reading.quality == "good"
    assert reading.raw == raw
    assert encode(point, reading.value, order) == registers


@given(st.floats(width=32, allow_nan=False, allow_infinity=False),
       st.sampled_from(list(ByteOrder)))
def test_f32_points_round_trip(value: float, order: ByteOrder) -> None:
    point = mp(type="f32")
    registers = encode_raw(value, ModbusType.F32, order)
    reading = decode(point, registers, order)
    assert isinstance(reading.value, float)
    assert encode(point, reading.value, order) == registers


@given(st.sampled_from(["idle", "moving", "fault"]) | st.integers(-32768, 32767).map(
    lambda n: f"unknown_{n}" if n not in (1, 2, 3) else "idle"))
def test_enum_points_round_trip(name: str) -> None:
    point = mp(type="s16", kind="enum", enum="car_state")
    assert decode(point, encode(point, name)).value == name
