"""Routes and schedules in the store: create and replace them from checked specs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud.patrols.errors import PatrolConflict, PatrolInvalid, PatrolNotFound
from cloud.patrols.model import RouteMode
from cloud.patrols.schedule import PRESETS, check_recurrence
from cloud.patrols.tables import PatrolCheckpoint, PatrolRoute, PatrolRouteStop, PatrolSchedule

__all__ = ["RouteSpec", "ScheduleSpec", "StopSpec", "get_checkpoint", "put_route",
           "put_schedule", "route_stops"]


@dataclass(frozen=True, slots=True)
class StopSpec:
    checkpoint: str
    offset_s: int | None = None
    tolerance_s: int = 300
    min_leg_s: int | None = None
    required: bool = True


@dataclass(frozen=True, slots=True)
class RouteSpec:
    code: str
    name: str
    mode: RouteMode
    stops: list[StopSpec]
    min_stops: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    code: str
    name: str
    route: str
    preset: str | None = None
    recurrence: Mapping[str, Any] | None = None
    window_min: int | None = None
    grace_min: int | None = None
    duration_min: int | None = None
    guard: str | None = None
    active: bool = True


def get_checkpoint(session: Session, site: str, code: str) -> PatrolCheckpoint:
    row = session.scalar(select(PatrolCheckpoint).where(
        PatrolCheckpoint.site_id == site, PatrolCheckpoint.code == code))
    if row is None:
        raise PatrolNotFound("checkpoint", code)
    return row


def _route(session: Session, site: str, code: str) -> PatrolRoute | None:
    return session.scalar(select(PatrolRoute).where(
        PatrolRoute.site_id == site, PatrolRoute.code == code))


def route_stops(session: Session, route_id: int) -> list[tuple[PatrolRouteStop, PatrolCheckpoint]]:
    rows = session.execute(
        select(PatrolRouteStop, PatrolCheckpoint)
        .join(PatrolCheckpoint, PatrolCheckpoint.id == PatrolRouteStop.checkpoint_id)
        .where(PatrolRouteStop.route_id == route_id).order_by(PatrolRouteStop.position))
    return [(stop, checkpoint) for stop, checkpoint in rows.all()]


def put_route(session: Session, site: str, spec: RouteSpec, now_ms: int, *,
              create: bool) -> PatrolRoute:
    """Create a route (``create``) or replace an existing one's name, mode and stops."""
    codes = [s.checkpoint for s in spec.stops]
    if len(set(codes)) != len(codes):
        raise PatrolInvalid("stops", "a checkpoint appears twice")
    if spec.min_stops is not None and (spec.mode is not RouteMode.PARTIAL
                                       or spec.min_stops > len(codes)):
        raise PatrolInvalid("min_stops", "only for partial routes, at most the number of stops")
    checkpoints = []
    for index, stop in enumerate(spec.stops):
        found = session.scalar(select(PatrolCheckpoint).where(
            PatrolCheckpoint.site_id == site, PatrolCheckpoint.code == stop.checkpoint))
        if found is None:
            raise PatrolInvalid(f"stops[{index}].checkpoint", f"no checkpoint {stop.checkpoint!r}")
        checkpoints.append(found)
    route = _route(session, site, spec.code)
    if create and route is not None:
        raise PatrolConflict(f"route {spec.code!r} already exists")
    if not create and route is None:
        raise PatrolNotFound("route", spec.code)
    if route is None:
        route = PatrolRoute(site_id=site, code=spec.code, active=True, created_ms=now_ms)
        session.add(route)
    route.name, route.mode, route.min_stops = spec.name, spec.mode.value, spec.min_stops
    session.flush()
    session.execute(delete(PatrolRouteStop).where(PatrolRouteStop.route_id == route.id))
    for position, (stop, checkpoint) in enumerate(zip(spec.stops, checkpoints, strict=True), 1):
        session.add(PatrolRouteStop(
            route_id=route.id, position=position, checkpoint_id=checkpoint.id,
            offset_s=stop.offset_s, tolerance_s=stop.tolerance_s, min_leg_s=stop.min_leg_s,
            required=stop.required))
    session.flush()
    return route


def put_schedule(session: Session, site: str, spec: ScheduleSpec, now_ms: int, *,
                 create: bool) -> PatrolSchedule:
    """Create or replace a schedule; unset fields come from ``spec.preset``."""
    preset = PRESETS.get(spec.preset or "")
    if spec.preset is not None and preset is None:
        raise PatrolInvalid("preset", f"unknown preset {spec.preset!r}")
    recurrence = spec.recurrence or (preset.recurrence if preset else None)
    if recurrence is None:
        raise PatrolInvalid("recurrence", "required (or a preset)")
    try:
        checked = check_recurrence(recurrence)
    except ValueError as exc:
        raise PatrolInvalid("recurrence", str(exc)) from None
    route = _route(session, site, spec.route)
    if route is None:
        raise PatrolInvalid("route", f"no route {spec.route!r}")
    row = session.scalar(select(PatrolSchedule).where(
        PatrolSchedule.site_id == site, PatrolSchedule.code == spec.code))
    if create and row is not None:
        raise PatrolConflict(f"schedule {spec.code!r} already exists")
    if not create and row is None:
        raise PatrolNotFound("schedule", spec.code)
    if row is None:
        row = PatrolSchedule(site_id=site, code=spec.code, created_ms=now_ms)
        session.add(row)

    def pick(value: int | None, default: int | None, name: str) -> int:
        chosen = value if value is not None else default
        if chosen is None:
            raise PatrolInvalid(name, "required (or a preset)")
        return chosen

    row.name, row.route_id, row.recurrence = spec.name, route.id, checked
    row.window_min = pick(spec.window_min, preset.window_min if preset else None, "window_min")
    row.grace_min = pick(spec.grace_min, preset.grace_min if preset else None, "grace_min")
    row.duration_min = pick(spec.duration_min, preset.duration_min if preset else None,
                            "duration_min")
    row.guard, row.active = spec.guard, spec.active
    if not create:
        row.planned_until_ms = max(row.planned_until_ms or now_ms, now_ms)
    session.flush()
    return row
