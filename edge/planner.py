"""The Modbus read planner: which block reads fetch a device's points each cycle.

Pure functions, no I/O. :func:`plan_reads` groups points by (table, poll group),
sorts them by address and merges them greedily into :class:`ReadBlock` reads,
bounded by ``max_registers`` (``max_bits`` on coil/discrete tables), a gap limit,
the profile's ``forbidden`` ranges and the *holes* learnt at run time.

How the poller uses holes (single addresses that answered illegal-address)::

    block fails with illegal-address
      -> halves = split_block(block, points)          # read each half
         [] (one point, or bit-views of one register) -> that point goes bad;
             holes |= addresses_of(point)             # never merged across again
         a half fails      -> split that half again, until one point fails (above)
         both halves succeed -> the culprit lies in what the halves no longer read:
             holes |= holes_for(block, points) - reads_of(halves)
      -> the next plan_reads(..., holes=holes) keeps every hole out of merged spans

Every good point is still read in the cycle that learns (from the halves). When one
block hides several bad addresses, a cut gap next to a failing half cannot be judged
and is not remembered; the next cycle's plan fails there again and learns it. Each
failing merged block teaches at least one new hole, so the plan settles in a few
cycles; after that only the isolated bad points fail, one request each.

A point whose own registers are holes is left out of the plan: it stays ``bad``
and costs no request (clear the holes, e.g. on reconnect or reload, to try it
again). Event-log points are not planned here: the event-log reader fetches them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

from device_profiles.schema import ForbiddenRange, ModbusPoint, ModbusTable, PointKind

Cell = tuple[ModbusTable, int]
"""One address of one table: a register (holding/input) or a bit (coil/discrete)."""


@dataclass(frozen=True)
class ReadBlock:
    """One request: ``count`` registers (or bits) of ``table`` from ``address``."""

    table: ModbusTable
    address: int
    count: int
    points: tuple[str, ...]
    group: str

    def __post_init__(self) -> None:
        if self.count < 1 or self.address < 0 or self.address + self.count > 65536:
            raise ValueError(f"block {self.table} {self.address} x{self.count} is out of range")
        if not self.points:
            raise ValueError("a read block holds at least one point")

    @property
    def end(self) -> int:
        """The last address read (inclusive)."""
        return self.address + self.count - 1

    def cells(self) -> set[Cell]:
        """Every (table, address) this block reads."""
        return {(self.table, a) for a in range(self.address, self.end + 1)}


def addresses_of(point: ModbusPoint) -> set[Cell]:
    """The (table, address) cells a point reads: what to remember as holes when it fails."""
    return {(point.table, a) for a in range(point.address, point.address + point.width)}


def reads_of(blocks: Iterable[ReadBlock]) -> set[Cell]:
    """Every cell the given blocks read."""
    return {cell for block in blocks for cell in block.cells()}


def plan_reads(
    points: Sequence[ModbusPoint],
    *,
    poll_of: Callable[[ModbusPoint], str] | None = None,
    max_registers: int = 125,
    max_bits: int = 2000,
    max_gap: int = 10,
    forbidden: Sequence[ForbiddenRange] = (),
    holes: Collection[Cell] = (),
) -> list[ReadBlock]:
    """Block reads of the points, ordered by group, table, address.

    Every point is in exactly one block, except event-log points and points whose
    own registers are ``holes`` (both skipped). A point joins the block being built
    when the merged span stays within the limit, at most ``max_gap`` unread addresses
    lie between the block's end and the point, and the merged span reads no forbidden
    address and no hole. ValueError names a point that can never be read (wider than
    the limit, or inside a forbidden range): a configuration error.
    """
    if max_registers < 1 or max_bits < 1 or max_gap < 0:
        raise ValueError(f"limits must be positive: max_registers={max_registers}, "
                         f"max_bits={max_bits}, max_gap={max_gap}")
    group_of = poll_of or (lambda p: p.poll)
    banned = _Banned(forbidden, holes)
    groups: dict[tuple[str, ModbusTable], list[ModbusPoint]] = defaultdict(list)
    seen: set[str] = set()
    for point in points:
        if point.id in seen:
            raise ValueError(f"point {point.id!r} is given twice")
        seen.add(point.id)
        if point.kind is PointKind.EVENT_LOG:
            continue
        limit = max_bits if point.table.is_bit_table else max_registers
        unit = "bits" if point.table.is_bit_table else "registers"
        first, last = point.address, point.address + point.width - 1
        if point.width > limit:
            raise ValueError(f"point {point.id!r} spans {point.width} {unit} ({point.table} "
                             f"{first}-{last}); one read takes at most {limit}")
        if banned.forbidden(point.table, first, last):
            raise ValueError(f"point {point.id!r} ({point.table} {first}-{last}) lies in a "
                             "forbidden range and can never be read")
        if banned.hole(point.table, first, last):
            continue  # answered illegal-address on its own: not read again
        groups[(group_of(point), point.table)].append(point)

    blocks: list[ReadBlock] = []
    for (group, table), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        limit = max_bits if table.is_bit_table else max_registers
        blocks.extend(_merge(group, table, members, limit, max_gap, banned))
    return blocks


class _Banned:
    """Forbidden ranges and holes per table, answering 'does [lo, hi] touch any?'."""

    def __init__(self, forbidden: Sequence[ForbiddenRange], holes: Collection[Cell]) -> None:
        self._ranges: dict[ModbusTable, list[tuple[int, int]]] = defaultdict(list)
        for rng in forbidden:
            self._ranges[rng.table].append((rng.start, rng.end))
        by_table: dict[ModbusTable, set[int]] = defaultdict(set)
        for table, address in holes:
            by_table[ModbusTable(table)].add(address)
        self._holes = {table: sorted(addrs) for table, addrs in by_table.items()}

    def forbidden(self, table: ModbusTable, lo: int, hi: int) -> bool:
        return any(start <= hi and lo <= end for start, end in self._ranges.get(table, ()))

    def hole(self, table: ModbusTable, lo: int, hi: int) -> bool:
        addrs = self._holes.get(table)
        if not addrs:
            return False
        i = bisect_left(addrs, lo)
        return i < len(addrs) and addrs[i] <= hi

    def touches(self, table: ModbusTable, lo: int, hi: int) -> bool:
        return self.forbidden(table, lo, hi) or self.hole(table, lo, hi)


def _merge(group: str, table: ModbusTable, members: list[ModbusPoint], limit: int,
           max_gap: int, banned: _Banned) -> list[ReadBlock]:
    blocks: list[ReadBlock] = []
    start = end = -1
    ids: list[str] = []

    def close() -> None:
        if ids:
            blocks.append(ReadBlock(table, start, end - start + 1, tuple(ids), group))

    for point in sorted(members, key=lambda p: (p.address, p.width, p.id)):
        first, last = point.address, point.address + point.width - 1
        if ids and _joins(start, end, first, last, table, limit, max_gap, banned):
            end = max(end, last)
            ids.append(point.id)
            continue
        close()
        start, end, ids = first, last, [point.id]
    close()
    return blocks


def _joins(start: int, end: int, first: int, last: int, table: ModbusTable,
           limit: int, max_gap: int, banned: _Banned) -> bool:
    new_end = max(end, last)
    if new_end - start + 1 > limit or first - end - 1 > max_gap:
        return False
    return new_end == end or not banned.touches(table, end + 1, new_end)


def split_block(block: ReadBlock, points_by_id: Mapping[str, ModbusPoint]) -> list[ReadBlock]:
    """Two tighter blocks, cut at the point boundary nearest the middle of ``block``.

    Each half is re-tightened to the span of its own points, so the gap at the cut
    is no longer read. Returns [] when no cut exists: one point, bit-views of one
    register, or points that all overlap one another.
    """
    members = sorted(_points(block, points_by_id), key=lambda p: (p.address, p.width, p.id))
    middle = block.address + block.count / 2
    best: tuple[float, int] | None = None
    left_end = -1
    for i, point in enumerate(members):
        if i > 0 and left_end < point.address:
            score = abs((left_end + 1 + point.address) / 2 - middle)
            if best is None or score < best[0]:
                best = (score, i)
        left_end = max(left_end, point.address + point.width - 1)
    if best is None:
        return []
    cut = best[1]
    return [_tight(block, members[:cut]), _tight(block, members[cut:])]


def _tight(block: ReadBlock, members: Sequence[ModbusPoint]) -> ReadBlock:
    first = min(p.address for p in members)
    last = max(p.address + p.width - 1 for p in members)
    wanted = {p.id for p in members}
    ids = tuple(i for i in block.points if i in wanted)
    return ReadBlock(block.table, first, last - first + 1, ids, block.group)


def holes_for(block: ReadBlock, points_by_id: Mapping[str, ModbusPoint]) -> set[Cell]:
    """The addresses inside ``block`` that belong to no point (its gaps).

    These are the hole candidates when a merged block fails but every point in it
    reads on its own: subtract what the successful halves still read (see the
    module docstring) and remember the rest.
    """
    used: set[Cell] = set()
    for point in _points(block, points_by_id):
        used |= addresses_of(point)
    return block.cells() - used


def _points(block: ReadBlock, points_by_id: Mapping[str, ModbusPoint]) -> list[ModbusPoint]:
    found: list[ModbusPoint] = []
    for point_id in block.points:
        point = points_by_id.get(point_id)
        if point is None:
            raise ValueError(f"block {block.table} {block.address}-{block.end} names "
                             f"unknown point {point_id!r}")
        found.append(point)
    return found


class PlanStats(TypedDict):
    """Figures of one device's plan, per poll cycle (see :func:`plan_summary`)."""

    requests: int
    requests_per_group: dict[str, int]
    points: int
    points_per_group: dict[str, int]
    registers_read: int
    """Holding and input registers read per full cycle of every group."""
    bits_read: int
    """Coils and discrete inputs read per full cycle of every group."""
    points_per_request: float
    efficiency: float | None
    """Addresses that belong to a point / addresses read (None without ``points_by_id``)."""
    requests_per_second: float | None
    """At the intervals given (None without ``poll_groups``; unknown groups count 0)."""


