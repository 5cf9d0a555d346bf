"""The Modbus read planner: tables of point maps and the block reads they must give."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.loader import load_profiles
from device_profiles.schema import (
    EventField,
    EventLogSpec,
    ForbiddenRange,
    LocalizedText,
    ModbusPoint,
    ModbusProfile,
    ModbusTable,
    ModbusType,
    PointKind,
)
from edge.plan_render import render_plan
from edge.planner import (
    ReadBlock,
    addresses_of,
    holes_for,
    plan_reads,
    plan_summary,
    reads_of,
    split_block,
)

H, IR, C, D = ModbusTable.HOLDING, ModbusTable.INPUT, ModbusTable.COIL, ModbusTable.DISCRETE
_TYPES = {1: ModbusType.U16, 2: ModbusType.U32, 4: ModbusType.F64}


def pt(point_id: str, address: int, width: int = 1, *, table: ModbusTable = H,
       poll: str = "normal", bit: int | None = None, string: bool = False) -> ModbusPoint:
    """A point of ``width`` registers (u16/u32/f64, or a string of that many registers)."""
    fields: dict[str, Any] = {"id": point_id, "name": LocalizedText(en=point_id, zh=point_id),
                              "table": table, "address": address, "poll": poll}
    if table.is_bit_table:
        fields.update(type=ModbusType.BOOL, kind=PointKind.BOOL)
    elif string:
        fields.update(type=ModbusType.STRING, kind=PointKind.TEXT, count=width)
    elif bit is not None:
        fields.update(type=ModbusType.U16, kind=PointKind.BOOL, bit=bit)
    else:
        fields.update(type=_TYPES[width])
    return ModbusPoint(**fields)


def event_log(point_id: str, address: int, head: int) -> ModbusPoint:
    spec = EventLogSpec(head=head, capacity=4, record_size=2,
                        fields=[EventField(id="seq", offset=0, type=ModbusType.U32)])
    return ModbusPoint(id=point_id, name=LocalizedText(en=point_id, zh=point_id), table=IR,
                       address=address, kind=PointKind.EVENT_LOG, event_log=spec)


def forbid(start: int, end: int, table: ModbusTable = H) -> ForbiddenRange:
    return ForbiddenRange(table=table, start=start, end=end)


Expected = list[tuple[str, ModbusTable, int, int, tuple[str, ...]]]


def shape(blocks: Sequence[ReadBlock]) -> Expected:
    return [(b.group, b.table, b.address, b.count, b.points) for b in blocks]


PLAN_CASES: list[tuple[str, list[ModbusPoint], dict[str, Any], Expected]] = [
    ("gap-under-max-gap", [pt("a", 0), pt("b", 11)], {},
     [("normal", H, 0, 12, ("a", "b"))]),
    ("gap-over-max-gap", [pt("a", 0), pt("b", 12)], {},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 12, 1, ("b",))]),
    ("max-gap-zero-adjacent", [pt("a", 0), pt("b", 1)], {"max_gap": 0},
     [("normal", H, 0, 2, ("a", "b"))]),
    ("max-gap-zero-one-apart", [pt("a", 0), pt("b", 2)], {"max_gap": 0},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 2, 1, ("b",))]),
    ("exactly-125", [pt("a", 0), pt("b", 124)], {"max_gap": 125},
     [("normal", H, 0, 125, ("a", "b"))]),
    ("126-splits", [pt("a", 0), pt("b", 125)], {"max_gap": 125},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 125, 1, ("b",))]),
    ("low-max-registers", [pt("a", 0), pt("b", 1), pt("c", 2), pt("d", 3)], {"max_registers": 2},
     [("normal", H, 0, 2, ("a", "b")), ("normal", H, 2, 2, ("c", "d"))]),
    ("u32-fits-at-the-end", [pt("a", 0), pt("b", 123, 2)], {"max_gap": 125},
     [("normal", H, 0, 125, ("a", "b"))]),
    ("u32-never-cut", [pt("a", 0), pt("b", 124, 2)], {"max_gap": 125},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 124, 2, ("b",))]),
    ("f64-never-cut", [pt("a", 0, 2), pt("b", 2, 4)], {"max_registers": 5},
     [("normal", H, 0, 2, ("a",)), ("normal", H, 2, 4, ("b",))]),
    ("forbidden-in-gap", [pt("a", 0), pt("b", 6)], {"forbidden": [forbid(3, 4)]},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 6, 1, ("b",))]),
    ("forbidden-stop-before-resume-after",
     [pt("a", 0), pt("b", 1), pt("c", 2), pt("d", 5), pt("e", 6)], {"forbidden": [forbid(3, 4)]},
     [("normal", H, 0, 3, ("a", "b", "c")), ("normal", H, 5, 2, ("d", "e"))]),
    ("forbidden-other-table", [pt("a", 0), pt("b", 6)], {"forbidden": [forbid(3, 4, IR)]},
     [("normal", H, 0, 7, ("a", "b"))]),
    ("hole-in-gap", [pt("a", 0), pt("b", 5)], {"holes": {(H, 3)}},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 5, 1, ("b",))]),
    ("hole-other-table", [pt("a", 0), pt("b", 5)], {"holes": {(IR, 3)}},
     [("normal", H, 0, 6, ("a", "b"))]),
    ("hole-on-a-point-skips-it", [pt("a", 0), pt("b", 1, 2), pt("c", 3)],
     {"holes": {(H, 2)}},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 3, 1, ("c",))]),
    ("hole-on-bit-views-skips-them",
     [pt("a", 0), pt("b0", 1, bit=0), pt("b1", 1, bit=1), pt("c", 2)], {"holes": {(H, 1)}},
     [("normal", H, 0, 1, ("a",)), ("normal", H, 2, 1, ("c",))]),
    ("bit-views-share-a-register",
     [pt("s2", 5, bit=2), pt("s0", 5, bit=0), pt("s1", 5, bit=1), pt("n", 6)], {},
     [("normal", H, 5, 2, ("s0", "s1", "s2", "n"))]),
    ("coils-merge-in-bits", [pt("a", 0, table=C), pt("b", 200, table=C)],
     {"max_registers": 10, "max_gap": 300},
     [("normal", C, 0, 201, ("a", "b"))]),
    ("coils-2000-bits", [pt("a", 0, table=C), pt("b", 1999, table=C)], {"max_gap": 2000},
     [("normal", C, 0, 2000, ("a", "b"))]),
    ("coils-2001-bits-split", [pt("a", 0, table=C), pt("b", 2000, table=C)], {"max_gap": 2000},
     [("normal", C, 0, 1, ("a",)), ("normal", C, 2000, 1, ("b",))]),
    ("discrete-max-bits", [pt("a", 0, table=D), pt("b", 3, table=D)], {"max_bits": 3},
     [("normal", D, 0, 1, ("a",)), ("normal", D, 3, 1, ("b",))]),
    ("poll-groups-never-merged", [pt("a", 0, poll="normal"), pt("b", 1, poll="fast")], {},
     [("fast", H, 1, 1, ("b",)), ("normal", H, 0, 1, ("a",))]),
    ("poll-of-overrides-groups", [pt("a", 0, poll="normal"), pt("b", 1, poll="fast")],
     {"poll_of": lambda p: "all"}, [("all", H, 0, 2, ("a", "b"))]),
    ("tables-never-merged", [pt("a", 0, table=IR), pt("b", 1), pt("c", 2, table=C)], {},
     [("normal", C, 2, 1, ("c",)), ("normal", H, 1, 1, ("b",)), ("normal", IR, 0, 1, ("a",))]),
    ("event-log-skipped", [pt("a", 0, table=IR), event_log("log", 2, head=1)], {},
     [("normal", IR, 0, 1, ("a",))]),
    ("only-event-log", [event_log("log", 100, head=10)], {}, []),
    ("order-group-table-address",
     [pt("z", 50, poll="slow"), pt("y", 0, poll="slow"), pt("x", 30, table=IR, poll="fast"),
      pt("w", 9, table=IR, poll="fast")], {},
     [("fast", IR, 9, 1, ("w",)), ("fast", IR, 30, 1, ("x",)),
      ("slow", H, 0, 1, ("y",)), ("slow", H, 50, 1, ("z",))]),
]


@pytest.mark.parametrize(("points", "options", "expected"),
                         [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_plan_reads(points: list[ModbusPoint], options: dict[str, Any],
                    expected: Expected) -> None:
    assert shape(plan_reads(points, **options)) == expected


@pytest.mark.parametrize(("points", "options", "message"), [
    ([pt("serial", 0, 10, string=True)], {"max_registers": 8}, "'serial' spans 10 registers"),
    ([pt("a", 0), pt("a", 1)], {}, "'a' is given twice"),
    ([pt("a", 4)], {"forbidden": [forbid(3, 5)]}, "'a'.*forbidden"),
    ([pt("a", 0)], {"max_registers": 0}, "limits"),
    ([pt("a", 0)], {"max_gap": -1}, "limits"),
], ids=["wider-than-limit", "duplicate-id", "inside-forbidden", "zero-limit", "negative-gap"])
def test_plan_reads_refuses(points: list[ModbusPoint], options: dict[str, Any],
                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_reads(points, **options)


def block_of(points: Sequence[ModbusPoint], group: str = "normal") -> ReadBlock:
    first = min(p.address for p in points)
    last = max(p.address + p.width - 1 for p in points)
    return ReadBlock(points[0].table, first, last - first + 1, tuple(p.id for p in points), group)


SPLIT_CASES: list[tuple[str, list[ModbusPoint], list[tuple[int, int, tuple[str, ...]]]]] = [
    ("four-even", [pt("a", 0), pt("b", 1), pt("c", 2), pt("d", 3)],
     [(0, 2, ("a", "b")), (2, 2, ("c", "d"))]),
    ("cut-in-the-widest-gap-near-middle", [pt("a", 0), pt("b", 50), pt("c", 51), pt("d", 52)],
     [(0, 1, ("a",)), (50, 3, ("b", "c", "d"))]),
    ("tightened-both-sides", [pt("a", 0), pt("b", 2), pt("c", 8), pt("d", 10)],
     [(0, 3, ("a", "b")), (8, 3, ("c", "d"))]),
    ("u32-kept-whole", [pt("a", 0, 2), pt("b", 2)], [(0, 2, ("a",)), (2, 1, ("b",))]),
    ("bit-views-stay-together", [pt("s0", 5, bit=0), pt("s1", 5, bit=1), pt("n", 6)],
     [(5, 1, ("s0", "s1")), (6, 1, ("n",))]),
    ("single-point", [pt("a", 7, 4)], []),
    ("bit-views-of-one-register", [pt("s0", 5, bit=0), pt("s1", 5, bit=1)], []),
    ("coils", [pt("a", 0, table=C), pt("b", 9, table=C), pt("c", 10, table=C)],
     [(0, 1, ("a",)), (9, 2, ("b", "c"))]),
]


@pytest.mark.parametrize(("points", "expected"), [c[1:] for c in SPLIT_CASES],
                         ids=[c[0] for c in SPLIT_CASES])
def test_split_block(points: list[ModbusPoint],
                     expected: list[tuple[int, int, tuple[str, ...]]]) -> None:
    block = block_of(points, group="fast")
    halves = split_block(block, {p.id: p for p in points})
    assert [(h.address, h.count, h.points) for h in halves] == expected
    assert all((h.table, h.group) == (block.table, "fast") for h in halves)


def test_split_block_names_an_unknown_point() -> None:
    block = ReadBlock(H, 0, 2, ("a", "ghost"), "normal")
    with pytest.raises(ValueError, match="'ghost'"):
        split_block(block, {"a": pt("a", 0)})


@pytest.mark.parametrize(("points", "span", "expected"), [
    ([pt("a", 0, 2), pt("b", 5), pt("c", 9)], (0, 10), {2, 3, 4, 6, 7, 8}),
    ([pt("a", 0), pt("b", 1)], (0, 2), set()),
    ([pt("s0", 3, bit=0), pt("s1", 3, bit=1), pt("n", 5)], (3, 3), {4}),
], ids=["gaps", "no-gap", "bit-views"])
def test_holes_for(points: list[ModbusPoint], span: tuple[int, int], expected: set[int]) -> None:
    block = ReadBlock(H, span[0], span[1], tuple(p.id for p in points), "normal")
    assert holes_for(block, {p.id: p for p in points}) == {(H, a) for a in expected}


def test_read_block_checks_itself() -> None:
    with pytest.raises(ValueError, match="out of range"):
        ReadBlock(H, 65535, 2, ("a",), "normal")
    with pytest.raises(ValueError, match="at least one point"):
        ReadBlock(H, 0, 1, (), "normal")
    assert ReadBlock(H, 10, 3, ("a",), "normal").end == 12


class MapDevice:
    """A device whose register map refuses reads touching ``illegal`` (illegal address)."""

    def __init__(self, illegal: set[tuple[ModbusTable, int]]) -> None:
        self.illegal = illegal
        self.requests = 0

    def read(self, block: ReadBlock) -> bool:
        self.requests += 1
        return not block.cells() & self.illegal


def poll_and_learn(device: MapDevice, blocks: list[ReadBlock],
                   points: dict[str, ModbusPoint],
                   holes: set[tuple[ModbusTable, int]]) -> tuple[set[str], set[str]]:
    """The caller's protocol from the planner docstring: split, narrow, remember holes."""
    good: set[str] = set()
    bad: set[str] = set()
    work = list(blocks)
    while work:
        block = work.pop()
        if device.read(block):
            good.update(block.points)
            continue
        halves = split_block(block, points)
        if not halves:
            bad.update(block.points)
            for point_id in block.points:
                holes |= addresses_of(points[point_id])
            continue
        if all(device.read(h) for h in halves):
            holes |= holes_for(block, points) - reads_of(halves)
        work.extend(halves)
    return good, bad


