"""Tables of the alarm lifecycle (migration ``0002``): alarms, their history, site policies.

- ``alarms``: one row per alarm *instance*: from the moment it is raised until it is back
  to ``normal`` (cleared and acknowledged), when ``closed_ms`` is set. A later occurrence
  of the same (site, gateway, device, name) opens a new row. The partial unique index
  ``ux_alarms_open`` (``WHERE closed_ms IS NULL``, on SQLite and PostgreSQL alike) makes
  "one open alarm per (site, device, alarm)" a fact of the database, also under
  concurrent ingest workers.
- Site-level alarms (a gateway offline, a patrol exception) use :data:`SITE_LEVEL` for the
  gateway and/or device: a sentinel rather than ``NULL`` because ``NULL`` s are distinct in
  unique indexes, and ``"-"`` can never be a wire identifier (``[a-z0-9][a-z0-9_-]*``).
- ``rank`` orders the alarm board: fire alarms first (any priority), then by priority;
  see :func:`rank_of`. Lists sort by ``(rank, last_active_ms DESC)``.
- ``alarm_history``: every transition and comment with who, when and a comment; its id
  is the Server-Sent Events id, so a client resumes with ``Last-Event-ID``.
- ``alarm_policies``: a site's overrides of the alarm settings (JSON, validated by
  :class:`cloud.alarms.settings.AlarmPolicy`).

No foreign keys to devices or gateways: alarms are kept when the registry forgets a device.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base, IdentifierType, JsonType, SerialType
from device_profiles.schema import Severity as Priority

__all__ = [
    "CATEGORY_FIRE",
    "NAME_LENGTH",
    "PRIORITIES",
    "SITE_LEVEL",
    "Alarm",
    "AlarmHistory",
    "AlarmPolicyRow",
    "AlarmState",
    "Change",
    "Priority",
    "Source",
    "rank_of",
]

SITE_LEVEL: Final = "-"
"""Gateway and/or device of a site-level alarm (never a wire identifier)."""
NAME_LENGTH: Final = 128
CATEGORY_FIRE: Final = "fire"


class AlarmState(StrEnum):
    """ISA-18.2 alarm states."""

    NORMAL = "normal"
    UNACK_ACTIVE = "unack_active"
    ACK_ACTIVE = "ack_active"
    UNACK_RTN = "unack_rtn"


PRIORITIES: Final = tuple(Priority)
"""Highest first."""


class Source(StrEnum):
    EDGE = "edge"
    RULE = "rule"
    PATROL = "patrol"


class Change(StrEnum):
    """What happened to an alarm: the ``kind`` of a history entry and of an observer call."""

    RAISED = "raised"
    """A new alarm (a new row)."""
    REACTIVATED = "reactivated"
    """The condition came back while the alarm was still open (``occurrences`` + 1)."""
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    """Back to ``normal``: the row is closed (follows ``cleared`` or ``acknowledged``)."""
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    SHELVE_EXPIRED = "shelve_expired"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    OUT_OF_SERVICE = "out_of_service"
    IN_SERVICE = "in_service"
    REALARMED = "realarmed"
    ESCALATED = "escalated"
    COMMENT = "comment"


def rank_of(category: str, priority: str) -> int:
    """Board order: fire alarms 0-3 by priority, everything else 4-7 by priority."""
    return (0 if category == CATEGORY_FIRE else len(PRIORITIES)) + PRIORITIES.index(
        Priority(priority)
    )


def _one_of(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_OPEN = text("closed_ms IS NULL")


class Alarm(Base):
    """One alarm instance, open until it is back to ``normal``."""

    __tablename__ = "alarms"
    __table_args__ = (
        CheckConstraint(_one_of("state", [s.value for s in AlarmState]), name="state"),
        CheckConstraint(_one_of("priority", [p.value for p in Priority]), name="priority"),
        CheckConstraint(_one_of("source", [s.value for s in Source]), name="source"),
        Index(
            "ux_alarms_open",
            "site_id",
            "gateway_id",
            "device_id",
            "name",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        Index(None, "site_id", "rank", "last_active_ms"),
        Index(None, "site_id", "raised_ms"),
        Index(None, "site_id", "gateway_id", "device_id", "name", "raised_ms"),
        Index(None, "next_realarm_ms"),
        Index(None, "next_escalation_ms"),
        Index(None, "shelved_until_ms"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(
        IdentifierType, ForeignKey("sites.id", ondelete="CASCADE")
    )
    gateway_id: Mapped[str] = mapped_column(IdentifierType)
    device_id: Mapped[str] = mapped_column(IdentifierType)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    text_en: Mapped[str] = mapped_column(Text)
    text_zh: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    raised_ms: Mapped[int] = mapped_column(BigInteger)
    """When this instance was raised (first went active)."""
    last_active_ms: Mapped[int] = mapped_column(BigInteger)
    """When the condition last went active (``raised_ms`` or a reactivation)."""
    changed_ms: Mapped[int] = mapped_column(BigInteger)
    cleared_ms: Mapped[int | None] = mapped_column(BigInteger)
    """When the condition last cleared (``None`` while it has not)."""
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    """When the alarm returned to ``normal``; ``None`` while open."""
    occurrences: Mapped[int] = mapped_column(Integer, default=1)

    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_ms: Mapped[int | None] = mapped_column(BigInteger)
    ack_comment: Mapped[str | None] = mapped_column(Text)

    shelved_by: Mapped[str | None] = mapped_column(String(64))
    shelved_ms: Mapped[int | None] = mapped_column(BigInteger)
    shelve_reason: Mapped[str | None] = mapped_column(Text)
    shelved_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    """Set while shelved; the shelve expires at this time."""

    suppressed_reason: Mapped[str | None] = mapped_column(Text)
    """Set while suppressed by design (``device_offline``, ``inspection_mode``, a rule id)."""
    out_of_service: Mapped[bool] = mapped_column(Boolean, default=False)

    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_realarm_ms: Mapped[int | None] = mapped_column(BigInteger)
    next_escalation_ms: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def is_open(self) -> bool:
        return self.closed_ms is None

    @property
    def shelved(self) -> bool:
        return self.shelved_until_ms is not None

    @property
    def suppressed(self) -> bool:
        return self.suppressed_reason is not None

    @property
    def target(self) -> str:
        """``gateway/device/name`` (site-level parts left out), for logs and the audit."""
        parts = [p for p in (self.gateway_id, self.device_id) if p != SITE_LEVEL]
        return "/".join([*parts, self.name])


class AlarmHistory(Base):
    """One transition or comment of an alarm: who, when, what, and the state after it."""

    __tablename__ = "alarm_history"
    __table_args__ = (
        Index(None, "alarm_id", "id"),
        Index(None, "site_id", "ts_ms"),
        Index(None, "site_id", "id"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("alarms.id", ondelete="CASCADE")
    )
    site_id: Mapped[str] = mapped_column(IdentifierType)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    """The alarm's ISA state after this entry."""
    username: Mapped[str | None] = mapped_column(String(64))
    """Who; ``None`` for the system (edge events, rules, expiry, escalation)."""
    comment: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class AlarmPolicyRow(Base):
    """A site's alarm policy overrides (re-alarm, escalation, shelving, suppression rules)."""

    __tablename__ = "alarm_policies"

    site_id: Mapped[str] = mapped_column(
        IdentifierType, ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(64))
