"""Supervisors' side of patrols (action ``manage``): checkpoints and tag enrolment, routes,
schedules, live rounds, exceptions (closed with a comment) and completion figures.

=======  ==========================================================  =======
method   path (under /api/v1/sites/{site}/patrol)                     who
=======  ==========================================================  =======
POST     /checkpoints (enrol: UID, keys)     GET /checkpoints          manage
PATCH    /checkpoints/{code}                 DELETE (deactivates)      manage
POST     /routes    GET /routes    PUT /routes/{code}                  manage
POST     /schedules GET /schedules PUT /schedules/{code} (``active``)  manage
GET      /tours?status=&start=&end=  (default: open rounds)            manage
GET      /exceptions?status=&kind=   POST /exceptions/{id}/close       manage
GET      /stats?start=&end=&by=site|guard|day                          manage
=======  ==========================================================  =======

Lists and figures run the sweep first (plan ahead, mark missed and overdue rounds), so
what a supervisor sees is current even between the service's periodic sweeps.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.deps import API_PREFIX, Ctx, require_site
from cloud.api.errors import ErrorBody
from cloud.api.routes.patrol_common import PatrolSite, Runtime, patrol_call
from cloud.api.routes.patrol_models import (
    Code,
    ExceptionOut,
    TourOut,
    exception_out,
    tour_out,
)
from cloud.api.routes.patrol_scan import router as scan_router
from cloud.patrols.catalog import (
    RouteSpec,
    ScheduleSpec,
    StopSpec,
    get_checkpoint,
    put_route,
    put_schedule,
    route_stops,
)
from cloud.patrols.findings import close_exception, list_exceptions
from cloud.patrols.model import (
    OPEN_TOUR_STATES,
    ExceptionKind,
    ExceptionStatus,
    KeyMode,
    RouteMode,
    TagType,
    TourStatus,
)
from cloud.patrols.stats import tour_stats
from cloud.patrols.tables import PatrolCheckpoint, PatrolRoute, PatrolSchedule, PatrolTour
from cloud.patrols.tags import CheckpointSpec, enrol
from cloud.patrols.tours import sweep

__all__ = ["router"]

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["patrols"],
    responses={401: {"model": ErrorBody, "description": "Not authenticated"},
               403: {"model": ErrorBody, "description": "Not allowed on this site"}},
)
router.include_router(scan_router)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointBody(_In):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    location: Annotated[str, Field(max_length=200)] = ""
    tag_type: TagType
    uid: Annotated[str | None, Field(max_length=20)] = None
    qr_code: Annotated[str | None, Field(min_length=8, max_length=128)] = None
    key_mode: KeyMode | None = None
    meta_key: Annotated[str | None, Field(max_length=32)] = None
    file_key: Annotated[str | None, Field(max_length=32)] = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None
    floor: int | None = None


class CheckpointPatch(_In):
    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    location: Annotated[str | None, Field(max_length=200)] = None
    active: bool | None = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None
    floor: int | None = None


class CheckpointOut(BaseModel):
    code: str
    name: str
    location: str
    tag_type: str
    assurance: str
    uid: str | None
    qr_code: str | None
    key_mode: str | None
    last_counter: int | None
    last_scan: int | None
    active: bool
    lat: float | None
    lon: float | None
    floor: int | None
    keys: dict[str, str] | None = Field(
        None, description="Derived SUN keys to program into the tag: shown once, at enrolment.")


def checkpoint_out(row: PatrolCheckpoint, keys: dict[str, str] | None = None) -> CheckpointOut:
    return CheckpointOut(
        code=row.code, name=row.name, location=row.location, tag_type=row.tag_type,
        assurance="strong" if row.tag_type == TagType.SUN else "weak", uid=row.tag_uid,
        qr_code=row.qr_code, key_mode=row.key_mode, last_counter=row.last_counter,
        last_scan=row.last_scan_ms, active=row.active, lat=row.lat, lon=row.lon,
        floor=row.floor, keys=keys)


class StopBody(_In):
    checkpoint: Code
    offset_s: Annotated[int | None, Field(ge=0, le=86_400)] = None
    tolerance_s: Annotated[int, Field(ge=0, le=86_400)] = 300
    min_leg_s: Annotated[int | None, Field(ge=0, le=86_400)] = None
    required: bool = True


class RouteBody(_In):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    mode: RouteMode = RouteMode.ORDERED
    min_stops: Annotated[int | None, Field(ge=1)] = None
    stops: Annotated[list[StopBody], Field(min_length=1, max_length=500)]


class RouteOut(RouteBody):
    active: bool


class ScheduleBody(_In):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    route: Code
    preset: Literal["key_area", "ordinary"] | None = Field(
        None, description="Fill unset fields from the shipped defaults: `key_area` every "
        "3 h, `ordinary` at 08:00, 14:00 and 20:00 (site-local time).")
    recurrence: dict[str, Any] | None = None
    window_min: Annotated[int | None, Field(ge=0, le=1440)] = None
    grace_min: Annotated[int | None, Field(ge=0, le=1440)] = None
    duration_min: Annotated[int | None, Field(ge=1, le=1440)] = None
    guard: Annotated[str | None, Field(max_length=64)] = None
    active: bool = True


class ScheduleOut(BaseModel):
    code: str
    name: str
    route: str
    recurrence: dict[str, Any]
    window_min: int
    grace_min: int
    duration_min: int
    guard: str | None
    active: bool


class CloseBody(_In):
    comment: Annotated[str, Field(min_length=1, max_length=2000)]


class StatsOut(BaseModel):
    key: str = Field(description="The site, the guard, or the site-local day.")
    due: int
    completed: int
    on_time: int
    missed: int
    abandoned: int
    with_exceptions: int
    completion_rate: float | None
    on_time_rate: float | None
    checkpoints_expected: int
    checkpoints_visited: int
    checkpoint_rate: float | None


# -- checkpoints ----------------------------------------------------------------------
@router.post("/{site}/patrol/checkpoints", status_code=201, summary="Enrol a checkpoint")
async def create_checkpoint(access: PatrolSite, body: CheckpointBody, ctx: Ctx,
                            rt: Runtime) -> CheckpointOut:
    """SUN tags: `uid` and either `key_mode: derived` (the default; the keys to program are
    answered once) or `stored` with `meta_key` and `file_key` (sealed at rest)."""
    now_ms = ctx.now_ms()
    spec = CheckpointSpec(**body.model_dump())

    def work(session: Session) -> CheckpointOut:
        require_site(session, access.site)
        row, keys = enrol(session, rt, access.site, spec, now_ms)
        shown = None if keys is None else {"meta_read": keys.meta_read.hex().upper(),
                                           "file_read": keys.file_read.hex().upper()}
        return checkpoint_out(row, shown)

    return await patrol_call(ctx, work)


@router.get("/{site}/patrol/checkpoints", summary="Checkpoints")
async def list_checkpoints(access: PatrolSite, ctx: Ctx) -> list[CheckpointOut]:
    def work(session: Session) -> list[CheckpointOut]:
        rows = session.scalars(select(PatrolCheckpoint).where(
            PatrolCheckpoint.site_id == access.site).order_by(PatrolCheckpoint.code))
        return [checkpoint_out(r) for r in rows]

    return await patrol_call(ctx, work)


@router.patch("/{site}/patrol/checkpoints/{code}", summary="Change a checkpoint")
async def patch_checkpoint(access: PatrolSite, code: Code, body: CheckpointPatch,
                           ctx: Ctx) -> CheckpointOut:
    def work(session: Session) -> CheckpointOut:
        row = get_checkpoint(session, access.site, code)
        for name, value in body.model_dump(exclude_unset=True).items():
            setattr(row, name, value)
        return checkpoint_out(row)

    return await patrol_call(ctx, work)


@router.delete("/{site}/patrol/checkpoints/{code}", summary="Retire a checkpoint")
async def delete_checkpoint(access: PatrolSite, code: Code, ctx: Ctx) -> CheckpointOut:
    """Deactivates it (its scans stay on record); its taps are then unknown tags."""
    def work(session: Session) -> CheckpointOut:
        row = get_checkpoint(session, access.site, code)
        row.active = False
        return checkpoint_out(row)

    return await patrol_call(ctx, work)


# -- routes and schedules -------------------------------------------------------------
def _route_out(session: Session, route: PatrolRoute) -> RouteOut:
    stops = [StopBody(checkpoint=cp.code, offset_s=st.offset_s, tolerance_s=st.tolerance_s,
                      min_leg_s=st.min_leg_s, required=st.required)
             for st, cp in route_stops(session, route.id)]
    return RouteOut(code=route.code, name=route.name, mode=RouteMode(route.mode),
                    min_stops=route.min_stops, stops=stops, active=route.active)


def _route_spec(body: RouteBody) -> RouteSpec:
    return RouteSpec(code=body.code, name=body.name, mode=body.mode, min_stops=body.min_stops,
                     stops=[StopSpec(**s.model_dump()) for s in body.stops])


@router.post("/{site}/patrol/routes", status_code=201, summary="Create a route")
async def create_route(access: PatrolSite, body: RouteBody, ctx: Ctx) -> RouteOut:
    now_ms = ctx.now_ms()
    return await patrol_call(ctx, lambda s: _route_out(
        s, put_route(s, access.site, _route_spec(body), now_ms, create=True)))


@router.put("/{site}/patrol/routes/{code}", summary="Replace a route")
async def replace_route(access: PatrolSite, code: Code, body: RouteBody, ctx: Ctx) -> RouteOut:
    now_ms = ctx.now_ms()
    spec = _route_spec(body.model_copy(update={"code": code}))
    return await patrol_call(ctx, lambda s: _route_out(
        s, put_route(s, access.site, spec, now_ms, create=False)))


@router.get("/{site}/patrol/routes", summary="Routes")
async def list_routes(access: PatrolSite, ctx: Ctx) -> list[RouteOut]:
    def work(session: Session) -> list[RouteOut]:
        rows = session.scalars(select(PatrolRoute).where(
            PatrolRoute.site_id == access.site).order_by(PatrolRoute.code)).all()
        return [_route_out(session, r) for r in rows]

    return await patrol_call(ctx, work)


def _schedule_out(session: Session, row: PatrolSchedule) -> ScheduleOut:
    route = session.get(PatrolRoute, row.route_id)
    return ScheduleOut(code=row.code, name=row.name, route=route.code if route else "-",
                       recurrence=row.recurrence, window_min=row.window_min,
                       grace_min=row.grace_min, duration_min=row.duration_min, guard=row.guard,
                       active=row.active)


@router.post("/{site}/patrol/schedules", status_code=201, summary="Create a schedule")
async def create_schedule(access: PatrolSite, body: ScheduleBody, ctx: Ctx) -> ScheduleOut:
    now_ms = ctx.now_ms()
    spec = ScheduleSpec(**body.model_dump())
    return await patrol_call(ctx, lambda s: _schedule_out(
        s, put_schedule(s, access.site, spec, now_ms, create=True)))


@router.put("/{site}/patrol/schedules/{code}", summary="Replace a schedule")
async def replace_schedule(access: PatrolSite, code: Code, body: ScheduleBody,
                           ctx: Ctx) -> ScheduleOut:
    """Rounds already planned keep their times; new ones follow the new schedule."""
    now_ms = ctx.now_ms()
    spec = ScheduleSpec(**body.model_copy(update={"code": code}).model_dump())
    return await patrol_call(ctx, lambda s: _schedule_out(
        s, put_schedule(s, access.site, spec, now_ms, create=False)))


@router.get("/{site}/patrol/schedules", summary="Schedules")
async def list_schedules(access: PatrolSite, ctx: Ctx) -> list[ScheduleOut]:
    def work(session: Session) -> list[ScheduleOut]:
        rows = session.scalars(select(PatrolSchedule).where(
            PatrolSchedule.site_id == access.site).order_by(PatrolSchedule.code)).all()
        return [_schedule_out(session, r) for r in rows]

    return await patrol_call(ctx, work)


# -- rounds, exceptions, figures ------------------------------------------------------
@router.get("/{site}/patrol/tours", summary="Rounds (live by default)")
async def list_tours(
    access: PatrolSite, ctx: Ctx, rt: Runtime,
    status: Annotated[list[TourStatus] | None, Query()] = None,
    start: Annotated[int | None, Query(description="Scheduled from (UTC ms).")] = None,
    end: Annotated[int | None, Query(description="Scheduled before (UTC ms).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[TourOut]:
    now_ms = ctx.now_ms()
    wanted = [s.value for s in (status or OPEN_TOUR_STATES)]

    def work(session: Session) -> list[TourOut]:
        require_site(session, access.site)
        sweep(session, rt, access.site, now_ms)
        query = select(PatrolTour).where(PatrolTour.site_id == access.site,
                                         PatrolTour.status.in_(wanted))
        if start is not None:
            query = query.where(PatrolTour.scheduled_ms >= start)
        if end is not None:
            query = query.where(PatrolTour.scheduled_ms < end)
        rows = session.scalars(query.order_by(PatrolTour.scheduled_ms).limit(limit)).all()
        return [tour_out(session, t) for t in rows]

    return await patrol_call(ctx, work)


@router.get("/{site}/patrol/exceptions", summary="Patrol exceptions")
async def get_exceptions(
    access: PatrolSite, ctx: Ctx, rt: Runtime,
    status: ExceptionStatus | None = None, kind: ExceptionKind | None = None,
    tour: int | None = None, start: int | None = None, end: int | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[ExceptionOut]:
    now_ms = ctx.now_ms()

    def work(session: Session) -> list[ExceptionOut]:
        require_site(session, access.site)
        sweep(session, rt, access.site, now_ms)
        rows = list_exceptions(session, access.site, status=status, kind=kind, tour_id=tour,
                               start_ms=start, end_ms=end, limit=limit)
        return [exception_out(r) for r in rows]

    return await patrol_call(ctx, work)


@router.post("/{site}/patrol/exceptions/{exception_id}/close", summary="Close an exception")
async def close(access: PatrolSite, exception_id: int, body: CloseBody,
                ctx: Ctx, rt: Runtime) -> ExceptionOut:
    """Closing the last open exception behind an alarm clears the alarm's condition."""
    now_ms = ctx.now_ms()
    return await patrol_call(ctx, lambda s: exception_out(close_exception(
        s, rt, access.site, exception_id, comment=body.comment, user=access.user.username,
        now_ms=now_ms)))


