"""Tables of the cloud's core: registry, users and roles, audit log, ingest bookkeeping, commands.

Alarms, work orders and patrols get their own modules (and migrations) on the same
:class:`~cloud.db.base.Base`. Times are epoch milliseconds (``*_ms``); see
:mod:`cloud.db.base` for the conventions.

Registry keys follow the wire: a gateway is ``(site_id, id)``, a device
``(site_id, gateway_id, id)`` and a point ``(site_id, gateway_id, device_id, id)``, exactly as
``tw/v1/{site}/{gateway}/telemetry/{device}`` addresses them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.db.base import Base, IdentifierType, JsonType, SerialType
from cloud.db.roles import Role

__all__ = [
    "AuditEntry",
    "CommandRequest",
    "CommandStatus",
    "DeadLetter",
    "Device",
    "Gateway",
    "PendingEvent",
    "Point",
    "RoleAssignment",
    "SeenMessage",
    "SeqStream",
    "Site",
    "User",
]

_CASCADE = "CASCADE"


def _one_of(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# -- registry -------------------------------------------------------------------------
class Site(Base):
    """A managed building or estate; ``timezone`` is an IANA name (``Asia/Shanghai``)."""

    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")


class Gateway(Base):
    """One edge gateway; ``online``/``since_ms`` follow its birth and will on ``…/status``."""

    __tablename__ = "gateways"

    site_id: Mapped[str] = mapped_column(
        IdentifierType, ForeignKey("sites.id", ondelete=_CASCADE), primary_key=True
    )
    id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    boot_id: Mapped[str | None] = mapped_column(IdentifierType)
    version: Mapped[str | None] = mapped_column(String(64))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    since_ms: Mapped[int | None] = mapped_column(BigInteger)
    """Edge time of the birth or will that set ``online``."""
    last_seen_ms: Mapped[int | None] = mapped_column(BigInteger)
    """Cloud receive time of the newest message from this gateway."""
    reason: Mapped[str | None] = mapped_column(Text)
    """Why it went offline (from the will), else ``None``."""


class Device(Base):
    """A device behind a gateway: from birth messages (profile, name) and the site config.

    ``listed`` says whether the gateway's latest birth names it; ``online`` is ``None``
    until the gateway publishes the device's state.
    """

    __tablename__ = "devices"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "gateway_id"], ["gateways.site_id", "gateways.id"], ondelete=_CASCADE
        ),
    )

    site_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    profile: Mapped[str | None] = mapped_column(IdentifierType)
    name: Mapped[str | None] = mapped_column(String(200))
    building: Mapped[str | None] = mapped_column(String(100))
    floor: Mapped[str | None] = mapped_column(String(100))
    room: Mapped[str | None] = mapped_column(String(100))
    listed: Mapped[bool] = mapped_column(Boolean, default=False)
    online: Mapped[bool | None] = mapped_column(Boolean)
    since_ms: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)


class Point(Base):
    """A point of a device, learned from the device's profile."""

    __tablename__ = "points"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "gateway_id", "device_id"],
            ["devices.site_id", "devices.gateway_id", "devices.id"],
            ondelete=_CASCADE,
        ),
    )

    site_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    device_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    writable: Mapped[bool] = mapped_column(Boolean, default=False)


