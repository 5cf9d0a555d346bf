"""Tours: planning from schedules, starting, closing, reconciling, and the sweep (taps are
joined to rounds by :mod:`cloud.patrols.matching`).

Times of a tour (all UTC ms; windows come from its schedule when it was planned):

- on time if started within ``window`` after ``scheduled`` (or up to ``window`` before);
- started later but within ``window + grace``: a ``late`` start;
- not started by ``scheduled + window + grace``: ``missed`` (exception ``tour_not_started``);
- due ``duration + grace`` after its start; an open round past due is ``tour_overdue``
  and is closed, unvisited stops becoming ``missed_checkpoint``.

A round closes by itself when every stop is visited: ``completed``, or
``completed_with_exceptions`` when it has open exceptions. Scans uploaded late (offline
batches) still join the round their device time falls in, even a closed one: the round
is reconciled, and exceptions the new scans disprove are withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db.models import Site
from cloud.patrols.catalog import route_stops
from cloud.patrols.errors import PatrolConflict, PatrolInvalid, PatrolNotFound
from cloud.patrols.findings import Subject, raise_exception, withdraw
from cloud.patrols.model import (
    ExceptionKind,
    ExceptionStatus,
    RouteMode,
    ScanResult,
    TourStatus,
)
from cloud.patrols.rules import RoutePlan, Stop, Visit, missing_stops
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.schedule import slots
from cloud.patrols.tables import (
    PatrolCheckpoint,
    PatrolException,
    PatrolRoute,
    PatrolScan,
    PatrolSchedule,
    PatrolTour,
)

__all__ = [
    "MATCHABLE_CLOSED",
    "SweepResult",
    "abandon_tour",
    "close_tour",
    "finish_tour",
    "get_tour",
    "load_plan",
    "plan_tours",
    "reconcile",
    "start_tour",
    "sweep",
    "visits",
]

MAX_BACKFILL_MS: Final = 7 * 86_400_000
"""Planning never reaches further back than this (a long outage)."""
MATCHABLE_CLOSED: Final = (TourStatus.MISSED.value, TourStatus.COMPLETED_WITH_EXCEPTIONS.value)
"""Closed rounds a late (offline) tap may still join."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    planned: int
    missed: int
    overdue: int


def start_by_ms(tour: PatrolTour) -> int:
    return tour.scheduled_ms + tour.window_ms + tour.grace_ms


def due_ms(tour: PatrolTour) -> int:
    start = tour.started_ms if tour.started_ms is not None else start_by_ms(tour)
    return start + tour.duration_ms + tour.grace_ms


def load_plan(session: Session, route_id: int) -> RoutePlan:
    route = session.get(PatrolRoute, route_id)
    if route is None:
        raise PatrolNotFound("route", route_id)
    rows = route_stops(session, route_id)
    stops = tuple(Stop(checkpoint_id=cp.id, code=cp.code, position=st.position,
                       offset_s=st.offset_s, tolerance_s=st.tolerance_s, min_leg_s=st.min_leg_s,
                       required=st.required, lat=cp.lat, lon=cp.lon, floor=cp.floor)
                  for st, cp in rows)
    return RoutePlan(RouteMode(route.mode), stops, route.min_stops)


def get_tour(session: Session, site: str, tour_id: int) -> PatrolTour:
    tour = session.get(PatrolTour, tour_id)
    if tour is None or tour.site_id != site:
        raise PatrolNotFound("tour", tour_id)
    return tour


def visits(session: Session, tour_id: int) -> list[Visit]:
    """Accepted visits of a tour, in the order they happened."""
    rows = session.execute(
        select(PatrolScan.checkpoint_id, PatrolScan.event_ms)
        .where(PatrolScan.tour_id == tour_id, PatrolScan.result == ScanResult.ACCEPTED.value)
        .order_by(PatrolScan.event_ms, PatrolScan.id)).all()
    return [Visit(cp, at) for cp, at in rows if cp is not None]


