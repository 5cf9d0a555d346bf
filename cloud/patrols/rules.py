"""What a visit to a checkpoint means on a round (pure functions, no database).

A route is a :class:`RoutePlan`; a tour's visits are :class:`Visit` records in the order
they happened. :func:`assess_visit` judges one new visit against the earlier ones
(duplicate, early, late, out of order, too fast); :func:`missing_stops` lists the stops a
closed tour did not visit.

Timing: a stop with ``offset_s`` is expected ``offset_s`` after the tour started, give or
take ``tolerance_s``. Plausibility: a leg shorter than the stop's ``min_leg_s``, or faster
than ``max_speed`` metres per second between checkpoints with known positions (great-circle
distance plus 4 m per floor), is too fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.patrols.model import ExceptionKind, RouteMode

__all__ = [
    "FLOOR_HEIGHT_M",
    "Finding",
    "RoutePlan",
    "Stop",
    "Visit",
    "assess_visit",
    "distance_m",
    "is_complete",
    "missing_stops",
]

FLOOR_HEIGHT_M: Final = 4.0
_EARTH_RADIUS_M: Final = 6_371_000.0


@dataclass(frozen=True, slots=True)
class Stop:
    checkpoint_id: int
    code: str
    position: int
    offset_s: int | None = None
    tolerance_s: int = 300
    min_leg_s: int | None = None
    required: bool = True
    lat: float | None = None
    lon: float | None = None
    floor: int | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    mode: RouteMode
    stops: tuple[Stop, ...]
    min_stops: int | None = None

    def stop_for(self, checkpoint_id: int) -> Stop | None:
        for stop in self.stops:
            if stop.checkpoint_id == checkpoint_id:
                return stop
        return None

    def needed(self) -> int:
        """How many visited stops make a complete round."""
        required = sum(1 for s in self.stops if s.required)
        if self.mode is RouteMode.PARTIAL and self.min_stops is not None:
            return min(self.min_stops, len(self.stops))
        return required


@dataclass(frozen=True, slots=True)
class Visit:
    checkpoint_id: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class Finding:
    kind: ExceptionKind
    detail: dict[str, Any] = field(default_factory=dict)


def distance_m(a: Stop, b: Stop) -> float | None:
    """Walking distance estimate between two stops, ``None`` without both positions."""
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    flat = 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    floors = abs((a.floor or 0) - (b.floor or 0))
    return flat + floors * FLOOR_HEIGHT_M


def _timing(stop: Stop, started_ms: int, at_ms: int) -> Finding | None:
    if stop.offset_s is None:
        return None
    deviation_s = (at_ms - started_ms) / 1000 - stop.offset_s
    detail = {"expected_offset_s": stop.offset_s, "deviation_s": round(deviation_s),
              "tolerance_s": stop.tolerance_s}
    if deviation_s < -stop.tolerance_s:
        return Finding(ExceptionKind.EARLY, detail)
    if deviation_s > stop.tolerance_s:
        return Finding(ExceptionKind.LATE, detail)
    return None


def _too_fast(plan: RoutePlan, stop: Stop, previous: Visit, at_ms: int,
              max_speed: float) -> Finding | None:
    prior = plan.stop_for(previous.checkpoint_id)
    elapsed_s = (at_ms - previous.at_ms) / 1000
    detail: dict[str, Any] = {"from": prior.code if prior else None, "elapsed_s": elapsed_s}
    if stop.min_leg_s is not None and elapsed_s < stop.min_leg_s:
        return Finding(ExceptionKind.TOO_FAST, {**detail, "min_leg_s": stop.min_leg_s})
    metres = distance_m(prior, stop) if prior is not None else None
    if metres is not None and metres > 0:
        speed = metres / elapsed_s if elapsed_s > 0 else math.inf
        if speed > max_speed:
            return Finding(ExceptionKind.TOO_FAST, {
                **detail, "distance_m": round(metres, 1),
                "speed_mps": None if math.isinf(speed) else round(speed, 2),
                "max_speed_mps": max_speed})
    return None


def assess_visit(
    plan: RoutePlan, started_ms: int, earlier: Sequence[Visit], visit: Visit,
    *, max_speed: float,
) -> list[Finding]:
    """Findings of ``visit`` after the ``earlier`` visits of a tour started at ``started_ms``.

    A repeated checkpoint is only a ``duplicate_scan`` (it does not count again). The
    visit's checkpoint must be on the route.
    """
    stop = plan.stop_for(visit.checkpoint_id)
    if stop is None:
        raise ValueError(f"checkpoint {visit.checkpoint_id} is not on the route")
    if any(v.checkpoint_id == visit.checkpoint_id for v in earlier):
        first = next(v for v in earlier if v.checkpoint_id == visit.checkpoint_id)
        return [Finding(ExceptionKind.DUPLICATE_SCAN, {"first_ms": first.at_ms})]
    findings: list[Finding] = []
    timing = _timing(stop, started_ms, visit.at_ms)
    if timing is not None:
        findings.append(timing)
    if plan.mode is RouteMode.ORDERED:
        ahead = [plan.stop_for(v.checkpoint_id) for v in earlier]
        passed = [s for s in ahead if s is not None and s.position > stop.position]
        if passed:
            findings.append(Finding(ExceptionKind.OUT_OF_ORDER, {
                "position": stop.position, "after": max(passed, key=lambda s: s.position).code}))
    if earlier:
        previous = max(earlier, key=lambda v: v.at_ms)
        fast = _too_fast(plan, stop, previous, visit.at_ms, max_speed)
        if fast is not None:
            findings.append(fast)
    return findings


def missing_stops(plan: RoutePlan, visited: set[int]) -> list[Stop]:
    """Stops a closed tour missed: unvisited required stops (partial routes: none when
    at least ``min_stops`` were visited)."""
    unvisited = [s for s in plan.stops if s.checkpoint_id not in visited]
    if plan.mode is RouteMode.PARTIAL and plan.min_stops is not None:
        seen = sum(1 for s in plan.stops if s.checkpoint_id in visited)
        return [] if seen >= plan.needed() else [s for s in unvisited if s.required]
    return [s for s in unvisited if s.required]


def is_complete(plan: RoutePlan, visited: set[int]) -> bool:
    """Whether every stop has been visited (a round can then close by itself)."""
    return all(s.checkpoint_id in visited for s in plan.stops)
