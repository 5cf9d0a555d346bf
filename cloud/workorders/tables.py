"""Tables of work orders, SLA policies and breaches, history and photos (migration ``0003``).

The asset register (:mod:`cloud.assets.tables`) and preventive-maintenance plans
(:mod:`cloud.maintenance.tables`) are imported here so one import registers all of them.

- ``work_orders.open_key`` holds ``asset:{id}:{alarm}`` (or ``device:{gw}/{dev}:{alarm}``
  when no asset is linked) while a work order raised from an alarm is open, and ``NULL``
  once it is resolved, closed or cancelled: its unique constraint is what makes "one open
  work order per (asset, alarm)" true under concurrent ingest workers, on both engines.
- ``(pm_plan_id, asset_id, pm_occurrence)`` is unique: one work order per due date.
- Deadlines are UTC epoch ms; ``hold_since_ms`` is set while the SLA clock is paused.
- Alarm ids carry no foreign key: alarms and work orders are kept for ever, separately.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

import cloud.maintenance.tables  # noqa: F401  (registers pm_plans for the foreign key)
from cloud.assets.tables import Asset, AssetDevice, one_of
from cloud.db.base import Base, IdentifierType, JsonType, SerialType
from cloud.workorders.states import BREACH_KINDS, PRIORITIES, SOURCES, STATES

__all__ = [
    "Asset",
    "AssetDevice",
    "SlaBreach",
    "SlaPolicy",
    "WorkOrder",
    "WorkOrderAlarm",
    "WorkOrderEvent",
    "WorkOrderPhoto",
]

_CASCADE = "CASCADE"


class WorkOrder(Base):
    """One job: a fault to fix, a finding to follow up, a maintenance visit."""

    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint(one_of("state", STATES), name="state"),
        CheckConstraint(one_of("priority", PRIORITIES), name="priority"),
        CheckConstraint(one_of("source", SOURCES), name="source"),
        UniqueConstraint("open_key"),
        UniqueConstraint("pm_plan_id", "asset_id", "pm_occurrence"),
        Index(None, "site_id", "state", "priority"),
        Index(None, "site_id", "created_ms"),
        Index(None, "asset_id", "state"),
        Index(None, "state", "resolve_due_ms"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey("sites.id", ondelete=_CASCADE))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="new")
    held_from: Mapped[str | None] = mapped_column(String(16))
    """The state to resume to while ``on_hold``."""
    hold_reason: Mapped[str | None] = mapped_column(Text)
    asset_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("assets.id", ondelete="SET NULL")
    )
    gateway_id: Mapped[str | None] = mapped_column(IdentifierType)
    device_id: Mapped[str | None] = mapped_column(IdentifierType)
    alarm_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """The alarm that raised it (later occurrences are in ``work_order_alarms``)."""
    alarm_key: Mapped[str | None] = mapped_column(String(128))
    open_key: Mapped[str | None] = mapped_column(String(255))
    pm_plan_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("pm_plans.id", ondelete="SET NULL")
    )
    pm_occurrence: Mapped[int | None] = mapped_column(BigInteger)
    """Calendar plans: due date as epoch ms of its site-local midnight; counter plans: the
    counter threshold."""
    reference: Mapped[str | None] = mapped_column(String(128))
    """What raised it outside alarms and plans (a patrol finding id, a phone call)."""
    assignee: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    scheduled_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    scheduled_end_ms: Mapped[int | None] = mapped_column(BigInteger)
    respond_due_ms: Mapped[int | None] = mapped_column(BigInteger)
    arrive_due_ms: Mapped[int | None] = mapped_column(BigInteger)
    resolve_due_ms: Mapped[int | None] = mapped_column(BigInteger)
    hold_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    paused_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    """Total time spent on hold (already added to the deadlines)."""
    responded_ms: Mapped[int | None] = mapped_column(BigInteger)
    arrived_ms: Mapped[int | None] = mapped_column(BigInteger)
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    follow_up_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    follow_up_due_ms: Mapped[int | None] = mapped_column(BigInteger)
    follow_up_ms: Mapped[int | None] = mapped_column(BigInteger)
    follow_up_by: Mapped[str | None] = mapped_column(String(64))
    follow_up_outcome: Mapped[str | None] = mapped_column(String(16))
    follow_up_note: Mapped[str | None] = mapped_column(Text)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    """How many alarm occurrences attached to it (the first included)."""


class WorkOrderEvent(Base):
    """History: every transition, comment, attachment and follow-up, with who and when."""

    __tablename__ = "work_order_events"
    __table_args__ = (Index(None, "work_order_id", "id"),)

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("work_orders.id", ondelete=_CASCADE)
    )
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class WorkOrderAlarm(Base):
    """An alarm occurrence attached to a work order (the navigable alarm ↔ work-order link)."""

    __tablename__ = "work_order_alarms"

    work_order_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("work_orders.id", ondelete=_CASCADE), primary_key=True
    )
    alarm_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    attached_ms: Mapped[int] = mapped_column(BigInteger)


class WorkOrderPhoto(Base):
    """A photo's metadata; the bytes live in the photo directory under ``stored_name``."""

    __tablename__ = "work_order_photos"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("work_orders.id", ondelete=_CASCADE), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_name: Mapped[str] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(64))
    uploaded_ms: Mapped[int] = mapped_column(BigInteger)


class SlaPolicy(Base):
    """A site's override of the default SLA for ``(category, priority)``.

    ``category`` ``*`` applies to every category of that priority. ``None`` for a duration
    means "no such deadline" (normal work has no arrival deadline).
    """

    __tablename__ = "sla_policies"
    __table_args__ = (
        CheckConstraint(one_of("priority", PRIORITIES), name="priority"),
        UniqueConstraint("site_id", "category", "priority"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey("sites.id", ondelete=_CASCADE))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    respond_minutes: Mapped[int | None] = mapped_column(Integer)
    arrive_minutes: Mapped[int | None] = mapped_column(Integer)
    resolve_minutes: Mapped[int | None] = mapped_column(Integer)
    follow_up_minutes: Mapped[int] = mapped_column(Integer)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class SlaBreach(Base):
    """A deadline that passed unmet: recorded once per (work order, kind), then escalated."""

    __tablename__ = "sla_breaches"
    __table_args__ = (
        CheckConstraint(one_of("kind", BREACH_KINDS), name="kind"),
        UniqueConstraint("work_order_id", "kind"),
        Index(None, "site_id", "detected_ms"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("work_orders.id", ondelete=_CASCADE)
    )
    site_id: Mapped[str] = mapped_column(IdentifierType)
    kind: Mapped[str] = mapped_column(String(16))
    due_ms: Mapped[int] = mapped_column(BigInteger)
    detected_ms: Mapped[int] = mapped_column(BigInteger)
    met_ms: Mapped[int | None] = mapped_column(BigInteger)
    """When the milestone was finally met (late), if it was."""
    escalated_ms: Mapped[int | None] = mapped_column(BigInteger)
    escalated_via: Mapped[str | None] = mapped_column(String(32))