def plan_summary(
    blocks: Sequence[ReadBlock],
    points_by_id: Mapping[str, ModbusPoint] | None = None,
    poll_groups: Mapping[str, float] | None = None,
) -> PlanStats:
    """Requests and points per group, addresses read, and how much of them is wanted."""
    requests: dict[str, int] = defaultdict(int)
    points: dict[str, int] = defaultdict(int)
    registers = bits = 0
    for block in blocks:
        requests[block.group] += 1
        points[block.group] += len(block.points)
        if block.table.is_bit_table:
            bits += block.count
        else:
            registers += block.count
    total_points = sum(points.values())
    efficiency: float | None = None
    if points_by_id is not None:
        unused = sum(len(holes_for(b, points_by_id)) for b in blocks)
        read = registers + bits
        efficiency = (read - unused) / read if read else 1.0
    rate: float | None = None
    if poll_groups is not None:
        rate = sum(n / poll_groups[g] for g, n in requests.items()
                   if poll_groups.get(g, 0) > 0)
    return PlanStats(
        requests=len(blocks),
        requests_per_group=dict(sorted(requests.items())),
        points=total_points,
        points_per_group=dict(sorted(points.items())),
        registers_read=registers,
        bits_read=bits,
        points_per_request=total_points / len(blocks) if blocks else 0.0,
        efficiency=efficiency,
        requests_per_second=rate,
    )
