"""Tables of security patrols (migration ``0004``).

``patrol_checkpoints``  a tag on a wall: NTAG 424 DNA SUN (sealed or derived keys, last read
                        counter), plain UID or QR; optional position for walk plausibility
``patrol_routes``       ordered, any-order or partial rounds over checkpoints
``patrol_route_stops``  a route's checkpoints with expected offsets, tolerance, minimum leg
``patrol_schedules``    when a route is walked, in site-local time, with window and grace
``patrol_tours``        one walk of a route: scheduled → in progress → completed / … / missed
``patrol_scans``        every tap as received (accepted or not), with device and server time
``patrol_incidents``    findings reported on a round (text, photo reference, severity)
``patrol_exceptions``   what went wrong, escalated by policy, closed with a comment

Client-chosen ids (``scan_id``, ``incident_id``) are unique per site: a retried upload
finds its earlier answer instead of recording twice. ``patrol_exceptions.dedupe_key``
makes repeated sweeps raise each exception once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base, IdentifierType, JsonType, SerialType
from cloud.patrols.model import (
    ExceptionKind,
    ExceptionStatus,
    KeyMode,
    RouteMode,
    ScanResult,
    Severity,
    TagType,
    TourStatus,
)

__all__ = [
    "PatrolCheckpoint",
    "PatrolException",
    "PatrolIncident",
    "PatrolRoute",
    "PatrolRouteStop",
    "PatrolScan",
    "PatrolSchedule",
    "PatrolTour",
]

_CASCADE = "CASCADE"
_SET_NULL = "SET NULL"
_SITE_FK = "sites.id"
_USERNAME = String(64)
"""Usernames are kept as text: patrol records outlive user accounts."""


def _one_of(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check(column: str, enum: type[Any], name: str | None = None) -> CheckConstraint:
    return CheckConstraint(_one_of(column, [m.value for m in enum]), name=name or column)


class PatrolCheckpoint(Base):
    __tablename__ = "patrol_checkpoints"
    __table_args__ = (
        UniqueConstraint("site_id", "code"),
        UniqueConstraint("site_id", "tag_uid"),
        UniqueConstraint("site_id", "qr_code"),
        _check("tag_type", TagType),
        CheckConstraint(_one_of("key_mode", [m.value for m in KeyMode]) + " OR key_mode IS NULL",
                        name="key_mode"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    code: Mapped[str] = mapped_column(IdentifierType)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200), default="")
    tag_type: Mapped[str] = mapped_column(String(16))
    tag_uid: Mapped[str | None] = mapped_column(String(20))
    """Upper-case hex UID (SUN and UID tags)."""
    qr_code: Mapped[str | None] = mapped_column(String(128))
    key_mode: Mapped[str | None] = mapped_column(String(8))
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    meta_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    file_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_counter: Mapped[int | None] = mapped_column(BigInteger)
    """The highest SUN read counter accepted (replay protection)."""
    last_scan_ms: Mapped[int | None] = mapped_column(BigInteger)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    floor: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class PatrolRoute(Base):
    __tablename__ = "patrol_routes"
    __table_args__ = (UniqueConstraint("site_id", "code"), _check("mode", RouteMode))

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    code: Mapped[str] = mapped_column(IdentifierType)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(16))
    min_stops: Mapped[int | None] = mapped_column(Integer)
    """Partial routes: stops that make a complete round (``None``: all required stops)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class PatrolRouteStop(Base):
    __tablename__ = "patrol_route_stops"
    __table_args__ = (
        UniqueConstraint("route_id", "position"),
        UniqueConstraint("route_id", "checkpoint_id"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    route_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("patrol_routes.id", ondelete=_CASCADE))
    position: Mapped[int] = mapped_column(Integer)
    checkpoint_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("patrol_checkpoints.id", ondelete=_CASCADE), index=True)
    offset_s: Mapped[int | None] = mapped_column(Integer)
    """Expected seconds from the tour's start (``None``: no time expectation)."""
    tolerance_s: Mapped[int] = mapped_column(Integer, default=300)
    min_leg_s: Mapped[int | None] = mapped_column(Integer)
    """Least plausible seconds from the previous stop."""
    required: Mapped[bool] = mapped_column(Boolean, default=True)


