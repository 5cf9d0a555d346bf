"""The guard's side of patrols: scan (one tap or an offline batch), the SUN URL a tag opens,
what is due, round progress, start / finish / abandon, incidents, and a login page that
gives a phone's browser a short-lived cookie so tapping a tag needs no app.

=======  ======================================================  =====================
method   path (under /api/v1/sites/{site}/patrol)                 who
=======  ======================================================  =====================
POST     /scans                                                  patrol
GET      /tap/{checkpoint}?picc_data=&cmac=[&enc=]               patrol (token/cookie)
GET      /due                                                    patrol
GET      /tours/{id}                                             patrol or manage
POST     /tours/{id}/start, /finish, /abandon                    patrol
POST     /incidents                                              patrol
GET/POST /login                                                  anyone (form login)
=======  ======================================================  =====================

A tag URL opened twice (a browser reload) is the same scan: its id is a hash of the
URL's SUN data, so the reload gets the first answer instead of a replay alarm.
"""

from __future__ import annotations

import hashlib
import html
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.deps import API_PREFIX, Ctx, SiteId, require_site
from cloud.api.errors import ApiError
from cloud.api.routes.patrol_common import (
    COOKIE,
    AnyPatrolSite,
    GuardSite,
    Runtime,
    patrol_call,
)
from cloud.api.routes.patrol_models import (
    Code,
    IncidentBody,
    ScanBatch,
    ScanResultOut,
    TourOut,
    scan_result_out,
    tour_out,
)
from cloud.db.errors import InvalidCredentials
from cloud.db.users import authenticate
from cloud.patrols.model import ScanResult, TagType, TourStatus
from cloud.patrols.scans import IncidentIn, ScanIn, record_incident, record_scans
from cloud.patrols.tables import PatrolTour
from cloud.patrols.tags import Tap
from cloud.patrols.texts import texts
from cloud.patrols.tours import abandon_tour, finish_tour, get_tour, start_tour, sweep

__all__ = ["router"]

router = APIRouter()
"""Included by :mod:`cloud.api.routes.patrols` (which gives the prefix and the tag)."""


class ScanAnswer(BaseModel):
    results: list[ScanResultOut]


