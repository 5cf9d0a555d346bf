"""Work orders: list (filter, sort, SLA status), one with its record, create by hand,
transitions, comments, follow-up, photos; alarm → work orders; SLA policies and breaches.

Assets (:mod:`cloud.api.routes.assets`) and maintenance plans
(:mod:`cloud.api.routes.maintenance`) are included in this router.

Who may do what (on the site of the path): reading needs ``read``; creating, comments,
photos and progressing one's own work need ``acknowledge`` (engineers); assigning,
closing, cancelling, reopening, follow-ups and SLA policies need ``manage`` (supervisors).
The transition table is :mod:`cloud.workorders.states`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.deps import API_PREFIX, Ctx, ManageSite, ReadSite, SiteAccess, site_access
from cloud.api.errors import ApiError, ErrorBody
from cloud.api.routes.assets import router as assets_router
from cloud.api.routes.maintenance import router as maintenance_router
from cloud.assets.tables import Asset
from cloud.db.roles import Action
from cloud.workorders.breaches import breaches_of
from cloud.workorders.errors import WorkOrderError
from cloud.workorders.from_alarms import alarms_of, work_orders_for_alarm
from cloud.workorders.history import events_of
from cloud.workorders.photos import PhotoStore, get_photo, photos_of
from cloud.workorders.policies import delete_site_terms, policy_table, set_site_terms
from cloud.workorders.queries import SORTS, WorkOrderFilter, list_work_orders
from cloud.workorders.schemas import (
    BreachOut,
    CommentIn,
    EventOut,
    FollowUpIn,
    PhotoOut,
    SlaPolicyIn,
    SlaPolicyOut,
    TransitionIn,
    WorkOrderDetail,
    WorkOrderIn,
    WorkOrderOut,
    actor_of,
    api_error,
    run,
    work_order_out,
)
from cloud.workorders.service import (
    add_comment,
    create_work_order,
    get_work_order,
    record_follow_up,
)
from cloud.workorders.sla import SlaStatus, SlaTerms
from cloud.workorders.states import Priority, Source, State
from cloud.workorders.tables import SlaBreach
from cloud.workorders.transitions import transition

__all__ = ["DEFAULT_PHOTO_DIR", "photo_store", "router"]

DEFAULT_PHOTO_DIR: Final = Path("var/photos")

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["work-orders"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "Not allowed on this site"},
        404: {"model": ErrorBody, "description": "No such site, work order, photo or asset"},
    },
)
WorkSite = Annotated[SiteAccess, Depends(site_access(Action.ACKNOWLEDGE))]


def photo_store(request: Request) -> PhotoStore:
    """``app.state.photo_store`` if the service set one, else ``var/photos``."""
    store = getattr(request.app.state, "photo_store", None)
    if not isinstance(store, PhotoStore):
        store = PhotoStore(DEFAULT_PHOTO_DIR)
        request.app.state.photo_store = store
    return store


Photos = Annotated[PhotoStore, Depends(photo_store)]


def _detail(session: Session, site: str, order_id: int, now_ms: int) -> WorkOrderDetail:
    order = get_work_order(session, order_id, site=site)
    asset = session.get(Asset, order.asset_id) if order.asset_id is not None else None
    return WorkOrderDetail(
        **work_order_out(order, now_ms).model_dump(),
        history=[EventOut.of(e) for e in events_of(session, order.id)],
        alarms=alarms_of(session, order.id),
        photos=[PhotoOut.of(p, site) for p in photos_of(session, order.id)],
        breaches=[BreachOut.of(b) for b in breaches_of(session, order.id)],
        asset=None if asset is None else {"id": asset.id, "name": asset.name,
                                          "asset_class": asset.asset_class})


@router.get("/{site}/work-orders", summary="Work orders of a site")
async def list_orders(
    access: ReadSite, ctx: Ctx,
    state: Annotated[list[State] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[Source] | None, Query()] = None,
    asset: Annotated[int | None, Query(ge=1)] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    sla: Annotated[list[SlaStatus] | None, Query()] = None,
    sort: Annotated[str, Query(pattern="^(" + "|".join(SORTS) + ")$")] = "priority",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[WorkOrderOut]:
    """Filter by any of state, priority, category, source, asset, assignee and SLA status
    (`ok`, `at_risk`, `breached`, `paused`, `met`, `none`); repeat a parameter for several
    values. `sort`: `priority` (emergency first, newest first; the default), `due`
    (resolution deadline), `created`, `updated`."""
    query = WorkOrderFilter(
        states=[s.value for s in state or ()], priorities=[p.value for p in priority or ()],
        categories=category or (), sources=[s.value for s in source or ()], asset_id=asset,
        assignee=assignee, sla=[s.value for s in sla or ()], sort=sort, limit=limit,
        offset=offset)
    now_ms = ctx.now_ms()

    def work(session: Session) -> list[WorkOrderOut]:
        return [work_order_out(o, now_ms)
                for o in list_work_orders(session, access.site, query, now_ms)]

    return await run(ctx, work)


@router.post("/{site}/work-orders", status_code=201, summary="Create a work order by hand")
async def create_order(access: WorkSite, body: WorkOrderIn, ctx: Ctx,
                       response: Response) -> WorkOrderDetail:
    if body.assignee is not None and not access.user.can(Action.MANAGE, access.site):
        raise ApiError(403, "forbidden", "only a supervisor may assign work orders")
    now_ms = ctx.now_ms()

    def work(session: Session) -> WorkOrderDetail:
        order = create_work_order(
            session, site=access.site, category=body.category, priority=body.priority.value,
            title=body.title, description=body.description, source=Source.MANUAL.value,
            now_ms=now_ms, actor=access.user.username, asset_id=body.asset_id,
            gateway=body.gateway, device=body.device, reference=body.reference,
            assignee=body.assignee)
        return _detail(session, access.site, order.id, now_ms)

    out = await run(ctx, work)
    response.headers["Location"] = f"{API_PREFIX}/sites/{access.site}/work-orders/{out.id}"
    return out


@router.get("/{site}/work-orders/{order_id}", summary="A work order with its record")
async def get_order(access: ReadSite, order_id: int, ctx: Ctx) -> WorkOrderDetail:
    """History (every transition with who, when and comment), attached alarms, photos,
    SLA deadlines as they stand now, breaches, and the asset."""
    now_ms = ctx.now_ms()
    return await run(ctx, lambda session: _detail(session, access.site, order_id, now_ms))


@router.post("/{site}/work-orders/{order_id}/transitions", summary="Take a transition")
async def take_transition(access: ReadSite, order_id: int, body: TransitionIn,
                          ctx: Ctx) -> WorkOrderDetail:
    """`assign` (supervisor; `assignee`), `accept`, `arrive`, `start`, `hold` (reason),
    `resume`, `resolve` (what was done) by the assignee or a supervisor; `close` (after the
    follow-up), `cancel`, `reopen` by a supervisor. 409 `invalid_transition` when the
    action does not apply in the current state."""
    actor = actor_of(access)
    if not (actor.may_progress or actor.may_manage):
        raise ApiError(403, "forbidden", f"you may not change work orders on site "
                                         f"{access.site!r}")
    now_ms = ctx.now_ms()

    def work(session: Session) -> WorkOrderDetail:
        transition(session, order_id, body.action, actor=actor, now_ms=now_ms,
                   site=access.site, comment=body.comment, assignee=body.assignee)
        return _detail(session, access.site, order_id, now_ms)

    return await run(ctx, work)


@router.post("/{site}/work-orders/{order_id}/comments", status_code=201,
             summary="Comment on a work order")
async def comment(access: WorkSite, order_id: int, body: CommentIn,
                  ctx: Ctx) -> WorkOrderDetail:
    now_ms = ctx.now_ms()

    def work(session: Session) -> WorkOrderDetail:
        order = get_work_order(session, order_id, site=access.site)
        add_comment(session, order, body.comment, user=access.user.username, now_ms=now_ms)
        return _detail(session, access.site, order_id, now_ms)

    return await run(ctx, work)


@router.post("/{site}/work-orders/{order_id}/follow-up", summary="Record the follow-up (回访)")
async def follow_up(access: ManageSite, order_id: int, body: FollowUpIn,
                    ctx: Ctx) -> WorkOrderDetail:
    """After resolution: the visit or call to the person served; needed before closing."""
    now_ms = ctx.now_ms()

    def work(session: Session) -> WorkOrderDetail:
        order = get_work_order(session, order_id, site=access.site, lock=True)
        record_follow_up(session, order, outcome=body.outcome, note=body.note,
                         user=access.user.username, now_ms=now_ms)
        return _detail(session, access.site, order_id, now_ms)

    return await run(ctx, work)


@router.post("/{site}/work-orders/{order_id}/photos", status_code=201,
             summary="Attach a photo",
             openapi_extra={"requestBody": {"required": True, "content": {
                 t: {"schema": {"type": "string", "format": "binary"}}
                 for t in ("image/jpeg", "image/png", "image/webp")}}},
             responses={413: {"model": ErrorBody}, 415: {"model": ErrorBody}})
async def upload_photo(access: WorkSite, order_id: int, request: Request, ctx: Ctx,
                       photos: Photos,
                       filename: Annotated[str, Query(max_length=255)] = "photo") -> PhotoOut:
    """The body is the image itself (`Content-Type: image/jpeg`, `image/png` or
    `image/webp`), at most the store's size limit."""
    content_type = request.headers.get("content-type", "")
    declared = int(request.headers.get("content-length") or 0)
    try:
        photos.check(content_type, max(declared, 1))
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            photos.check(content_type, len(data))  # stop reading past the limit
    except WorkOrderError as exc:
        raise api_error(exc) from None
    now_ms = ctx.now_ms()

    def work(session: Session) -> PhotoOut:
        order = get_work_order(session, order_id, site=access.site)
        photo = photos.attach(session, order, filename=filename, content_type=content_type,
                              data=bytes(data), user=access.user.username, now_ms=now_ms)
        return PhotoOut.of(photo, access.site)

    return await run(ctx, work)


