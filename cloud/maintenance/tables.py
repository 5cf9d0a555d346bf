"""Tables of preventive maintenance (migration ``0003``): plans per asset or asset class.

A plan is driven either by the calendar (every ``interval_days`` from ``anchor_date``, in
the site's own time zone, inside a daily maintenance window) or by a counter (a run-hours
or meter point of a device: every ``counter_interval`` units after ``counter_start``).
The work orders a plan produces carry ``(pm_plan_id, asset_id, pm_occurrence)``, unique, so
generating twice never makes two work orders for one due date (see
:mod:`cloud.maintenance.plans`).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.assets.tables import ASSET_CLASSES, one_of
from cloud.db.base import Base, IdentifierType, SerialType

__all__ = ["PM_LEVELS", "PM_TRIGGERS", "PmLevel", "PmPlan", "PmTrigger"]


class PmLevel(StrEnum):
    """The six levels of maintenance (六级保养)."""

    DAILY = "daily"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"
    ANNUAL = "annual"
    OVERHAUL = "overhaul"
    CONTRACTOR = "contractor"


class PmTrigger(StrEnum):
    CALENDAR = "calendar"
    COUNTER = "counter"


PM_LEVELS = tuple(level.value for level in PmLevel)
PM_TRIGGERS = tuple(t.value for t in PmTrigger)
_PRIORITIES = ("emergency", "urgent", "normal", "low")


class PmPlan(Base):
    """One preventive-maintenance plan (see the module docstring)."""

    __tablename__ = "pm_plans"
    __table_args__ = (
        CheckConstraint(one_of("level", PM_LEVELS), name="level"),
        CheckConstraint(one_of("trigger", PM_TRIGGERS), name="trigger"),
        CheckConstraint(one_of("priority", _PRIORITIES), name="priority"),
        CheckConstraint(
            "asset_class IS NULL OR " + one_of("asset_class", ASSET_CLASSES), name="asset_class"
        ),
        CheckConstraint("(asset_id IS NULL) <> (asset_class IS NULL)", name="target"),
        CheckConstraint(
            "(trigger = 'calendar' AND interval_days > 0 AND anchor_date IS NOT NULL) OR "
            "(trigger = 'counter' AND counter_interval > 0 AND asset_id IS NOT NULL "
            "AND counter_device IS NOT NULL AND counter_point IS NOT NULL)",
            name="schedule",
        ),
        Index(None, "site_id", "active"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    asset_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    asset_class: Mapped[str | None] = mapped_column(String(32))
    """Every asset of this class on the site (when ``asset_id`` is ``NULL``)."""
    category: Mapped[str] = mapped_column(String(32))
    """Work-order category (trade) of the work orders this plan produces."""
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    trigger: Mapped[str] = mapped_column(String(16))
    interval_days: Mapped[int | None] = mapped_column(Integer)
    anchor_date: Mapped[dt.date | None] = mapped_column(Date)
    """The first due date (site-local); later ones follow every ``interval_days``."""
    window_start_min: Mapped[int] = mapped_column(Integer, default=0)
    """Maintenance window start, minutes after site-local midnight (elevators: 0 = 00:00)."""
    window_minutes: Mapped[int] = mapped_column(Integer, default=360)
    lead_days: Mapped[int] = mapped_column(Integer, default=3)
    """How many days ahead of the due date the work order is generated."""
    counter_gateway: Mapped[str | None] = mapped_column(IdentifierType)
    counter_device: Mapped[str | None] = mapped_column(IdentifierType)
    counter_point: Mapped[str | None] = mapped_column(IdentifierType)
    counter_start: Mapped[float | None] = mapped_column(Float)
    """Counter reading at the last service before the plan began."""
    counter_interval: Mapped[float | None] = mapped_column(Float)
    counter_lead: Mapped[float] = mapped_column(Float, default=0.0)
    """Generate this many counter units before the threshold is reached."""
    contractor: Mapped[str | None] = mapped_column(String(200))
    instructions: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
