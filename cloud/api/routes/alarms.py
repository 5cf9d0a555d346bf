"""Routes of alarms: the alarm board, one alarm with its history, acknowledge, shelve,
unshelve, comment, alarm-load figures, and the live Server-Sent Events stream.

=======  ================================================  ===========
method   path (under ``/api/v1/sites``)                    action
=======  ================================================  ===========
GET      /{site}/alarms                                    read
GET      /{site}/alarms/{id}                               read
POST     /{site}/alarms/{id}/acknowledge                   acknowledge
POST     /{site}/alarms/{id}/comments                      acknowledge
POST     /{site}/alarms/{id}/shelve, …/unshelve            manage
GET      /{site}/alarm-load                                read
GET      /{site}/alarms/stream                             read
GET      /-/alarms/stream  (every site the user may read)  read
=======  ================================================  ===========

Errors: 404 ``alarm_not_found``; 409 ``invalid_transition`` (acknowledging an acknowledged
alarm, unshelving one that is not shelved); 400 ``validation_failed`` naming the field
(a shelve without a reason, or longer than the site's maximum). Every acknowledge, shelve,
unshelve and comment is written to the audit log and the alarm's history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from cloud.alarms import (
    AlarmError,
    AlarmFilter,
    AlarmService,
    InvalidAlarm,
    InvalidTransition,
    ShelveRefused,
    UnknownAlarm,
    alarm_history,
    alarm_load,
    current_service,
    describe,
    list_alarms,
)
from cloud.alarms.load import display_key
from cloud.alarms.stream import alarm_events
from cloud.alarms.tables import AlarmState, Priority
from cloud.api.context import ApiContext
from cloud.api.deps import (
    API_PREFIX,
    IDENTIFIER_REGEX,
    Ctx,
    CurrentUser,
    ReadSite,
    SiteAccess,
    forbidden,
    require_site,
    site_access,
)
from cloud.api.errors import ApiError, ErrorBody, validation_error
from cloud.api.timeparse import parse_time
from cloud.db.roles import ALL_SITES, Action

__all__ = ["AlarmOut", "router"]

T = TypeVar("T")
MAX_LOAD_RANGE_MS = 92 * 86_400_000

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["alarms"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "Not allowed on this site"},
    },
)

AckSite = Annotated[SiteAccess, Depends(site_access(Action.ACKNOWLEDGE))]
ManageAlarms = Annotated[SiteAccess, Depends(site_access(Action.MANAGE))]
AlarmId = Annotated[int, Path(ge=1, description="Alarm id.")]


class AlarmOut(BaseModel):
    """An alarm. Times are UTC epoch ms; ``gateway``/``device`` are null for site-level alarms."""

    id: int
    site: str
    gateway: str | None
    device: str | None
    name: str
    source: str
    category: str
    priority: Priority
    state: AlarmState
    active: bool
    open: bool
    text_en: str
    text_zh: str
    detail: dict[str, Any]
    raised: int
    last_active: int
    changed: int
    cleared: int | None
    closed: int | None
    occurrences: int
    acked_by: str | None
    acked: int | None
    ack_comment: str | None
    shelved: bool
    shelved_by: str | None
    shelve_reason: str | None
    shelved_until: int | None
    suppressed: str | None = Field(description="Why it is suppressed by design, else null.")
    out_of_service: bool
    escalation_level: int
    next_realarm: int | None
    next_escalation: int | None


class AlarmPageOut(BaseModel):
    total: int
    items: list[AlarmOut]


class HistoryOut(BaseModel):
    id: int
    ts: int
    change: str
    state: AlarmState
    user: str | None
    comment: str | None
    detail: dict[str, Any]


class AlarmDetailOut(BaseModel):
    alarm: AlarmOut
    history: list[HistoryOut]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Annotated[str | None, Field(max_length=2000)] = None


class ShelveIn(BaseModel):
    """Shelve until ``until`` (UTC ms or ISO-8601) or for ``duration_s``; a reason is required."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(max_length=2000)]
    until: int | str | None = None
    duration_s: Annotated[int | None, Field(ge=1)] = None


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=4000)]


class LoadOut(BaseModel):
    """EEMUA 191 figures; see ``cloud.alarms.load``."""

    site: str
    start: int
    end: int
    operators: int
    annunciations: int
    per_10min_mean: float
    per_10min_max: int
    flood_windows: list[dict[str, int]]
    flood_share: float
    chattering: list[dict[str, Any]]
    stale: list[int]
    bad_actors: list[dict[str, Any]]
    priority_split: dict[str, dict[str, float]]


def _service(request: Request) -> AlarmService:
    service = getattr(request.app.state, "alarms", None)
    return service if isinstance(service, AlarmService) else current_service()