@router.get("/{site}/work-orders/{order_id}/photos/{photo_id}", summary="Download a photo",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
async def download_photo(access: ReadSite, order_id: int, photo_id: int, ctx: Ctx,
                         photos: Photos) -> Response:
    def work(session: Session) -> tuple[str, bytes]:
        get_work_order(session, order_id, site=access.site)
        photo = get_photo(session, order_id, photo_id)
        return photo.content_type, photos.read(photo)

    content_type, data = await run(ctx, work)
    return Response(data, media_type=content_type,
                    headers={"Cache-Control": "private, max-age=86400"})


@router.get("/{site}/alarms/{alarm_id}/work-orders", summary="Work orders of an alarm")
async def orders_of_alarm(access: ReadSite, alarm_id: int, ctx: Ctx) -> list[WorkOrderOut]:
    now_ms = ctx.now_ms()

    def work(session: Session) -> list[WorkOrderOut]:
        return [work_order_out(o, now_ms) for o in work_orders_for_alarm(session, alarm_id)
                if o.site_id == access.site]

    return await run(ctx, work)


@router.get("/{site}/sla-breaches", summary="SLA breaches of a site, newest first")
async def list_breaches(access: ReadSite, ctx: Ctx,
                        since: Annotated[int | None, Query(ge=0)] = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[BreachOut]:
    def work(session: Session) -> list[BreachOut]:
        stmt = select(SlaBreach).where(SlaBreach.site_id == access.site)
        if since is not None:
            stmt = stmt.where(SlaBreach.detected_ms >= since)
        stmt = stmt.order_by(SlaBreach.detected_ms.desc(), SlaBreach.id.desc()).limit(limit)
        return [BreachOut.of(b) for b in session.scalars(stmt)]

    return await run(ctx, work)


@router.get("/{site}/sla-policies", summary="The SLA terms a site works under")
async def get_policies(access: ReadSite, ctx: Ctx) -> list[SlaPolicyOut]:
    """Defaults merged with the site's own rows (`origin`); `*` is any category."""
    def work(session: Session) -> list[SlaPolicyOut]:
        return [SlaPolicyOut(category=r.category, priority=Priority(r.priority),
                             origin="site" if r.origin == "site" else "default",
                             respond_minutes=r.terms.respond_minutes,
                             arrive_minutes=r.terms.arrive_minutes,
                             resolve_minutes=r.terms.resolve_minutes,
                             follow_up_minutes=r.terms.follow_up_minutes)
                for r in policy_table(session, access.site)]

    return await run(ctx, work)


@router.put("/{site}/sla-policies/{category}/{priority}", summary="Set a site's SLA terms")
async def put_policy(access: ManageSite, category: str, priority: Priority, body: SlaPolicyIn,
                     ctx: Ctx) -> SlaPolicyOut:
    """Applies to work orders created from now on (deadlines are fixed at creation)."""
    terms = SlaTerms(body.respond_minutes, body.arrive_minutes, body.resolve_minutes,
                     body.follow_up_minutes)
    now_ms = ctx.now_ms()

    def work(session: Session) -> SlaPolicyOut:
        set_site_terms(session, access.site, category, priority.value, terms,
                       user=access.user.username, now_ms=now_ms)
        return SlaPolicyOut(category=category, priority=priority, origin="site",
                            **body.model_dump())

    return await run(ctx, work)


@router.delete("/{site}/sla-policies/{category}/{priority}", status_code=204,
               summary="Remove a site's SLA terms (the default applies again)")
async def delete_policy(access: ManageSite, category: str, priority: Priority,
                        ctx: Ctx) -> Response:
    now_ms = ctx.now_ms()
    await run(ctx, lambda session: delete_site_terms(
        session, access.site, category, priority.value, user=access.user.username,
        now_ms=now_ms))
    return Response(status_code=204)


router.include_router(assets_router)
router.include_router(maintenance_router)