# -- planning -------------------------------------------------------------------------
def plan_tours(session: Session, site: Site, now_ms: int, horizon_ms: int) -> int:
    """Create the tours of ``site``'s active schedules up to ``now + horizon``."""
    created = 0
    schedules = session.scalars(select(PatrolSchedule).where(
        PatrolSchedule.site_id == site.id, PatrolSchedule.active.is_(True))
        .with_for_update()).all()
    end = now_ms + horizon_ms
    for schedule in schedules:
        begin = max(schedule.planned_until_ms or schedule.created_ms, now_ms - MAX_BACKFILL_MS)
        if begin >= end:
            continue
        known = set(session.scalars(select(PatrolTour.scheduled_ms).where(
            PatrolTour.schedule_id == schedule.id, PatrolTour.scheduled_ms >= begin)))
        for at in slots(schedule.recurrence, site.timezone, begin, end):
            if at in known:
                continue
            session.add(PatrolTour(
                site_id=site.id, route_id=schedule.route_id, schedule_id=schedule.id,
                scheduled_ms=at, window_ms=schedule.window_min * 60_000,
                grace_ms=schedule.grace_min * 60_000,
                duration_ms=schedule.duration_min * 60_000, guard=schedule.guard,
                status=TourStatus.SCHEDULED.value, created_ms=now_ms))
            created += 1
        schedule.planned_until_ms = end
    session.flush()
    return created