class AbandonBody(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class IncidentOut(BaseModel):
    incident_id: str
    id: int
    work_order: str | None = Field(description="The work order (or alarm) it became, if any.")


def _scan_in(body: ScanBatch) -> list[ScanIn]:
    return [ScanIn(scan_id=s.scan_id, device_ms=s.device_time, lat=s.lat, lon=s.lon,
                   accuracy_m=s.accuracy_m, tour_id=s.tour_id,
                   tap=Tap(method=s.method, checkpoint=s.checkpoint, picc_data=s.picc_data,
                           cmac=s.cmac, enc=s.enc, uid=s.uid, qr=s.qr))
            for s in body.scans]


@router.post("/{site}/patrol/scans", summary="Record taps (one, or an offline batch)")
async def post_scans(access: GuardSite, body: ScanBatch, ctx: Ctx, rt: Runtime) -> ScanAnswer:
    """Idempotent by `scan_id`. Rejected taps (forged, replayed, unknown) are recorded and
    answered per scan with their `result`; the request itself succeeds."""
    if len(body.scans) > rt.settings.max_batch:
        raise ApiError(422, "batch_too_large",
                       f"at most {rt.settings.max_batch} scans per request")
    now_ms = ctx.now_ms()
    scans = _scan_in(body)

    def work(session: Session) -> list[ScanResultOut]:
        require_site(session, access.site)
        outcomes = record_scans(session, rt, site=access.site, guard=access.user.username,
                                scans=scans, sent_ms=body.sent_at, batch_id=body.batch_id,
                                now_ms=now_ms)
        return [scan_result_out(o) for o in outcomes]

    return ScanAnswer(results=await patrol_call(ctx, work))


def _tap_page(title: str, line: str, ok: bool) -> HTMLResponse:
    colour = "#1b7f3b" if ok else "#b00020"
    body = (f"<!doctype html><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width'><title>{html.escape(title)}</title>"
            f"<h1 style='color:{colour}'>{html.escape(title)}</h1><p>{html.escape(line)}</p>")
    return HTMLResponse(body, status_code=200 if ok else 422)


@router.get("/{site}/patrol/tap/{checkpoint}", summary="The URL an NTAG 424 DNA tag opens",
            response_model=ScanResultOut)
async def tap(
    access: GuardSite, checkpoint: Code, request: Request, ctx: Ctx, rt: Runtime,
    picc_data: Annotated[str, Query(max_length=64)],
    cmac: Annotated[str, Query(max_length=32)],
    enc: Annotated[str | None, Query(max_length=512)] = None,
) -> Response | ScanResultOut:
    """Program the tag's SDM URL as `…/patrol/tap/{checkpoint}?picc_data=…&cmac=…`. The
    guard is identified by a bearer token or the cookie from `/patrol/login`. Answers JSON,
    or a short page in English and Chinese when the browser asks for HTML."""
    now_ms = ctx.now_ms()
    digest = hashlib.sha256(f"{checkpoint}|{picc_data}|{cmac}|{enc}".upper().encode())
    scan = ScanIn(scan_id=f"tap-{digest.hexdigest()[:40]}", device_ms=now_ms,
                  tap=Tap(TagType.SUN, checkpoint, picc_data, cmac, enc))

    def work(session: Session) -> tuple[ScanResultOut, str]:
        site = require_site(session, access.site)
        outcome = record_scans(session, rt, site=access.site, guard=access.user.username,
                               scans=[scan], sent_ms=now_ms, batch_id=None, now_ms=now_ms)[0]
        return scan_result_out(outcome), site.timezone

    out, timezone = await patrol_call(ctx, work)
    ok = out.result in (ScanResult.ACCEPTED, ScanResult.DUPLICATE)
    if "text/html" in request.headers.get("accept", ""):
        local = datetime.fromtimestamp(out.time / 1000, ZoneInfo(timezone)).strftime("%H:%M")
        key = "tap.recorded" if ok else "tap.refused"
        en, zh = texts(key, checkpoint=checkpoint, time=local, reason=out.result)
        return _tap_page(f"{en} / {zh}", out.reason or "", ok)
    if not ok:
        raise ApiError(422, "tap_rejected", out.reason or out.result,
                       details=out.model_dump())
    return out


@router.get("/{site}/patrol/due", summary="Rounds due now and coming up")
async def due(access: GuardSite, ctx: Ctx, rt: Runtime) -> list[TourOut]:
    """Rounds in progress and scheduled rounds (up to `patrols.planning_horizon` ahead);
    the guard's own first."""
    now_ms = ctx.now_ms()

    def work(session: Session) -> list[TourOut]:
        require_site(session, access.site)
        sweep(session, rt, access.site, now_ms)
        tours = session.scalars(select(PatrolTour).where(
            PatrolTour.site_id == access.site,
            PatrolTour.status.in_([TourStatus.SCHEDULED.value, TourStatus.IN_PROGRESS.value]))
            .order_by(PatrolTour.scheduled_ms)).all()
        mine = sorted(tours, key=lambda t: (t.guard not in (None, access.user.username),
                                            t.scheduled_ms))
        return [tour_out(session, t) for t in mine]

    return await patrol_call(ctx, work)


@router.get("/{site}/patrol/tours/{tour_id}", summary="A round's progress")
async def tour_progress(access: AnyPatrolSite, tour_id: int, ctx: Ctx) -> TourOut:
    return await patrol_call(ctx, lambda s: tour_out(s, get_tour(s, access.site, tour_id)))


@router.post("/{site}/patrol/tours/{tour_id}/{action}", summary="Start, finish or abandon")
async def tour_action(
    access: GuardSite, tour_id: int, action: str, ctx: Ctx, rt: Runtime,
    body: AbandonBody | None = None,
) -> TourOut:
    """`start` (a scheduled round), `finish` (stops not visited are missed) or `abandon`
    (body `{"reason": …}`)."""
    now_ms = ctx.now_ms()
    if action not in ("start", "finish", "abandon"):
        raise ApiError(404, "not_found", f"no tour action {action!r}")
    if action == "abandon" and body is None:
        raise ApiError(400, "validation_failed", "body.reason: required to abandon",
                       details=[{"path": "body.reason", "message": "required to abandon"}])

    def work(session: Session) -> TourOut:
        tour = get_tour(session, access.site, tour_id)
        if action == "start":
            start_tour(session, rt, tour, guard=access.user.username, at_ms=now_ms,
                       now_ms=now_ms)
        elif action == "finish":
            finish_tour(session, rt, tour, at_ms=now_ms, now_ms=now_ms)
        else:
            assert body is not None
            abandon_tour(tour, reason=body.reason, at_ms=now_ms)
        session.flush()
        return tour_out(session, tour)

    return await patrol_call(ctx, work)


@router.post("/{site}/patrol/incidents", summary="Report a finding", status_code=201)
async def incident(access: GuardSite, body: IncidentBody, ctx: Ctx, rt: Runtime) -> IncidentOut:
    """Idempotent by `incident_id`; becomes a work order by policy."""
    now_ms = ctx.now_ms()
    data = IncidentIn(incident_id=body.incident_id, text=body.text, severity=body.severity,
                      device_ms=body.device_time, photo_ref=body.photo_ref,
                      checkpoint=body.checkpoint, tour_id=body.tour_id, lat=body.lat,
                      lon=body.lon)

    def work(session: Session) -> IncidentOut:
        require_site(session, access.site)
        row, ref = record_incident(session, rt, site=access.site,
                                   guard=access.user.username, incident=data, now_ms=now_ms)
        return IncidentOut(incident_id=row.incident_id, id=row.id, work_order=ref)

    return await patrol_call(ctx, work)


# -- a login page for phones without the app -------------------------------------------
def _login_page(site: str, note: str = "") -> HTMLResponse:
    en, zh = texts("tap.login")
    user, pw, go = (" / ".join(texts(k)) for k in ("tap.username", "tap.password",
                                                     "tap.submit"))
    body = (f"<!doctype html><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width'><title>{en}</title><h1>{en} / {zh}</h1>"
            f"<p>{html.escape(note)}</p><form method=post>"
            f"<label>{user} <input name=username autocomplete=username></label><br>"
            f"<label>{pw} <input name=password type=password "
            f"autocomplete=current-password></label><br><button>{go}</button></form>")
    return HTMLResponse(body, status_code=200 if not note else 401)


@router.get("/{site}/patrol/login", summary="Tap login page", include_in_schema=False)
async def login_page(site: SiteId) -> HTMLResponse:
    return _login_page(site)


@router.post("/{site}/patrol/login", summary="Tap login (form)", include_in_schema=False)
async def login_form(site: SiteId, request: Request, ctx: Ctx, rt: Runtime) -> HTMLResponse:
    """Checks the password like `/auth/login` (and its failure limit) and sets an HttpOnly,
    SameSite=Lax cookie scoped to this site's patrol paths, valid for `patrols.cookie_ttl`."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    username = form.get("username", [""])[0]
    password = form.get("password", [""])[0]
    address = request.client.host if request.client else "unknown"
    key = (username.strip().lower(), address)
    if ctx.limiter.attempt(key, ctx.clock()) is not None:
        raise ApiError(429, "too_many_attempts", "too many failed logins")

    def work(session: Session) -> tuple[int, str, str]:
        user = authenticate(session, username, password, hasher=ctx.hasher)
        return user.id, user.username, ctx.tokens.user_version(user.id, user.password_hash)

    try:
        user_id, name, version = await ctx.run(work)
    except InvalidCredentials:
        return _login_page(site, "invalid username or password / 用户名或密码错误")
    ctx.limiter.succeeded(key)
    ttl_ms = int(rt.settings.cookie_ttl * 1000)
    token, _claims = ctx.tokens.issue(user_id, version, now_ms=ctx.now_ms(), ttl_ms=ttl_ms)
    en, zh = texts("tap.logged_in", user=name)
    page = HTMLResponse(f"<!doctype html><meta charset=utf-8><p>{html.escape(en)}</p>"
                        f"<p>{html.escape(zh)}</p>")
    page.set_cookie(COOKIE, token, max_age=ttl_ms // 1000, httponly=True, samesite="lax",
                    secure=request.url.scheme == "https",
                    path=f"{API_PREFIX}/sites/{site}/patrol")
    return page
