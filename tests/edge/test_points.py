"""PointTable: decoding (equal to the codec), quality, report by exception, counters."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.codec import CodecError, decode_modbus, encode_bacnet, encode_modbus
from device_profiles.loader import load_profiles
from device_profiles.schema import (
    BacnetProfile,
    ByteOrder,
    ModbusPoint,
    ModbusProfile,
    ModbusTable,
    ModbusType,
    PointKind,
)
from edge.counters import CounterEvent, CounterStatus
from edge.points import PointTable, Report, compile_modbus

HOLDING, COIL = ModbusTable.HOLDING, ModbusTable.COIL
PROFILES = load_profiles()
MODBUS = [p for p in (PROFILES.get(i) for i in PROFILES.ids()) if isinstance(p, ModbusProfile)]


def profile(points: list[dict[str, Any]], **extra: Any) -> ModbusProfile:
    """A small Modbus profile; points default to holding u16 with an id-derived name."""
    base: dict[str, Any] = {"id": "test", "version": "1", "manufacturer": "T", "model": "T",
                            "equipment": "Pump", "protocol": "modbus"}
    full = [{"name": {"en": p["id"], "zh": p["id"]}, "table": "holding"} | p for p in points]
    return ModbusProfile.model_validate(base | {"points": full} | extra)


RBE = profile(
    [
        {"id": "num", "address": 0, "scale": 0.1, "publish": {"deadband": 0.5, "heartbeat": 60}},
        {"id": "fine", "address": 1, "scale": 0.01, "publish": {"deadband": 0.01}},
        {"id": "flag", "address": 2, "kind": "bool"},
        {"id": "mode", "address": 3, "kind": "enum", "enum": "mode"},
        {"id": "lazy", "address": 4, "publish": {"on_change": False, "heartbeat": 600}},
        {"id": "word", "address": 5, "kind": "bitfield", "bits": "flags",
         "publish": {"deadband": 4}},
    ],
    enums={"mode": [{"value": 0, "name": "auto", "en": "Auto", "zh": "自动"},
                    {"value": 1, "name": "manual", "en": "Manual", "zh": "手动"}]},
    bits={"flags": [{"bit": 0, "name": "a", "en": "A", "zh": "甲"}]},
)
IDS = ["num", "fine", "flag", "mode", "lazy", "word"]
START = [1000, 30, 0, 0, 7, 0]  # num 100.0, fine 0.3, flag False, mode auto, lazy 7, word 0


def booted(**kwargs: Any) -> PointTable:
    table = PointTable(RBE, **kwargs)
    ids = [i for i in IDS if i not in kwargs.get("disabled", ())]
    table.apply_registers(HOLDING, 0, START, ids, 0.0)
    assert table.report(0.0, force=True) is not None
    return table


def read(table: PointTable, now: float, **changes: int) -> None:
    registers = list(START)
    for point_id, raw in changes.items():
        registers[IDS.index(point_id)] = raw
    table.apply_registers(HOLDING, 0, registers, [i for i in IDS if i not in table.disabled], now)


# ---- decoding: the same as the codec ------------------------------------------------------

def _codec(point: ModbusPoint, registers: list[Any], order: ByteOrder,
           enums: Any) -> tuple[object, object]:
    try:
        decoded = decode_modbus(point, registers, byte_order=order, enums=enums)
    except CodecError as exc:
        return "error", str(exc)
    return decoded.value, decoded.reason


def _compiled(point: ModbusPoint, registers: list[Any], order: ByteOrder,
              enums: Any) -> tuple[object, object]:
    key = registers[0] if len(registers) == 1 else tuple(registers)
    try:
        return compile_modbus(point, order, enums)(key)
    except CodecError as exc:
        return "error", str(exc)


def _same(a: tuple[object, object], b: tuple[object, object]) -> bool:
    return a == b and type(a[0]) is type(b[0])


EDGE_WORDS = [0, 1, 2, 0x7FFF, 0x8000, 0x8001, 0xFFFE, 0xFFFF, 0x3F80, 0x4000]


@pytest.mark.parametrize("prof", MODBUS, ids=lambda p: p.id)
def test_compiled_decoders_equal_the_codec_on_every_shipped_point(prof: ModbusProfile) -> None:
    rng = random.Random(prof.id)
    checked = 0
    for point in prof.points:
        if point.kind is PointKind.EVENT_LOG:
            continue
        for order in [*ByteOrder]:
            effective = point.byte_order or order
            for _ in range(150):
                if point.table.is_bit_table:
                    registers: list[Any] = [rng.choice([0, 1, True, False, 2])]
                else:
                    registers = [rng.choice([*EDGE_WORDS, rng.randrange(65536),
                                             rng.randrange(1000)]) for _ in range(point.width)]
                want = _codec(point, registers, effective, prof.enums)
                got = _compiled(point, registers, effective, prof.enums)
                assert _same(want, got), (point.id, registers, want, got)
                checked += 1
    assert checked > 0


def test_a_table_holds_what_the_codec_decodes_for_whole_blocks() -> None:
    for prof in MODBUS:
        table = PointTable(prof)
        rng = random.Random(7)
        for tab in ModbusTable:
            points = [p for p in prof.points if p.table is tab and p.event_log is None]
            if not points:
                continue
            size = max(p.address + p.width for p in points)
            if tab.is_bit_table:
                block = [rng.randrange(2) for _ in range(size)]
            else:
                block = [rng.choice([rng.randrange(65536), rng.randrange(500)])
                         for _ in range(size)]
            table.apply_registers(tab, 0, block, [p.id for p in points], 5.0)
            for p in points:
                regs = block[p.address:p.address + p.width]
                want = decode_modbus(p, regs, byte_order=prof.byte_order_of(p), enums=prof.enums)
                state = table.snapshot()[p.id]
                assert (state.value, state.quality, state.reason) == (
                    want.value, want.quality, want.reason), (prof.id, p.id)


TYPES = [t for t in ModbusType if t is not ModbusType.STRING]
KINDS = ["number", "counter", "bool", "bitfield", "enum"]


@st.composite
def synthetic(draw: st.DrawFn) -> tuple[ModbusPoint, ModbusProfile]:
    type_ = draw(st.sampled_from(TYPES))
    kind = draw(st.sampled_from(KINDS))
    fields: dict[str, Any] = {"id": "p", "address": 0, "type": type_.value, "kind": kind}
    if kind == "enum":
        fields["enum"] = "e"
    if kind == "bitfield":
        fields["bits"] = "b"
    if kind in ("number", "counter"):
        fields["scale"] = draw(st.sampled_from([1.0, 0.1, 0.001, 0.01, 2.5, -0.1, 1e-7, 1e20]))
        fields["offset"] = draw(st.sampled_from([0.0, -40.0, 0.05, 273.15, 1e-30]))
    if draw(st.booleans()):
        fields["invalid"] = draw(st.lists(st.sampled_from([-1, 0, 65535, -32768, 32768, 7]),
                                          max_size=3))
    if kind == "bool" and draw(st.booleans()):
        fields["bit"] = draw(st.integers(0, 70))
    prof = profile([fields], enums={"e": [{"value": 1, "name": "one", "en": "1", "zh": "1"},
                                          {"value": -1, "name": "minus", "en": "-", "zh": "-"}]},
                   bits={"b": [{"bit": 0, "name": "z", "en": "Z", "zh": "Z"}]})
    return prof.points[0], prof


@settings(max_examples=400, deadline=None)
@given(synthetic(), st.sampled_from(list(ByteOrder)),
       st.lists(st.sampled_from(EDGE_WORDS) | st.integers(0, 65535) | st.integers(-2, 70000),
                min_size=4, max_size=4))
def test_compiled_decoders_equal_the_codec_on_any_point(
        case: tuple[ModbusPoint, ModbusProfile], order: ByteOrder, words: list[int]) -> None:
    point, prof = case
    registers = words[:point.width]
    assert _same(_codec(point, registers, order, prof.enums),
                 _compiled(point, registers, order, prof.enums))


@pytest.mark.parametrize("type_", TYPES, ids=[t.value for t in TYPES])
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_decoders_equal_the_codec_for_every_type_and_kind(type_: ModbusType,
                                                                    kind: str) -> None:
    variants: list[dict[str, Any]] = [{}, {"invalid": [-1, 0, 32768]}]
    if kind in ("number", "counter"):
        variants += [{"scale": 0.1, "offset": -40.0}, {"scale": 0.001}]
    if kind == "bool":
        variants += [{"bit": 0}, {"bit": 15}, {"bit": 40}]
    for extra in variants:
        fields = {"id": "p", "address": 0, "type": type_.value, "kind": kind} | extra
        fields |= {"enum": "e"} if kind == "enum" else {}
        fields |= {"bits": "b"} if kind == "bitfield" else {}
        prof = profile([fields], enums={"e": [{"value": 1, "name": "one", "en": "1", "zh": "1"}]},
                       bits={"b": [{"bit": 0, "name": "z", "en": "Z", "zh": "Z"}]})
        point = prof.points[0]
        for order in ByteOrder:
            for words in ([0] * 4, [1] * 4, [0xFFFF] * 4, [0x8000, 0, 0, 1], [0x7F80, 0, 0, 0],
                          [0x3F80, 0, 0, 0], [0, 1, 0, 0], [70000, 0, 0, 0]):
                registers = words[:point.width]
                assert _same(_codec(point, registers, order, prof.enums),
                             _compiled(point, registers, order, prof.enums)), (extra, order,
                                                                               registers)


def test_float_points_decode_as_their_shortest_decimal_like_the_codec() -> None:
    prof = profile([{"id": "v", "address": 0, "type": "f32", "invalid": [0]},
                    {"id": "w", "address": 2, "type": "f32", "scale": 0.1, "offset": 1}],
                   byte_order="CDAB")
    table = PointTable(prof)
    for value in (230.1, 123.456, -0.5, 1e-3, float("inf")):
        regs = encode_modbus(prof.points[0], value, byte_order=ByteOrder.CDAB, enums={})
        table.apply_registers(HOLDING, 0, regs + regs, ["v", "w"], 1.0)
        for p in prof.points:
            want = decode_modbus(p, regs, byte_order=ByteOrder.CDAB, enums={})
            assert table.snapshot()[p.id].value == want.value
            assert table.qualities()[p.id] == want.quality
    table.apply_registers(HOLDING, 0, [0, 0, 0, 0], ["v"], 2.0)
    assert table.snapshot()["v"].reason == "invalid sentinel"


# ---- quality --------------------------------------------------------------------------------

def test_points_start_stale_without_a_value_until_read() -> None:
    table = PointTable(RBE)
    assert table.values() == dict.fromkeys(IDS)
    assert set(table.qualities().values()) == {"stale"}
    assert table.snapshot()["num"].reason == "not read yet"


def test_a_sentinel_or_an_undecodable_register_makes_only_that_point_bad() -> None:
    booster = PROFILES.get("booster-pumpset-modbus")
    table = PointTable(booster)
    table.apply_registers(ModbusTable.INPUT, 2, [65535, 500], ["outlet_pressure",
                                                               "suction_pressure"], 1.0)
    state = table.snapshot()
    assert (state["outlet_pressure"].value, state["outlet_pressure"].quality) == (None, "bad")
    assert state["outlet_pressure"].reason == "invalid sentinel"
    assert (state["suction_pressure"].value, state["suction_pressure"].quality) == (0.5, "good")
    table.apply_registers(ModbusTable.INPUT, 2, [70000, 500], ["outlet_pressure",
                                                               "suction_pressure"], 2.0)
    assert table.qualities()["outlet_pressure"] == "bad"
    assert "65535" in (table.snapshot()["outlet_pressure"].reason or "")


def test_mark_bad_clears_the_value_and_a_new_read_restores_it() -> None:
    table = booted()
    table.mark_bad(["num", "flag"], "illegal data address", 3.0)
    state = table.snapshot()["num"]
    assert (state.value, state.quality, state.reason, state.ts) == (
        None, "bad", "illegal data address", 3.0)
    read(table, 4.0)
    assert table.values()["num"] == 100.0
    assert table.qualities()["num"] == "good"


def test_mark_stale_keeps_last_values_and_the_next_read_makes_them_good() -> None:
    table = booted()
    table.mark_stale(10.0)
    assert table.values() == {"num": 100.0, "fine": 0.3, "flag": False, "mode": "auto",
                              "lazy": 7, "word": 0}
    assert set(table.qualities().values()) == {"stale"}
    assert table.snapshot()["num"].reason == "device offline"
    assert table.snapshot()["num"].ts == 0.0  # last read, not when it went stale
    read(table, 11.0)
    assert set(table.qualities().values()) == {"good"}


def test_block_and_point_mismatches_are_refused() -> None:
    table = PointTable(RBE)
    with pytest.raises(ValueError, match="not in the block"):
        table.apply_registers(HOLDING, 1, [0, 0], ["num"], 0.0)
    with pytest.raises(ValueError, match="not in the block"):
        table.apply_registers(COIL, 0, [0] * 6, ["num"], 0.0)
    with pytest.raises(KeyError, match="nope"):
        table.apply_registers(HOLDING, 0, [0] * 6, ["nope"], 0.0)
    with pytest.raises(TypeError, match="apply_registers"):
        table.apply_value("num", 1, 0.0)
    with pytest.raises(ValueError, match="nope"):
        PointTable(RBE, disabled=["nope"])


def test_byte_order_override_applies_to_points_without_their_own() -> None:
    prof = profile([{"id": "big", "address": 0, "type": "u32"},
                    {"id": "own", "address": 2, "type": "u32", "byte_order": "ABCD"}])
    table = PointTable(prof, byte_order=ByteOrder.CDAB)
    table.apply_registers(HOLDING, 0, [1, 2, 1, 2], ["big", "own"], 0.0)
    assert table.values() == {"big": 2 * 65536 + 1, "own": 65536 + 2}


# ---- BACnet ---------------------------------------------------------------------------------

def test_bacnet_values_decode_through_the_codec() -> None:
    prof = PROFILES.get("elevator-mon-bacnet")
    assert isinstance(prof, BacnetProfile)
    table = PointTable(prof)
    for point_id, value in [("passenger_trapped", True), ("mode", "inspection"),
                            ("speed", 1.6), ("fault_bits", 5)]:
        table.apply_value(point_id, encode_bacnet(prof.point(point_id), value,
                                                  enums=prof.enums), 1.0)
        assert table.values()[point_id] == value
    table.apply_value("speed", None, 2.0)
    assert table.qualities()["speed"] == "bad"
    table.apply_value("mode", 99, 3.0)
    assert table.values()["mode"] == "unknown_99"
    table.apply_value("passenger_trapped", [1, 2], 4.0)
    assert table.qualities()["passenger_trapped"] == "bad"
    with pytest.raises(KeyError):
        table.apply_value("nope", 1, 0.0)


# ---- report by exception --------------------------------------------------------------------

Step = Callable[[PointTable], None]


def at(now: float, **changes: int) -> Callable[[PointTable], Report | None]:
    def step(table: PointTable) -> Report | None:
        read(table, now, **changes)
        return table.report(now)
    return step


RBE_CASES: list[tuple[str, list[Callable[[PointTable], Report | None]], dict[str, Any] | None]] = [
    ("nothing changed", [at(1)], None),
    ("exactly the deadband is not beyond it", [at(1, num=1005)], None),
    ("just beyond the deadband", [at(1, num=1006)], {"num": 100.6}),
    ("beyond the deadband downwards", [at(1, num=994)], {"num": 99.4}),
    ("0.31 - 0.30 is exactly a 0.01 deadband", [at(1, fine=31)], None),
    ("0.32 - 0.30 is beyond a 0.01 deadband", [at(1, fine=32)], {"fine": 0.32}),
    ("drift counts from the last published value", [at(1, num=1003), at(2, num=1006)],
     {"num": 100.6}),
    ("a drift that returns is never published", [at(1, num=1004), at(2, num=1000)], None),
    ("any change of a bool", [at(1, flag=1)], {"flag": True}),
    ("any change of an enum", [at(1, mode=1)], {"mode": "manual"}),
    ("an unknown enum value", [at(1, mode=9)], {"mode": "unknown_9"}),
    ("bitfields ignore a deadband", [at(1, word=1)], {"word": 1}),
    ("on_change false: a change waits", [at(1, lazy=8)], None),
    ("on_change false: heartbeat sends the new value", [at(1, lazy=8), at(600, lazy=8)],
     {"lazy": 8, "num": 100.0, "fine": 0.3, "flag": False, "mode": "auto", "word": 0}),
    ("heartbeat not due yet", [at(59.9)], None),
    ("heartbeat due for the 60 s point only", [at(60)], {"num": 100.0}),
    ("heartbeat restarts when a change is published", [at(30, num=1010), at(60, num=1010)],
     None),
    ("heartbeat after a published change", [at(30, num=1010), at(90, num=1010)],
     {"num": 101.0}),
]


@pytest.mark.parametrize(("steps", "expected"), [(s, e) for _, s, e in RBE_CASES],
                         ids=[name for name, _, _ in RBE_CASES])
def test_report_by_exception(steps: list[Callable[[PointTable], Report | None]],
                             expected: dict[str, Any] | None) -> None:
    table = booted()
    results = [step(table) for step in steps]
    last = results[-1]
    if expected is None:
        assert last is None
    else:
        assert last is not None
        assert last.values == expected
        assert set(last.quality) == set(expected)


def test_what_is_reported_counts_as_published() -> None:
    table = booted()
    read(table, 1.0, flag=1)
    assert table.report(1.0) is not None
    assert table.report(1.0) is None
    state = table.snapshot()["flag"]
    assert (state.published_value, state.published_quality, state.published_ts) == (
        True, "good", 1.0)


def test_quality_changes_are_reported_even_for_on_change_false_points() -> None:
    table = booted()
    table.mark_bad(["lazy"], "illegal data address", 1.0)
    report = table.report(1.0)
    assert report == Report({"lazy": None}, {"lazy": "bad"})
    read(table, 2.0)
    assert table.report(2.0) == Report({"lazy": 7}, {"lazy": "good"})


def test_a_device_going_stale_and_back_reports_every_point_twice() -> None:
    table = booted()
    table.mark_stale(5.0)
    report = table.report(5.0)
    assert report is not None
    assert report.values["num"] == 100.0
    assert set(report.quality.values()) == {"stale"} and len(report.quality) == len(IDS)
    read(table, 6.0)
    report = table.report(6.0)
    assert report is not None and set(report.quality.values()) == {"good"}
    assert len(report.values) == len(IDS)


def test_force_reports_everything_even_never_read_points() -> None:
    table = PointTable(RBE)
    first = table.report(0.0, force=True)
    assert first is not None
    assert first.values == dict.fromkeys(IDS)
    assert set(first.quality.values()) == {"stale"}
    booted_table = booted()
    again = booted_table.report(1.0, force=True)
    assert again is not None and len(again.values) == len(IDS)


def test_disabled_points_are_neither_decoded_nor_reported() -> None:
    table = booted(disabled=["flag"])
    assert "flag" not in table.values() and "flag" not in table.point_ids
    table.apply_registers(HOLDING, 0, [1000, 30, 1, 0, 7, 0], IDS, 1.0)  # flag ignored
    assert table.report(1.0) is None
    report = table.report(2.0, force=True)
    assert report is not None and "flag" not in report.values
    table.mark_bad(["flag"], "whatever", 3.0)
    assert "flag" not in table.qualities()


# ---- counters -------------------------------------------------------------------------------

COUNTERS = profile([
    {"id": "n", "address": 0, "kind": "counter"},
    {"id": "kwh", "address": 1, "type": "u32", "kind": "counter", "scale": 0.1,
     "rollover": 1000},
    {"id": "f", "address": 3, "type": "f32", "kind": "counter"},
])


def feed(table: PointTable, now: float, n: int, kwh_raw: int = 0, f: float = 0.0) -> None:
    regs = [n, kwh_raw >> 16, kwh_raw & 0xFFFF,
            *encode_modbus(COUNTERS.points[2], f, byte_order=ByteOrder.ABCD, enums={})]
    table.apply_registers(HOLDING, 0, regs, ["n", "kwh", "f"], now)


@pytest.mark.parametrize(("readings", "increase", "events"), [
    ([10, 15, 15, 20], 10, []),
    ([65530, 5], 11, [("wrap", 65530, 5)]),
    ([5000, 10], 0, [("backwards", 5000, 10)]),
    ([65000, 100, 200], 736, [("wrap", 65000, 100)]),
    ([40000, 7232], 32768, [("wrap", 40000, 7232)]),  # exactly half the modulus: a wrap
    ([40000, 7233], 0, [("backwards", 40000, 7233)]),  # more than half: a meter swap
], ids=["increase", "wrap", "backwards", "wrap-then-increase", "wrap-at-half", "above-half"])
def test_counter_increase_across_wrap_and_backwards(
        readings: list[int], increase: int, events: list[tuple[str, int, int]]) -> None:
    table = PointTable(COUNTERS)
    for i, raw in enumerate(readings):
        feed(table, float(i), raw)
    assert table.values()["n"] == readings[-1]  # the engineering value stays as decoded
    status = table.counters()["n"]
    assert status.increase == increase
    assert status.went_backwards == any(kind == "backwards" for kind, _, _ in events)
    assert status.wraps == sum(kind == "wrap" for kind, _, _ in events)
    assert table.counter_events() == [CounterEvent("n", k, p, c) for k, p, c in events]  # type: ignore[arg-type]
    assert table.counter_events() == []


def test_scaled_counter_wraps_at_rollover_in_exact_decimals() -> None:
    table = PointTable(COUNTERS)
    feed(table, 0.0, 0, kwh_raw=998)
    feed(table, 1.0, 0, kwh_raw=2)
    assert table.values()["kwh"] == 0.2
    assert table.counters()["kwh"] == CounterStatus(increase=0.4, wraps=1, went_backwards=False)
    assert table.counter_events() == [CounterEvent("kwh", "wrap", 99.8, 0.2)]


def test_float_counter_without_rollover_never_wraps_and_stale_keeps_the_baseline() -> None:
    table = PointTable(COUNTERS)
    feed(table, 0.0, 0, f=10.5)
    table.mark_stale(1.0)
    feed(table, 2.0, 0, f=12.75)
    feed(table, 3.0, 0, f=1.0)
    assert table.counters()["f"] == CounterStatus(increase=2.25, wraps=0, went_backwards=True)
    assert table.counter_events() == [CounterEvent("f", "backwards", 12.75, 1.0)]