def _api_error(exc: AlarmError) -> ApiError:
    if isinstance(exc, UnknownAlarm):
        return ApiError(404, "alarm_not_found", str(exc), details={"alarm_id": exc.alarm_id})
    if isinstance(exc, InvalidTransition):
        return ApiError(409, "invalid_transition", str(exc),
                        details={"alarm_id": exc.alarm_id, "state": exc.state})
    if isinstance(exc, ShelveRefused | InvalidAlarm):
        return validation_error([(f"body.{exc.field}", str(exc))])
    return ApiError(500, "internal_error", "internal error")


async def _run(ctx: ApiContext, work: Callable[[Session], T]) -> T:
    try:
        return await ctx.run(work)
    except AlarmError as exc:
        raise _api_error(exc) from None


def _out(alarm: Any) -> AlarmOut:
    return AlarmOut.model_validate(describe(alarm))


@router.get("/{site}/alarms", summary="The alarm board: filter, sort, page")
async def get_alarms(
    access: ReadSite, ctx: Ctx,
    open_: Annotated[bool | None, Query(alias="open", description="Open alarms only (default), "
                                        "closed only (false); leave empty for both.")] = True,
    all_: Annotated[bool, Query(alias="all", description="Open and closed.")] = False,
    state: Annotated[list[AlarmState] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Annotated[list[str] | None, Query()] = None,
    gateway: Annotated[str | None, Query(pattern=IDENTIFIER_REGEX)] = None,
    device: Annotated[str | None, Query(pattern=IDENTIFIER_REGEX)] = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    shelved: bool | None = None,
    suppressed: bool | None = None,
    since: Annotated[str | None, Query(description="Active at or after (ms or ISO-8601).")] = None,
    until: Annotated[str | None, Query(description="Raised before (ms or ISO-8601).")] = None,
    sort: Literal["board", "recent", "raised"] = "board",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AlarmPageOut:
    """Fire alarms first, then by priority, then the most recently active (`sort=board`)."""
    times = _times({"since": since, "until": until})
    where = AlarmFilter(
        open=None if all_ else open_, states=state, priorities=priority, categories=category,
        gateway=gateway, device=device, name=name, shelved=shelved, suppressed=suppressed,
        since_ms=times["since"], until_ms=times["until"])

    def work(session: Session) -> AlarmPageOut:
        require_site(session, access.site)
        page = list_alarms(session, access.site, where, sort=sort, limit=limit, offset=offset)
        return AlarmPageOut(total=page.total, items=[_out(a) for a in page.items])

    return await _run(ctx, work)


def _times(texts: dict[str, str | None]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    problems = []
    for key, text in texts.items():
        try:
            out[key] = None if text is None else parse_time(text)
        except ValueError as exc:
            problems.append((f"query.{key}", str(exc)))
    if problems:
        raise validation_error(problems)
    return out


async def _stream(request: Request, ctx: ApiContext, user: Any, sites: list[str] | None,
                  last_event_id: str | None, heartbeat: float) -> StreamingResponse:
    try:
        resume = None if last_event_id is None else int(last_event_id)
    except ValueError:
        raise validation_error([("header.last-event-id", "must be an integer")]) from None

    async def alive() -> bool:
        return not await request.is_disconnected() and ctx.now_ms() < user.token_expires_ms

    events = alarm_events(ctx.run, sites, last_event_id=resume, heartbeat=heartbeat,
                          alive=alive, clock=time.monotonic)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


_STREAM_DOC = ("Server-Sent Events: `event: alarm` with the change and the alarm; `id` is the "
               "change id (send `Last-Event-ID` to resume); `: keepalive` comments.")
Heartbeat = Annotated[float, Query(ge=0.1, le=60, description="Seconds between keepalives.")]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


@router.get("/-/alarms/stream", summary="Live alarm changes of every site you may read",
            description=_STREAM_DOC, response_class=StreamingResponse)
async def stream_all(request: Request, ctx: Ctx, user: CurrentUser,
                     last_event_id: LastEventId = None,
                     heartbeat: Heartbeat = 15.0) -> StreamingResponse:
    if user.can(Action.READ, None):  # an all-sites role
        sites: list[str] | None = None
    else:
        sites = sorted(s for s in user.roles if s != ALL_SITES and user.can(Action.READ, s))
        if not sites:
            raise forbidden("you may not read alarms on any site")
    return await _stream(request, ctx, user, sites, last_event_id, heartbeat)


@router.get("/{site}/alarms/stream", summary="Live alarm changes of one site",
            description=_STREAM_DOC, response_class=StreamingResponse)
async def stream_site(request: Request, access: ReadSite, ctx: Ctx,
                      last_event_id: LastEventId = None,
                      heartbeat: Heartbeat = 15.0) -> StreamingResponse:
    return await _stream(request, ctx, access.user, [access.site], last_event_id, heartbeat)


@router.get("/{site}/alarms/{alarm_id}", summary="One alarm with its history",
            responses={404: {"model": ErrorBody, "description": "`alarm_not_found`"}})
async def get_alarm(access: ReadSite, alarm_id: AlarmId, ctx: Ctx) -> AlarmDetailOut:
    def work(session: Session) -> AlarmDetailOut:
        alarm, entries = alarm_history(session, access.site, alarm_id)
        return AlarmDetailOut(alarm=_out(alarm), history=[
            HistoryOut(id=e.id, ts=e.ts_ms, change=e.kind, state=AlarmState(e.state),
                       user=e.username, comment=e.comment, detail=e.detail or {})
            for e in entries])

    return await _run(ctx, work)


_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "`alarm_not_found`"},
    409: {"model": ErrorBody, "description": "`invalid_transition`"},
}


@router.post("/{site}/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm",
             responses=_ACTION_ERRORS)
async def acknowledge(access: AckSite, alarm_id: AlarmId, ctx: Ctx, request: Request,
                      body: AckIn | None = None) -> AlarmOut:
    service, comment = _service(request), None if body is None else body.comment
    return await _run(ctx, lambda s: _out(service.acknowledge(
        s, alarm_id, site=access.site, user=access.user.username, comment=comment,
        now_ms=ctx.now_ms())))


@router.post("/{site}/alarms/{alarm_id}/shelve", summary="Shelve an alarm (reason required)",
             responses=_ACTION_ERRORS)
async def shelve(access: ManageAlarms, alarm_id: AlarmId, body: ShelveIn, ctx: Ctx,
                 request: Request) -> AlarmOut:
    now = ctx.now_ms()
    if (body.until is None) == (body.duration_s is None):
        raise validation_error([("body.until", "give either until or duration_s")])
    if body.duration_s is not None:
        until = now + body.duration_s * 1000
    else:
        until = _times({"until": str(body.until)})["until"] or 0
    service = _service(request)
    return await _run(ctx, lambda s: _out(service.shelve(
        s, alarm_id, site=access.site, user=access.user.username, reason=body.reason,
        until_ms=until, now_ms=now)))


@router.post("/{site}/alarms/{alarm_id}/unshelve", summary="Unshelve an alarm",
             responses=_ACTION_ERRORS)
async def unshelve(access: ManageAlarms, alarm_id: AlarmId, ctx: Ctx,
                   request: Request) -> AlarmOut:
    service = _service(request)
    return await _run(ctx, lambda s: _out(service.unshelve(
        s, alarm_id, site=access.site, user=access.user.username, now_ms=ctx.now_ms())))


@router.post("/{site}/alarms/{alarm_id}/comments", status_code=201,
             summary="Comment on an alarm", responses=_ACTION_ERRORS)
async def comment(access: AckSite, alarm_id: AlarmId, body: CommentIn, ctx: Ctx,
                  request: Request) -> HistoryOut:
    service = _service(request)

    def work(session: Session) -> HistoryOut:
        e = service.comment(session, alarm_id, site=access.site, user=access.user.username,
                            text=body.text, now_ms=ctx.now_ms())
        return HistoryOut(id=e.id, ts=e.ts_ms, change=e.kind, state=AlarmState(e.state),
                          user=e.username, comment=e.comment, detail=e.detail or {})

    return await _run(ctx, work)


@router.get("/{site}/alarm-load", summary="Alarm-load figures (EEMUA 191) over a period")
async def get_alarm_load(
    access: ReadSite, ctx: Ctx,
    start: Annotated[str | None, Query(description="Default: 24 h before end.")] = None,
    end: Annotated[str | None, Query(description="Default: now.")] = None,
    operators: Annotated[int, Query(ge=1, le=100)] = 1,
) -> LoadOut:
    times = _times({"start": start, "end": end})
    end_ms = times["end"] or ctx.now_ms()
    start_ms = times["start"] if times["start"] is not None else end_ms - 86_400_000
    if start_ms >= end_ms:
        raise validation_error([("query.start", "must be before end")])
    if end_ms - start_ms > MAX_LOAD_RANGE_MS:
        raise ApiError(422, "range_too_large", "at most 92 days at a time",
                       details={"limit_ms": MAX_LOAD_RANGE_MS})

    def work(session: Session) -> LoadOut:
        require_site(session, access.site)
        f = alarm_load(session, access.site, start_ms, end_ms, operators=operators)
        return LoadOut(
            site=f.site, start=f.start_ms, end=f.end_ms, operators=f.operators,
            annunciations=f.annunciations, per_10min_mean=f.per_10min_mean,
            per_10min_max=f.per_10min_max,
            flood_windows=[{"start": s, "count": c} for s, c in f.flood_windows],
            flood_share=f.flood_share,
            chattering=[{**display_key(k), "max_per_minute": n} for k, n in f.chattering],
            stale=f.stale,
            bad_actors=[{**display_key(k), "count": n, "share": share}
                        for k, n, share in f.bad_actors],
            priority_split={p: {"count": n, "share": share}
                            for p, (n, share) in f.priority_split.items()})

    return await _run(ctx, work)
