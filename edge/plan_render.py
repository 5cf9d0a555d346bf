"""Plain-text rendering of a device's read plan, for ``towerwatch edge plan``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from device_profiles.render import table
from device_profiles.schema import ModbusProfile, PointKind
from edge.planner import ReadBlock, plan_summary

_SHOWN_IDS = 3
_HEADERS = ("group", "interval", "table", "addresses", "size", "points")


def render_plan(device_id: str, profile: ModbusProfile, blocks: Sequence[ReadBlock],
                poll_groups: Mapping[str, float]) -> str:
    """One device: a row per block read, then requests per cycle and per second.

    ``poll_groups`` are the intervals in force (the profile's, with the device's
    overrides applied); a group without an interval shows ``-`` and adds no rate.
    """
    points_by_id = {p.id: p for p in profile.points}
    stats = plan_summary(blocks, points_by_id, poll_groups)
    lines = [f"device {device_id}: profile {profile.id} {profile.version} "
             f"({profile.manufacturer} {profile.model})"]
    if blocks:
        rows = [[b.group, _interval(poll_groups.get(b.group)), b.table.value, _span(b),
                 _size(b), _ids(b.points)]
                for b in blocks]
        lines.append(table(_HEADERS, rows))
    else:
        lines.append("no block reads")
    for group, requests in stats["requests_per_group"].items():
        interval = poll_groups.get(group)
        rate = f"{requests / interval:.2f} requests/s" if interval else "no interval"
        points = stats["points_per_group"][group]
        lines.append(f"  {group}: {_count(requests, 'request')} of {_count(points, 'point')} "
                     f"every {_interval(interval)} = {rate}")
    efficiency = stats["efficiency"]
    read = [_count(stats["registers_read"], "register")]
    if stats["bits_read"]:
        read.append(_count(stats["bits_read"], "bit"))
    lines.append(
        f"total: {_count(stats['requests'], 'request')} per cycle of every group, "
        f"{stats['requests_per_second'] or 0.0:.2f} requests/s, "
        f"{stats['points_per_request']:.1f} points per request, "
        f"{' + '.join(read)} read, "
        f"efficiency {0.0 if efficiency is None else efficiency:.0%}")
    planned = {i for b in blocks for i in b.points}
    logs = [p for p in profile.points if p.kind is PointKind.EVENT_LOG]
    for point in logs:
        spec = point.event_log
        assert spec is not None
        lines.append(f"event log {point.id}: {point.table} {point.address}-"
                     f"{point.address + point.width - 1}, head {spec.head} "
                     "(read by the event-log reader)")
    left_out = [p.id for p in profile.points
                if p.id not in planned and p.kind is not PointKind.EVENT_LOG]
    if left_out:
        lines.append(f"not polled: {', '.join(left_out)}")
    return "\n".join(lines)


def _interval(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:g}s"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _size(block: ReadBlock) -> str:
    return _count(block.count, "bit" if block.table.is_bit_table else "register")


def _span(block: ReadBlock) -> str:
    return str(block.address) if block.count == 1 else f"{block.address}-{block.end}"


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    more = f", +{len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
    return f"{len(ids)}: {shown}{more}"