# -- lifecycle ------------------------------------------------------------------------
def start_tour(session: Session, rt: PatrolRuntime, tour: PatrolTour, *, guard: str,
               at_ms: int, now_ms: int) -> None:
    """Start a scheduled tour at ``at_ms`` (a ``late`` start past its window)."""
    if tour.status != TourStatus.SCHEDULED:
        raise PatrolConflict(f"tour {tour.id} is {tour.status}, not scheduled")
    tour.status, tour.started_ms, tour.guard = TourStatus.IN_PROGRESS.value, at_ms, guard
    late_ms = at_ms - (tour.scheduled_ms + tour.window_ms)
    if late_ms > 0:
        raise_exception(session, rt, site=tour.site_id, kind=ExceptionKind.LATE,
                        key=f"tour:{tour.id}:late_start", now_ms=now_ms, occurred_ms=at_ms,
                        subject=Subject(tour=tour, guard=guard),
                        detail={"deviation_s": late_ms // 1000, "start": True})


def _open_exceptions(session: Session, tour_id: int) -> int:
    return session.scalar(select(func.count()).select_from(PatrolException).where(
        PatrolException.tour_id == tour_id,
        PatrolException.status == ExceptionStatus.OPEN.value)) or 0


def close_tour(session: Session, rt: PatrolRuntime, tour: PatrolTour, *, now_ms: int,
               finished_ms: int | None) -> None:
    """Close a round: unvisited stops become ``missed_checkpoint``; the status follows."""
    plan = load_plan(session, tour.route_id)
    seen = visits(session, tour.id)
    for stop in missing_stops(plan, {v.checkpoint_id for v in seen}):
        checkpoint = session.get(PatrolCheckpoint, stop.checkpoint_id)
        raise_exception(session, rt, site=tour.site_id, kind=ExceptionKind.MISSED_CHECKPOINT,
                        key=f"tour:{tour.id}:missed:{stop.checkpoint_id}", now_ms=now_ms,
                        occurred_ms=due_ms(tour),
                        subject=Subject(tour=tour, checkpoint=checkpoint, guard=tour.guard),
                        detail={"position": stop.position})
    tour.finished_ms = finished_ms if finished_ms is not None else (
        seen[-1].at_ms if seen else now_ms)
    clean = _open_exceptions(session, tour.id) == 0
    tour.status = (TourStatus.COMPLETED if clean else TourStatus.COMPLETED_WITH_EXCEPTIONS).value


def finish_tour(session: Session, rt: PatrolRuntime, tour: PatrolTour, *, at_ms: int,
                now_ms: int) -> None:
    """The guard ends the round (stops not visited are missed)."""
    if tour.status != TourStatus.IN_PROGRESS:
        raise PatrolConflict(f"tour {tour.id} is {tour.status}, not in progress")
    close_tour(session, rt, tour, now_ms=now_ms, finished_ms=at_ms)


def abandon_tour(tour: PatrolTour, *, reason: str, at_ms: int) -> None:
    reason = reason.strip()
    if not reason:
        raise PatrolInvalid("reason", "a reason is needed to abandon a round")
    if tour.status not in (TourStatus.SCHEDULED, TourStatus.IN_PROGRESS):
        raise PatrolConflict(f"tour {tour.id} is {tour.status}; it cannot be abandoned")
    tour.status, tour.abandon_reason, tour.finished_ms = (
        TourStatus.ABANDONED.value, reason[:2000], at_ms)


def reconcile(session: Session, rt: PatrolRuntime, tour: PatrolTour, now_ms: int) -> None:
    """A closed round received late scans: withdraw what they disprove, recompute status."""
    seen = visits(session, tour.id)
    visited = {v.checkpoint_id for v in seen}
    for row in session.scalars(select(PatrolException).where(
            PatrolException.tour_id == tour.id,
            PatrolException.status == ExceptionStatus.OPEN.value)).all():
        if row.kind == ExceptionKind.TOUR_NOT_STARTED and seen:
            withdraw(session, rt, row, "late upload: the round was walked", now_ms)
        elif row.kind == ExceptionKind.MISSED_CHECKPOINT and row.checkpoint_id in visited:
            withdraw(session, rt, row, "late upload: the checkpoint was visited", now_ms)
    if not seen:
        return
    if tour.status == TourStatus.MISSED:
        tour.started_ms = seen[0].at_ms
    close_tour(session, rt, tour, now_ms=now_ms, finished_ms=seen[-1].at_ms)


# -- the sweep ------------------------------------------------------------------------
def sweep(session: Session, rt: PatrolRuntime, site: str, now_ms: int) -> SweepResult:
    """Plan ahead, mark rounds not started as missed, close overdue rounds."""
    row = session.get(Site, site)
    if row is None:
        raise PatrolNotFound("site", site)
    planned = plan_tours(session, row, now_ms, int(rt.settings.planning_horizon * 1000))
    missed = overdue = 0
    open_tours = session.scalars(select(PatrolTour).where(
        PatrolTour.site_id == site,
        PatrolTour.status.in_([TourStatus.SCHEDULED.value, TourStatus.IN_PROGRESS.value]),
        PatrolTour.scheduled_ms <= now_ms).order_by(PatrolTour.scheduled_ms)).all()
    for tour in open_tours:
        if tour.status == TourStatus.SCHEDULED and start_by_ms(tour) < now_ms:
            tour.status = TourStatus.MISSED.value
            raise_exception(session, rt, site=site, kind=ExceptionKind.TOUR_NOT_STARTED,
                            key=f"tour:{tour.id}:not_started", now_ms=now_ms,
                            occurred_ms=start_by_ms(tour),
                            subject=Subject(tour=tour, guard=tour.guard))
            missed += 1
        elif tour.status == TourStatus.IN_PROGRESS and due_ms(tour) < now_ms:
            raise_exception(session, rt, site=site, kind=ExceptionKind.TOUR_OVERDUE,
                            key=f"tour:{tour.id}:overdue", now_ms=now_ms,
                            occurred_ms=due_ms(tour),
                            subject=Subject(tour=tour, guard=tour.guard))
            close_tour(session, rt, tour, now_ms=now_ms, finished_ms=None)
            overdue += 1
    return SweepResult(planned, missed, overdue)
