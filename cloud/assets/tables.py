"""Tables of the asset register (migration ``0003``): assets and the devices that watch them.

An asset is a piece of equipment people maintain (an elevator, a booster pump set, a fire
alarm system); a device is what a gateway reads. Several devices may watch one asset (an
elevator controller and a separate BACnet monitor), and the link is what lets an alarm of a
device find the asset's open work order, and a maintenance work order on the asset put that
device's alarms out of service.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.db.base import Base, IdentifierType, SerialType

__all__ = ["ASSET_CLASSES", "Asset", "AssetClass", "AssetDevice", "one_of"]

_CASCADE = "CASCADE"


class AssetClass(StrEnum):
    """What kind of equipment an asset is; preventive-maintenance plans may target a class."""

    ELEVATOR = "elevator"
    ESCALATOR = "escalator"
    PUMP = "pump"
    FIRE_PUMP = "fire_pump"
    FIRE_ALARM = "fire_alarm"
    SPRINKLER = "sprinkler"
    FIRE_DOOR = "fire_door"
    EXTINGUISHER = "extinguisher"
    WATER_TANK = "water_tank"
    DOOR = "door"
    METER = "meter"
    POWER = "power"
    HVAC = "hvac"
    OTHER = "other"


ASSET_CLASSES = tuple(c.value for c in AssetClass)


def one_of(column: str, values: tuple[str, ...] | list[str]) -> str:
    """SQL text of a check constraint ``column IN (…)``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Asset(Base):
    """One register entry: name, model, supplier, install date, location, maintenance cycle."""

    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint(one_of("asset_class", ASSET_CLASSES), name="asset_class"),
        CheckConstraint("maintenance_cycle_days IS NULL OR maintenance_cycle_days > 0",
                        name="maintenance_cycle_days"),
        UniqueConstraint("site_id", "name"),
        Index(None, "site_id", "asset_class"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(
        IdentifierType, ForeignKey("sites.id", ondelete=_CASCADE)
    )
    name: Mapped[str] = mapped_column(String(200))
    asset_class: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200))
    supplier: Mapped[str | None] = mapped_column(String(200))
    install_date: Mapped[dt.date | None] = mapped_column(Date)
    building: Mapped[str | None] = mapped_column(String(100))
    floor: Mapped[str | None] = mapped_column(String(100))
    room: Mapped[str | None] = mapped_column(String(100))
    maintenance_cycle_days: Mapped[int | None] = mapped_column(Integer)
    """How often the asset is due for maintenance, in days (elevators: 15)."""
    notes: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    devices: Mapped[list[AssetDevice]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin",
        order_by="(AssetDevice.gateway_id, AssetDevice.device_id)",
    )


class AssetDevice(Base):
    """``device`` (of ``site``, behind ``gateway``) watches ``asset``."""

    __tablename__ = "asset_devices"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "gateway_id", "device_id"],
            ["devices.site_id", "devices.gateway_id", "devices.id"],
            ondelete=_CASCADE,
        ),
        Index(None, "site_id", "gateway_id", "device_id"),
    )

    asset_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("assets.id", ondelete=_CASCADE), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    device_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)

    asset: Mapped[Asset] = relationship(back_populates="devices")