# -- users and roles ------------------------------------------------------------------
class User(Base):
    """A person who logs in; ``username`` is stored lower-case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)

    assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class RoleAssignment(Base):
    """``user`` holds ``role`` on ``site_id``, or on every site when ``site_id`` is ``NULL``."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        CheckConstraint(_one_of("role", [r.value for r in Role]), name="role"),
        UniqueConstraint("user_id", "role", "site_id"),
        # NULLs are distinct in unique constraints: one more index for all-sites roles.
        Index(
            "ux_role_assignments_all_sites",
            "user_id",
            "role",
            unique=True,
            postgresql_where=text("site_id IS NULL"),
            sqlite_where=text("site_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("users.id", ondelete=_CASCADE), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str | None] = mapped_column(
        IdentifierType, ForeignKey("sites.id", ondelete=_CASCADE)
    )

    user: Mapped[User] = relationship(back_populates="assignments")


# -- audit ----------------------------------------------------------------------------
class AuditEntry(Base):
    """One audited action (append-only): who did what, where, to what.

    No foreign keys on purpose: the log outlives the users and sites it names.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "site_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    """Who acted; ``None`` for the system itself (escalation, expiry)."""
    action: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(IdentifierType)
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


# -- ingest bookkeeping ---------------------------------------------------------------
class SeenMessage(Base):
    """A message ingest has accepted: the key that makes redeliveries drop."""

    __tablename__ = "seen_messages"

    gateway_key: Mapped[str] = mapped_column(String(129), primary_key=True)
    """``{site}/{gateway}``."""
    boot_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seen_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class SeqStream(Base):
    """Sequence bookkeeping of one (gateway, boot): high-water mark and counted gaps.

    ``gaps`` counts jumps past ``high_water + 1``; ``missing`` is the number of skipped
    sequence numbers not (yet) received; ``late`` counts messages that arrived below the
    high-water mark and filled a gap (reordering across workers, or a late redelivery).
    """

    __tablename__ = "seq_streams"

    gateway_key: Mapped[str] = mapped_column(String(129), primary_key=True)
    boot_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    high_water: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    gaps: Mapped[int] = mapped_column(BigInteger, default=0)
    missing: Mapped[int] = mapped_column(BigInteger, default=0)
    late: Mapped[int] = mapped_column(BigInteger, default=0)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    """Cloud time of the first accepted message of this boot."""
    last_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    """Cloud time of the latest update (pruning looks at it)."""


class PendingEvent(Base):
    """An accepted event not yet applied by the alarm service (the ingest outbox).

    Written in the transaction that claims the message, deleted in the transaction that
    applies it (or once the sink has taken it), so a worker that dies in between leaves
    the row for the replay job (:mod:`cloud.ingest.replay`). ``event`` is the contract's
    JSON of the :class:`~towerwatch.contract.Event`; ``due_ms`` is when the replay may
    take it next (the claim plus a grace period, then backing off per ``attempts``).
    """

    __tablename__ = "pending_events"
    __table_args__ = (Index(None, "site_id", "gateway_id", "device_id", "name"),)

    gateway_key: Mapped[str] = mapped_column(String(129), primary_key=True)
    boot_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[str] = mapped_column(IdentifierType)
    gateway_id: Mapped[str] = mapped_column(IdentifierType)
    device_id: Mapped[str] = mapped_column(IdentifierType)
    name: Mapped[str] = mapped_column(IdentifierType)
    """The event's ``name`` (also inside ``event``), to find earlier events of one alarm."""
    event: Mapped[str] = mapped_column(Text)
    received_ms: Mapped[int] = mapped_column(BigInteger)
    claimed_ms: Mapped[int] = mapped_column(BigInteger)
    due_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Replays so far (the hand-over right after the claim is not counted)."""


class DeadLetter(Base):
    """A message ingest could not use, with the reason; ``payload`` may be truncated."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    received_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)
    """Size of the original payload in bytes (``len(payload)`` unless truncated)."""
    reason: Mapped[str] = mapped_column(Text)


# -- commands to the edge -------------------------------------------------------------
class CommandStatus(StrEnum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    EXPIRED = "expired"


class CommandRequest(Base):
    """A command sent to a gateway on ``…/cmd/{request_id}`` and what became of it."""

    __tablename__ = "command_requests"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "gateway_id"], ["gateways.site_id", "gateways.id"], ondelete=_CASCADE
        ),
        CheckConstraint(_one_of("op", ["write", "reload", "ping"]), name="op"),
        CheckConstraint(_one_of("status", [s.value for s in CommandStatus]), name="status"),
        Index(None, "status", "expires_ms"),
        Index(None, "site_id", "created_ms"),
    )

    request_id: Mapped[str] = mapped_column(IdentifierType, primary_key=True)
    site_id: Mapped[str] = mapped_column(IdentifierType)
    gateway_id: Mapped[str] = mapped_column(IdentifierType)
    op: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(IdentifierType)
    point_id: Mapped[str | None] = mapped_column(IdentifierType)
    value: Mapped[Any] = mapped_column(JsonType, nullable=True)
    username: Mapped[str | None] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=CommandStatus.PENDING.value)
    reply_error: Mapped[str | None] = mapped_column(Text)
    replied_ms: Mapped[int | None] = mapped_column(BigInteger)