class PatrolSchedule(Base):
    __tablename__ = "patrol_schedules"
    __table_args__ = (UniqueConstraint("site_id", "code"),)

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    code: Mapped[str] = mapped_column(IdentifierType)
    name: Mapped[str] = mapped_column(String(200))
    route_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("patrol_routes.id", ondelete=_CASCADE), index=True)
    recurrence: Mapped[dict[str, Any]] = mapped_column(JsonType)
    """``{"times": ["08:00", …]}`` or ``{"every_min": 180, "from": "00:00", "to": "24:00"}``,
    with optional ``"days": [0..6]`` (Monday = 0); site-local time."""
    window_min: Mapped[int] = mapped_column(Integer)
    grace_min: Mapped[int] = mapped_column(Integer)
    duration_min: Mapped[int] = mapped_column(Integer)
    guard: Mapped[str | None] = mapped_column(_USERNAME)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    planned_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class PatrolTour(Base):
    __tablename__ = "patrol_tours"
    __table_args__ = (
        UniqueConstraint("schedule_id", "scheduled_ms"),
        _check("status", TourStatus),
        Index(None, "site_id", "status"),
        Index(None, "site_id", "scheduled_ms"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    route_id: Mapped[int] = mapped_column(
        SerialType, ForeignKey("patrol_routes.id", ondelete=_CASCADE), index=True)
    schedule_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_schedules.id", ondelete=_SET_NULL))
    scheduled_ms: Mapped[int] = mapped_column(BigInteger)
    window_ms: Mapped[int] = mapped_column(BigInteger)
    grace_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32), default=TourStatus.SCHEDULED.value)
    guard: Mapped[str | None] = mapped_column(_USERNAME)
    started_ms: Mapped[int | None] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
    abandon_reason: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class PatrolScan(Base):
    __tablename__ = "patrol_scans"
    __table_args__ = (
        UniqueConstraint("site_id", "scan_id"),
        _check("result", ScanResult),
        _check("method", TagType),
        Index(None, "site_id", "event_ms"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    scan_id: Mapped[str] = mapped_column(IdentifierType)
    """Chosen by the phone; a retry with the same id returns the first answer."""
    tour_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_tours.id", ondelete=_SET_NULL), index=True)
    checkpoint_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_checkpoints.id", ondelete=_SET_NULL), index=True)
    guard: Mapped[str] = mapped_column(_USERNAME)
    method: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(String(16))
    assurance: Mapped[str | None] = mapped_column(String(8))
    device_ms: Mapped[int] = mapped_column(BigInteger)
    server_ms: Mapped[int] = mapped_column(BigInteger)
    event_ms: Mapped[int] = mapped_column(BigInteger)
    """When the tap happened as far as the cloud can tell: ``device_ms``, corrected by the
    measured skew when that is beyond tolerance."""
    skew_ms: Mapped[int | None] = mapped_column(BigInteger)
    batch_id: Mapped[str | None] = mapped_column(IdentifierType)
    counter: Mapped[int | None] = mapped_column(BigInteger)
    tag_uid: Mapped[str | None] = mapped_column(String(20))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    raw: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    """The tap as sent (SUN ``picc_data``/``cmac``/``enc``, UID or QR text)."""


class PatrolIncident(Base):
    __tablename__ = "patrol_incidents"
    __table_args__ = (UniqueConstraint("site_id", "incident_id"), _check("severity", Severity))

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    incident_id: Mapped[str] = mapped_column(IdentifierType)
    tour_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_tours.id", ondelete=_SET_NULL), index=True)
    checkpoint_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_checkpoints.id", ondelete=_SET_NULL))
    guard: Mapped[str] = mapped_column(_USERNAME)
    text: Mapped[str] = mapped_column(Text)
    photo_ref: Mapped[str | None] = mapped_column(String(500))
    severity: Mapped[str] = mapped_column(String(16))
    device_ms: Mapped[int] = mapped_column(BigInteger)
    server_ms: Mapped[int] = mapped_column(BigInteger)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)


class PatrolException(Base):
    __tablename__ = "patrol_exceptions"
    __table_args__ = (
        UniqueConstraint("site_id", "dedupe_key"),
        _check("kind", ExceptionKind),
        _check("status", ExceptionStatus),
        Index(None, "site_id", "status", "detected_ms"),
    )

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(IdentifierType, ForeignKey(_SITE_FK, ondelete=_CASCADE))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=ExceptionStatus.OPEN.value)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    tour_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_tours.id", ondelete=_SET_NULL), index=True)
    checkpoint_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_checkpoints.id", ondelete=_SET_NULL))
    scan_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_scans.id", ondelete=_SET_NULL))
    incident_id: Mapped[int | None] = mapped_column(
        SerialType, ForeignKey("patrol_incidents.id", ondelete=_SET_NULL))
    guard: Mapped[str | None] = mapped_column(_USERNAME)
    occurred_ms: Mapped[int] = mapped_column(BigInteger)
    detected_ms: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    escalation: Mapped[str | None] = mapped_column(String(16))
    """``alarm`` or ``work_order`` when policy escalated it."""
    escalation_ref: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(_USERNAME)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
