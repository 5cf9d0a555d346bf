"""Preventive-maintenance plans over HTTP: list, create, change, remove.

Reading needs ``read`` on the site; changes need ``manage``. The work orders a plan
produces are listed with ``GET …/work-orders?source=pm`` (each names its ``pm_plan_id``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from cloud.api.deps import Ctx, ManageSite, ReadSite
from cloud.maintenance.plans import create_plan, delete_plan, get_plan, list_plans, update_plan
from cloud.maintenance.schemas import PlanIn, PlanOut, PlanPatch
from cloud.workorders.schemas import run

__all__ = ["router"]

router = APIRouter()
"""Included in :mod:`cloud.api.routes.workorders` (prefix and tag come from there)."""


@router.get("/{site}/pm-plans", summary="The site's maintenance plans")
async def list_site_plans(access: ReadSite, ctx: Ctx,
                          asset: Annotated[int | None, Query(ge=1)] = None) -> list[PlanOut]:
    return await run(ctx, lambda s: [PlanOut.of(p)
                                     for p in list_plans(s, access.site, asset_id=asset)])


@router.post("/{site}/pm-plans", status_code=201, summary="Add a maintenance plan")
async def add_plan(access: ManageSite, body: PlanIn, ctx: Ctx) -> PlanOut:
    """Calendar plans need `anchor_date`; counter plans need `asset_id`, the counter's
    `counter_gateway`/`counter_device`/`counter_point` and `counter_interval`."""
    now_ms = ctx.now_ms()
    return await run(ctx, lambda s: PlanOut.of(create_plan(
        s, site=access.site, now_ms=now_ms, user=access.user.username, **body.fields())))


@router.get("/{site}/pm-plans/{plan_id}", summary="One maintenance plan")
async def read_plan(access: ReadSite, plan_id: int, ctx: Ctx) -> PlanOut:
    return await run(ctx, lambda s: PlanOut.of(get_plan(s, plan_id, site=access.site)))


@router.patch("/{site}/pm-plans/{plan_id}", summary="Change a maintenance plan")
async def change_plan(access: ManageSite, plan_id: int, body: PlanPatch, ctx: Ctx) -> PlanOut:
    now_ms = ctx.now_ms()

    def work(session: Session) -> PlanOut:
        plan = get_plan(session, plan_id, site=access.site)
        return PlanOut.of(update_plan(session, plan, body.fields(), now_ms=now_ms,
                                      user=access.user.username))

    return await run(ctx, work)


@router.delete("/{site}/pm-plans/{plan_id}", status_code=204, summary="Remove a plan")
async def remove_plan(access: ManageSite, plan_id: int, ctx: Ctx) -> Response:
    now_ms = ctx.now_ms()
    await run(ctx, lambda s: delete_plan(s, get_plan(s, plan_id, site=access.site),
                                         now_ms=now_ms, user=access.user.username))
    return Response(status_code=204)
