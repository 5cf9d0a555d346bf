"""What the API takes and gives for assets (pydantic)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cloud.assets.tables import Asset, AssetClass

__all__ = ["AssetIn", "AssetOut", "AssetPatch", "DeviceLink"]

Short = Annotated[str, Field(max_length=100)]
Long = Annotated[str, Field(max_length=200)]


class AssetPatch(BaseModel):
    """Fields to change (absent ones stay)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    asset_class: AssetClass | None = None
    model: Long | None = None
    supplier: Long | None = None
    install_date: dt.date | None = None
    building: Short | None = None
    floor: Short | None = None
    room: Short | None = None
    maintenance_cycle_days: Annotated[int, Field(ge=1, le=3660)] | None = None
    notes: Annotated[str, Field(max_length=4000)] | None = None


class AssetIn(AssetPatch):
    """A register entry; without a maintenance cycle the class default applies."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    asset_class: AssetClass


class DeviceLink(BaseModel):
    gateway: str
    device: str


class AssetOut(BaseModel):
    id: int
    site: str
    name: str
    asset_class: str
    model: str | None
    supplier: str | None
    install_date: dt.date | None
    building: str | None
    floor: str | None
    room: str | None
    maintenance_cycle_days: int | None
    notes: str | None
    created: int
    updated: int
    devices: list[DeviceLink]
    open_work_orders: list[int] = Field(default_factory=list,
                                        description="Ids of its work orders still open.")

    @classmethod
    def of(cls, asset: Asset, open_work_orders: list[int] | None = None) -> AssetOut:
        return cls(
            id=asset.id, site=asset.site_id, name=asset.name, asset_class=asset.asset_class,
            model=asset.model, supplier=asset.supplier, install_date=asset.install_date,
            building=asset.building, floor=asset.floor, room=asset.room,
            maintenance_cycle_days=asset.maintenance_cycle_days, notes=asset.notes,
            created=asset.created_ms, updated=asset.updated_ms,
            devices=[DeviceLink(gateway=d.gateway_id, device=d.device_id)
                     for d in asset.devices],
            open_work_orders=open_work_orders or [])