@pytest.mark.parametrize(("illegal", "bad", "cycles"), [
    ({5}, set(), 1),           # a gap register of the merged block
    ({12}, {"c"}, 1),          # a point's own register
    ({5, 12, 30}, {"c"}, 2),   # the cut gap next to a failing half is only learnt next cycle
    ({0, 32}, {"a", "f"}, 1),  # both ends
], ids=["gap", "point", "mixed", "both-ends"])
def test_holes_learnt_keep_the_next_plan_clean(illegal: set[int], bad: set[str],
                                               cycles: int) -> None:
    points = {p.id: p for p in [pt("a", 0, 2), pt("b", 8), pt("c", 11, 2), pt("d", 20),
                                pt("e", 28), pt("f", 32)]}
    device = MapDevice({(H, a) for a in illegal})
    holes: set[tuple[ModbusTable, int]] = set()
    blocks = plan_reads(list(points.values()), max_gap=10)
    assert len(blocks) == 1
    learning, found_bad = 0, set()
    for _ in range(10):
        known = set(holes)
        good, bad_now = poll_and_learn(device, blocks, points, holes)
        assert good == set(points) - bad  # every cycle reads every good point
        found_bad |= bad_now
        blocks = plan_reads(list(points.values()), max_gap=10, holes=holes)
        if holes == known:
            break
        learning += 1
    assert (learning, found_bad) == (cycles, bad)
    assert holes >= device.illegal
    assert all(device.read(b) for b in blocks)  # settled: no request fails any more
    assert {i for b in blocks for i in b.points} == set(points) - bad


