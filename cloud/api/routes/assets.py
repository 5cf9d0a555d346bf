"""The asset register over HTTP: list, create, change, remove assets; link devices.

Reading needs ``read`` on the site; changes need ``manage``. An asset shows the devices
that watch it and the ids of its open work orders (asset → work orders; the work order
names its asset).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.deps import Ctx, DeviceId, GatewayId, ManageSite, ReadSite
from cloud.assets.register import (
    create_asset,
    delete_asset,
    get_asset,
    link_device,
    list_assets,
    unlink_device,
    update_asset,
)
from cloud.assets.schemas import AssetIn, AssetOut, AssetPatch
from cloud.assets.tables import Asset, AssetClass
from cloud.workorders.schemas import run
from cloud.workorders.states import CLOSED_STATES
from cloud.workorders.tables import WorkOrder

__all__ = ["router"]

router = APIRouter()
"""Included in :mod:`cloud.api.routes.workorders` (prefix and tag come from there)."""


def _out(session: Session, asset: Asset) -> AssetOut:
    open_ids = list(session.scalars(
        select(WorkOrder.id).where(WorkOrder.asset_id == asset.id,
                                   WorkOrder.state.not_in([s.value for s in CLOSED_STATES]))
        .order_by(WorkOrder.id)))
    return AssetOut.of(asset, open_ids)


@router.get("/{site}/assets", summary="The site's asset register")
async def list_site_assets(
    access: ReadSite, ctx: Ctx, asset_class: AssetClass | None = None,
    gateway: Annotated[str | None, Query(max_length=64)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AssetOut]:
    """Optionally only one class, or the assets one device watches."""
    def work(session: Session) -> list[AssetOut]:
        return [_out(session, a) for a in list_assets(
            session, access.site, asset_class=asset_class.value if asset_class else None,
            gateway=gateway, device=device)]

    return await run(ctx, work)


@router.post("/{site}/assets", status_code=201, summary="Add an asset")
async def add_asset(access: ManageSite, body: AssetIn, ctx: Ctx) -> AssetOut:
    now_ms = ctx.now_ms()
    fields = body.model_dump(exclude={"name", "asset_class"}, exclude_none=True)

    def work(session: Session) -> AssetOut:
        asset = create_asset(session, site=access.site, name=body.name,
                             asset_class=body.asset_class.value, now_ms=now_ms,
                             user=access.user.username, **fields)
        return _out(session, asset)

    return await run(ctx, work)


@router.get("/{site}/assets/{asset_id}", summary="One asset")
async def read_asset(access: ReadSite, asset_id: int, ctx: Ctx) -> AssetOut:
    return await run(ctx, lambda s: _out(s, get_asset(s, asset_id, site=access.site)))


@router.patch("/{site}/assets/{asset_id}", summary="Change an asset")
async def change_asset(access: ManageSite, asset_id: int, body: AssetPatch,
                       ctx: Ctx) -> AssetOut:
    changes = {k: getattr(v, "value", v) for k, v in body.model_dump(exclude_unset=True).items()}
    now_ms = ctx.now_ms()

    def work(session: Session) -> AssetOut:
        asset = get_asset(session, asset_id, site=access.site)
        update_asset(session, asset, changes, now_ms=now_ms, user=access.user.username)
        return _out(session, asset)

    return await run(ctx, work)


@router.delete("/{site}/assets/{asset_id}", status_code=204, summary="Remove an asset")
async def remove_asset(access: ManageSite, asset_id: int, ctx: Ctx) -> Response:
    now_ms = ctx.now_ms()
    await run(ctx, lambda s: delete_asset(s, get_asset(s, asset_id, site=access.site),
                                          now_ms=now_ms, user=access.user.username))
    return Response(status_code=204)


@router.put("/{site}/assets/{asset_id}/devices/{gateway}/{device}",
            summary="A device watches this asset")
async def add_link(access: ManageSite, asset_id: int, gateway: GatewayId, device: DeviceId,
                   ctx: Ctx) -> AssetOut:
    now_ms = ctx.now_ms()

    def work(session: Session) -> AssetOut:
        asset = get_asset(session, asset_id, site=access.site)
        link_device(session, asset, gateway, device, now_ms=now_ms, user=access.user.username)
        return _out(session, asset)

    return await run(ctx, work)


@router.delete("/{site}/assets/{asset_id}/devices/{gateway}/{device}",
               summary="The device no longer watches this asset")
async def remove_link(access: ManageSite, asset_id: int, gateway: GatewayId,
                      device: DeviceId, ctx: Ctx) -> AssetOut:
    now_ms = ctx.now_ms()

    def work(session: Session) -> AssetOut:
        asset = get_asset(session, asset_id, site=access.site)
        unlink_device(session, asset, gateway, device, now_ms=now_ms,
                      user=access.user.username)
        return _out(session, asset)

    return await run(ctx, work)
