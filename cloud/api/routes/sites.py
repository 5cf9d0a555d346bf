"""``/api/v1/sites``: the sites a user may see, their gateways, devices and points.

Times are UTC epoch milliseconds, like the wire. Online states come from the gateways'
retained status and device-state messages (see :mod:`cloud.db.registry`); last values
come from the time-series store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from cloud.api.deps import (
    API_PREFIX,
    IDENTIFIER_REGEX,
    Ctx,
    CurrentUser,
    DeviceId,
    GatewayId,
    MemberSite,
    ReadSite,
    require_site,
)
from cloud.api.errors import ApiError, ErrorBody
from cloud.db.models import Device, Gateway, Point
from cloud.db.registry import list_devices, list_gateways, list_points, list_sites
from cloud.timeseries.base import Sample

__all__ = [
    "DeviceDetail",
    "DeviceOut",
    "GatewayOut",
    "LastValue",
    "PointOut",
    "SiteDetail",
    "SiteOut",
    "router",
]

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["sites"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "No access to this site"},
        404: {"model": ErrorBody, "description": "No such site, gateway or device"},
    },
)

ScalarValue = bool | int | float | str | None


class SiteOut(BaseModel):
    id: str
    name: str
    timezone: str = Field(description="IANA time zone of the site.")
    actions: list[str] = Field(description="What the current user may do on this site.")


class SiteDetail(SiteOut):
    gateways: int
    gateways_online: int
    devices: int
    devices_online: int
    devices_offline: int


class GatewayOut(BaseModel):
    id: str
    online: bool
    since: int | None = Field(description="Edge time of the birth or will that set `online`.")
    last_seen: int | None = Field(description="Cloud time of the newest message.")
    boot_id: str | None
    version: str | None
    reason: str | None = Field(description="Why it went offline, if it did.")


class Location(BaseModel):
    building: str | None
    floor: str | None
    room: str | None


class DeviceOut(BaseModel):
    gateway: str
    id: str
    name: str | None
    profile: str | None
    listed: bool = Field(description="Whether the gateway's latest birth names the device.")
    online: bool | None = Field(description="null until the gateway reports the device.")
    since: int | None
    reason: str | None
    location: Location


class LastValue(BaseModel):
    value: ScalarValue
    quality: Literal["good", "stale", "bad"]
    ts: int = Field(description="Edge time of the sample.")


class PointName(BaseModel):
    en: str
    zh: str


class PointOut(BaseModel):
    id: str
    name: PointName | None = Field(description="null for a point the registry does not know.")
    unit: str | None
    kind: str | None
    writable: bool
    last: LastValue | None


class DeviceDetail(DeviceOut):
    points: list[PointOut]


def gateway_out(row: Gateway) -> GatewayOut:
    return GatewayOut(
        id=row.id, online=row.online, since=row.since_ms, last_seen=row.last_seen_ms,
        boot_id=row.boot_id, version=row.version, reason=row.reason,
    )


def device_out(row: Device) -> DeviceOut:
    return DeviceOut(
        gateway=row.gateway_id, id=row.id, name=row.name, profile=row.profile,
        listed=row.listed, online=row.online, since=row.since_ms, reason=row.reason,
        location=Location(building=row.building, floor=row.floor, room=row.room),
    )


def last_value(sample: Sample | None) -> LastValue | None:
    if sample is None:
        return None
    return LastValue(value=sample.value, quality=sample.quality, ts=sample.ts_ms)


def points_out(points: list[Point], latest: dict[str, Sample]) -> list[PointOut]:
    """Registry points with their last values, then points only the store knows."""
    known = {p.id for p in points}
    out = [
        PointOut(
            id=p.id, name=PointName(en=p.name_en, zh=p.name_zh), unit=p.unit, kind=p.kind,
            writable=p.writable, last=last_value(latest.get(p.id)),
        )
        for p in points
    ]
    out += [
        PointOut(id=pid, name=None, unit=None, kind=None, writable=False, last=last_value(s))
        for pid, s in sorted(latest.items())
        if pid not in known
    ]
    return out


def _device_and_points(
    site: str, gateway: str, device: str
) -> Callable[[Session], tuple[Device, list[Point]]]:
    def work(session: Session) -> tuple[Device, list[Point]]:
        require_site(session, site)
        row = session.get(Device, (site, gateway, device))
        if row is None:
            raise ApiError(
                404, "device_not_found", f"no device {gateway}/{device} on site {site!r}",
                details={"site": site, "gateway": gateway, "device": device},
            )
        return row, list_points(session, site, gateway, device)

    return work


# -- routes ---------------------------------------------------------------------------
@router.get("", summary="Sites of the current user")
async def sites(user: CurrentUser, ctx: Ctx) -> list[SiteOut]:
    """The sites on which the user holds a role, with what the user may do on each."""
    rows = await ctx.run(list_sites)
    return [
        SiteOut(id=s.id, name=s.name, timezone=s.timezone,
                actions=[a.value for a in user.actions_on(s.id)])
        for s in rows
        if user.has_role_on(s.id)
    ]


@router.get("/{site}", summary="One site")
async def site(access: MemberSite, ctx: Ctx) -> SiteDetail:
    """A site with counts of its gateways and devices (online or not)."""

    def work(session: Session) -> SiteDetail:
        row = require_site(session, access.site)
        gateways = list_gateways(session, access.site)
        devices = list_devices(session, access.site)
        return SiteDetail(
            id=row.id, name=row.name, timezone=row.timezone,
            actions=[a.value for a in access.user.actions_on(row.id)],
            gateways=len(gateways), gateways_online=sum(g.online for g in gateways),
            devices=len(devices),
            devices_online=sum(d.online is True for d in devices),
            devices_offline=sum(d.online is False for d in devices),
        )

    return await ctx.run(work)


@router.get("/{site}/gateways", summary="Gateways of a site")
async def gateways(access: ReadSite, ctx: Ctx) -> list[GatewayOut]:
    """Every gateway of the site with its online state, since when, and when last heard."""

    def work(session: Session) -> list[GatewayOut]:
        require_site(session, access.site)
        return [gateway_out(g) for g in list_gateways(session, access.site)]

    return await ctx.run(work)


@router.get("/{site}/devices", summary="Devices of a site")
async def devices(
    access: ReadSite,
    ctx: Ctx,
    gateway: str | None = Query(
        None, pattern=IDENTIFIER_REGEX, description="Only this gateway's devices."
    ),
    listed_only: bool = Query(False, description="Only devices the latest birth names."),
) -> list[DeviceOut]:
    """Devices with their online state and location."""

    def work(session: Session) -> list[DeviceOut]:
        require_site(session, access.site)
        rows = list_devices(session, access.site, gateway, listed_only=listed_only)
        return [device_out(d) for d in rows]

    return await ctx.run(work)


@router.get("/{site}/devices/{gateway}/{device}", summary="One device, its points and values")
async def device(
    access: ReadSite, gateway: GatewayId, device: DeviceId, ctx: Ctx
) -> DeviceDetail:
    """A device with each point's last value (value, quality, edge time)."""
    row, points = await ctx.run(_device_and_points(access.site, gateway, device))
    latest = await ctx.store.latest_for_device(access.site, gateway, device)
    return DeviceDetail(**device_out(row).model_dump(), points=points_out(points, latest))


@router.get("/{site}/devices/{gateway}/{device}/points", summary="Points of a device")
async def points(
    access: ReadSite, gateway: GatewayId, device: DeviceId, ctx: Ctx
) -> list[PointOut]:
    """The device's points (from its profile) with their last values."""
    _, rows = await ctx.run(_device_and_points(access.site, gateway, device))
    latest = await ctx.store.latest_for_device(access.site, gateway, device)
    return points_out(rows, latest)