def test_plan_summary() -> None:
    points = [pt("a", 0, 2), pt("b", 4), pt("c", 0, table=C), pt("d", 3, table=C),
              pt("e", 0, poll="fast"), pt("f", 1, poll="fast")]
    blocks = plan_reads(points)
    stats = plan_summary(blocks, {p.id: p for p in points}, {"fast": 0.5, "normal": 10.0})
    assert stats["requests"] == 3
    assert stats["requests_per_group"] == {"fast": 1, "normal": 2}
    assert stats["points_per_group"] == {"fast": 2, "normal": 4}
    assert (stats["registers_read"], stats["bits_read"]) == (2 + 5, 4)
    assert stats["points_per_request"] == pytest.approx(2.0)
    assert stats["efficiency"] == pytest.approx((2 + 3 + 2) / 11)
    assert stats["requests_per_second"] == pytest.approx(1 / 0.5 + 2 / 10)
    bare = plan_summary(blocks)
    assert (bare["efficiency"], bare["requests_per_second"]) == (None, None)
    empty = plan_summary([], {}, {})
    assert (empty["requests"], empty["points_per_request"], empty["efficiency"]) == (0, 0.0, 1.0)


# --- properties -------------------------------------------------------------------------

POINT_SPECS = st.lists(
    st.tuples(st.sampled_from([H, IR, C]), st.sampled_from([1, 2, 4]), st.integers(0, 30),
              st.sampled_from(["fast", "slow"]), st.booleans()),
    min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(specs=POINT_SPECS, max_registers=st.integers(4, 125), max_bits=st.integers(1, 2000),
       max_gap=st.integers(0, 20), data=st.data())
def test_plans_respect_every_bound(specs: list[tuple[ModbusTable, int, int, str, bool]],
                                   max_registers: int, max_bits: int, max_gap: int,
                                   data: st.DataObject) -> None:
    cursor = {H: 0, IR: 0, C: 0}
    points: list[ModbusPoint] = []
    for n, (table, width, gap, group, bit_views) in enumerate(specs):
        width = 1 if table is C else width
        address = cursor[table] + gap
        if bit_views and table is not C:
            points += [pt(f"p{n}b{b}", address, table=table, poll=group, bit=b) for b in (0, 3)]
            width = 1
        else:
            points.append(pt(f"p{n}", address, width, table=table, poll=group))
        cursor[table] = address + width
    points.append(event_log("log", 60000, head=59990))
    used = {cell for p in points if p.kind is not PointKind.EVENT_LOG for cell in addresses_of(p)}
    free = sorted({(t, a) for t in (H, IR, C) for a in range(cursor[t] + 5)} - used)
    forbidden_cells = data.draw(st.sets(st.sampled_from(free), max_size=6)) if free else set()
    forbidden = [forbid(a, a, t) for t, a in sorted(forbidden_cells)]
    hole_pool = sorted(used) + free
    holes = data.draw(st.sets(st.sampled_from(hole_pool), max_size=6))

    blocks = plan_reads(points, max_registers=max_registers, max_bits=max_bits,
                        max_gap=max_gap, forbidden=forbidden, holes=holes)

    by_id = {p.id: p for p in points}
    placed = [i for b in blocks for i in b.points]
    readable = [p.id for p in points
                if p.kind is not PointKind.EVENT_LOG and not addresses_of(p) & holes]
    assert sorted(placed) == sorted(readable)
    assert blocks == sorted(blocks, key=lambda b: (b.group, b.table.value, b.address))
    for block in blocks:
        assert block.count <= (max_bits if block.table.is_bit_table else max_registers)
        assert not block.cells() & forbidden_cells
        assert not block.cells() & holes
        members = [by_id[i] for i in block.points]
        for point in members:
            assert (point.table, point.poll) == (block.table, block.group)
            assert block.address <= point.address and point.address + point.width - 1 <= block.end
        assert block.address == min(p.address for p in members)
        assert block.end == max(p.address + p.width - 1 for p in members)
        halves = split_block(block, by_id)
        if halves:
            assert sorted(halves[0].points + halves[1].points) == sorted(block.points)
            assert halves[0].end < halves[1].address
            assert block.address <= halves[0].address and halves[1].end <= block.end
        else:
            assert len({(p.address, p.width) for p in members}) == 1


# --- shipped profiles -------------------------------------------------------------------

def _shipped_modbus() -> list[ModbusProfile]:
    return [p for p in (load_profiles().get(i) for i in load_profiles().ids())
            if isinstance(p, ModbusProfile)]


SHIPPED = _shipped_modbus()


@pytest.mark.parametrize("profile", SHIPPED, ids=[p.id for p in SHIPPED])
def test_every_shipped_profile_plans_within_its_limits(profile: ModbusProfile) -> None:
    limits = profile.limits
    blocks = plan_reads(profile.points, max_registers=limits.max_registers,
                        max_bits=limits.max_bits, max_gap=limits.max_gap,
                        forbidden=limits.forbidden)
    by_id = {p.id: p for p in profile.points}
    planned = [i for b in blocks for i in b.points]
    assert sorted(planned) == sorted(p.id for p in profile.points
                                     if p.kind is not PointKind.EVENT_LOG)
    banned = {(r.table, a) for r in limits.forbidden for a in range(r.start, r.end + 1)}
    for block in blocks:
        assert block.count <= (limits.max_bits if block.table.is_bit_table
                               else limits.max_registers)
        assert not block.cells() & banned
        assert all(addresses_of(by_id[i]) <= block.cells() for i in block.points)
    assert len(blocks) < len(planned)  # merging happened
    text = render_plan("dev-1", profile, blocks, profile.poll_groups)
    assert text.isascii()
    assert f"total: {len(blocks)} requests per cycle" in text


def test_device_max_registers_below_a_string_names_it() -> None:
    meter = load_profiles().get("water-meter-modbus")
    assert isinstance(meter, ModbusProfile)
    with pytest.raises(ValueError, match="'meter_serial' spans 6 registers"):
        plan_reads(meter.points, max_registers=5)


# --- rendering --------------------------------------------------------------------------

def test_render_plan_rows_and_totals() -> None:
    door = load_profiles().get("door-controller-modbus")
    assert isinstance(door, ModbusProfile)
    limits = door.limits
    points = [p for p in door.points if p.id != "door_count"]  # as if disabled by the site
    blocks = plan_reads(points, max_registers=limits.max_registers, max_gap=limits.max_gap,
                        forbidden=limits.forbidden)
    text = render_plan("door-lobby", door, blocks, {"fast": 2.0, "normal": 5.0, "slow": 60.0})
    lines = text.splitlines()
    assert lines[0].startswith("device door-lobby: profile door-controller-modbus")
    assert lines[1].split() == ["group", "interval", "table", "addresses", "size", "points"]
    assert any(line.split()[:6] == ["fast", "2s", "input", "0", "1", "register"]
               for line in lines)
    fast = [b for b in blocks if b.group == "fast"]
    assert f"  fast: {len(fast)} requests of" in text
    assert f"every 2s = {len(fast) / 2:.2f} requests/s" in text
    assert "event log events: input 1100-1739, head 1000" in text
    assert "not polled: door_count" in text
    assert "+" in text and "more" in text  # long point lists are shortened


def test_render_plan_without_blocks_or_interval() -> None:
    profile = ModbusProfile(id="tiny", version="1", manufacturer="M", model="X",
                            equipment="Pump", protocol="modbus",
                            points=[pt("a", 0, poll="odd")])
    assert "no block reads" in render_plan("d", profile, [], {})
    text = render_plan("d", profile, plan_reads(profile.points), {})
    assert ["odd", "-", "holding", "0", "1", "register", "1:", "a"] in [
        line.split() for line in text.splitlines()]
    assert "odd: 1 request of 1 point every - = no interval" in text
    assert "0.00 requests/s" in text