@router.get("/{site}/patrol/stats", summary="Completion and on-time rates")
async def stats(
    access: PatrolSite, ctx: Ctx, rt: Runtime,
    start: Annotated[int, Query(description="Rounds scheduled from (UTC ms).")],
    end: Annotated[int, Query(description="Rounds scheduled before (UTC ms).")],
    by: Literal["site", "guard", "day"] = "site",
) -> list[StatsOut]:
    """Closed rounds only; `day` groups by the site-local date."""
    now_ms = ctx.now_ms()

    def work(session: Session) -> list[StatsOut]:
        site = require_site(session, access.site)
        sweep(session, rt, access.site, now_ms)
        rows = tour_stats(session, access.site, start_ms=start, end_ms=end,
                          timezone=site.timezone, group_by=by)
        return [StatsOut(key=r.key, due=r.due, completed=r.completed, on_time=r.on_time,
                         missed=r.missed, abandoned=r.abandoned,
                         with_exceptions=r.with_exceptions,
                         completion_rate=r.completion_rate, on_time_rate=r.on_time_rate,
                         checkpoints_expected=r.checkpoints_expected,
                         checkpoints_visited=r.checkpoints_visited,
                         checkpoint_rate=r.checkpoint_rate) for r in rows]

    return await patrol_call(ctx, work)
