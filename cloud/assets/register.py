"""The asset register: create, change, list and remove assets, and link them to devices.

Every change is audited (``asset.create``, ``asset.update``, ``asset.delete``,
``asset.link``, ``asset.unlink``). When no maintenance cycle is given, the class default
of DOMAIN.md applies (:data:`DEFAULT_CYCLE_DAYS`: elevators every 15 days, the fire alarm
system monthly, sprinklers quarterly, fire doors and water tanks six-monthly,
extinguishers yearly, other important equipment monthly).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.assets.tables import ASSET_CLASSES, Asset, AssetClass, AssetDevice
from cloud.db.audit import record_audit
from cloud.db.errors import UnknownSite
from cloud.db.models import Device, Site
from cloud.workorders.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "DEFAULT_CYCLE_DAYS",
    "EDITABLE",
    "assets_for_device",
    "create_asset",
    "delete_asset",
    "get_asset",
    "link_device",
    "list_assets",
    "unlink_device",
    "update_asset",
]

DEFAULT_CYCLE_DAYS: Final[Mapping[str, int]] = {
    AssetClass.ELEVATOR: 15, AssetClass.ESCALATOR: 15, AssetClass.FIRE_ALARM: 30,
    AssetClass.FIRE_PUMP: 30, AssetClass.PUMP: 30, AssetClass.SPRINKLER: 91,
    AssetClass.FIRE_DOOR: 182, AssetClass.WATER_TANK: 182, AssetClass.EXTINGUISHER: 365,
    AssetClass.POWER: 30, AssetClass.HVAC: 30,
}
EDITABLE: Final = ("name", "asset_class", "model", "supplier", "install_date", "building",
                   "floor", "room", "maintenance_cycle_days", "notes")
_TEXT_LIMITS: Final = {"name": 200, "model": 200, "supplier": 200, "building": 100,
                       "floor": 100, "room": 100}


def _check(fields: Mapping[str, Any]) -> None:
    for key, limit in _TEXT_LIMITS.items():
        value = fields.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise InvalidInput(key, f"at most {limit} characters")
    name = fields.get("name")
    if "name" in fields and (not isinstance(name, str) or not name.strip()):
        raise InvalidInput("name", "an asset needs a name")
    if "asset_class" in fields and fields["asset_class"] not in ASSET_CLASSES:
        raise InvalidInput("asset_class", f"unknown class {fields['asset_class']!r}; one of: "
                                          f"{', '.join(ASSET_CLASSES)}")
    cycle = fields.get("maintenance_cycle_days")
    if cycle is not None and (not isinstance(cycle, int) or not 1 <= cycle <= 3660):
        raise InvalidInput("maintenance_cycle_days", "1 to 3660 days")
    installed = fields.get("install_date")
    if installed is not None and not isinstance(installed, dt.date):
        raise InvalidInput("install_date", "a date (YYYY-MM-DD)")


def get_asset(session: Session, asset_id: int, *, site: str | None = None) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None or (site is not None and asset.site_id != site):
        raise NotFound("asset", asset_id)
    return asset


def _flush_unique(session: Session, asset: Asset) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"site {asset.site_id!r} already has an asset named {asset.name!r}",
                       details={"name": asset.name}) from exc


def create_asset(session: Session, *, site: str, name: str, asset_class: str, now_ms: int,
                 user: str | None, **fields: Any) -> Asset:
    """A new register entry; ``fields`` are the other :data:`EDITABLE` columns."""
    if session.get(Site, site) is None:
        raise UnknownSite(site)
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "not a field of an asset")
    values = {"name": name, "asset_class": asset_class, **fields}
    _check(values)
    values["name"] = name.strip()
    if values.get("maintenance_cycle_days") is None:
        values["maintenance_cycle_days"] = DEFAULT_CYCLE_DAYS.get(asset_class)
    asset = Asset(site_id=site, created_ms=now_ms, updated_ms=now_ms, **values)
    session.add(asset)
    _flush_unique(session, asset)
    record_audit(session, ts_ms=now_ms, user=user, action="asset.create", site=site,
                 target=f"asset/{asset.id}", detail={"name": asset.name, "class": asset_class})
    return asset


def update_asset(session: Session, asset: Asset, changes: Mapping[str, Any], *, now_ms: int,
                 user: str | None) -> Asset:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "not a field of an asset")
    _check(changes)
    for key, value in changes.items():
        setattr(asset, key, value.strip() if key == "name" else value)
    asset.updated_ms = now_ms
    _flush_unique(session, asset)
    record_audit(session, ts_ms=now_ms, user=user, action="asset.update", site=asset.site_id,
                 target=f"asset/{asset.id}",
                 detail={k: (v.isoformat() if isinstance(v, dt.date) else v)
                         for k, v in changes.items()})
    return asset


def delete_asset(session: Session, asset: Asset, *, now_ms: int, user: str | None) -> None:
    """Remove the entry; its work orders stay (their asset becomes empty)."""
    record_audit(session, ts_ms=now_ms, user=user, action="asset.delete", site=asset.site_id,
                 target=f"asset/{asset.id}", detail={"name": asset.name})
    session.delete(asset)
    session.flush()


def link_device(session: Session, asset: Asset, gateway: str, device: str, *, now_ms: int,
                user: str | None) -> None:
    """``device`` watches ``asset`` (idempotent); the device must be in the registry."""
    if session.get(Device, (asset.site_id, gateway, device)) is None:
        raise NotFound("device", f"{gateway}/{device}")
    if session.get(AssetDevice, (asset.id, asset.site_id, gateway, device)) is None:
        session.add(AssetDevice(asset_id=asset.id, site_id=asset.site_id, gateway_id=gateway,
                                device_id=device))
        session.flush()
        session.refresh(asset)
        record_audit(session, ts_ms=now_ms, user=user, action="asset.link",
                     site=asset.site_id, target=f"asset/{asset.id}",
                     detail={"gateway": gateway, "device": device})


def unlink_device(session: Session, asset: Asset, gateway: str, device: str, *, now_ms: int,
                  user: str | None) -> None:
    link = session.get(AssetDevice, (asset.id, asset.site_id, gateway, device))
    if link is None:
        raise NotFound("device", f"{gateway}/{device}")
    session.delete(link)
    session.flush()
    session.refresh(asset)
    record_audit(session, ts_ms=now_ms, user=user, action="asset.unlink", site=asset.site_id,
                 target=f"asset/{asset.id}", detail={"gateway": gateway, "device": device})


def list_assets(session: Session, site: str, *, asset_class: str | None = None,
                gateway: str | None = None, device: str | None = None) -> list[Asset]:
    """The site's assets by name, optionally of one class or watched by one device."""
    query = select(Asset).where(Asset.site_id == site).order_by(Asset.name)
    if asset_class is not None:
        query = query.where(Asset.asset_class == asset_class)
    if device is not None:
        query = query.join(AssetDevice).where(AssetDevice.device_id == device)
        if gateway is not None:
            query = query.where(AssetDevice.gateway_id == gateway)
    return list(session.scalars(query))


def assets_for_device(session: Session, site: str, gateway: str, device: str) -> list[Asset]:
    """The assets ``(site, gateway, device)`` watches."""
    return list(session.scalars(
        select(Asset).join(AssetDevice).where(
            AssetDevice.site_id == site, AssetDevice.gateway_id == gateway,
            AssetDevice.device_id == device).order_by(Asset.id)))
