"""The registry of sites, gateways, devices and points, learned from the wire and profiles.

Ingest calls the ``learn_*`` functions with validated payloads; they are upserts, so
several workers handling the same retained message (a plain subscription, a redelivery)
all succeed and agree. Messages may arrive before their parents: a device state before
the birth creates the gateway and the device; a telemetry batch creates the gateway.

Ordering rules (retained messages are redelivered on every reconnect):

- A birth always wins: it is the gateway's current boot (the broker retains only the latest).
- A will applies only to the boot it belongs to: an old boot's will arriving after the new
  boot's birth is ignored.
- A device state applies only if its ``since`` is not older than the stored one.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from cloud.db.models import Device, Gateway, Point, Site
from cloud.db.upsert import Excluded, insert_for, later, upsert
from device_profiles.schema import BacnetProfile, ModbusProfile, PointBase
from towerwatch.contract import Birth, DeviceState, Will, check_identifier

__all__ = [
    "PointSpec",
    "ensure_gateways",
    "learn_birth",
    "learn_device_state",
    "learn_will",
    "list_devices",
    "list_gateways",
    "list_points",
    "list_sites",
    "profile_points",
    "set_device_details",
    "sync_points",
    "touch_gateways",
    "upsert_site",
]

_T = TypeVar("_T")

_SITES: Table = Site.__table__  # type: ignore[assignment]
_GATEWAYS: Table = Gateway.__table__  # type: ignore[assignment]
_DEVICES: Table = Device.__table__  # type: ignore[assignment]
_POINTS: Table = Point.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class PointSpec:
    """What the registry keeps about a point (from its device profile)."""

    id: str
    name_en: str
    name_zh: str
    unit: str = "none"
    kind: str = "number"
    writable: bool = False

    def __post_init__(self) -> None:
        check_identifier(self.id, "point id")

    @classmethod
    def from_profile_point(cls, point: PointBase) -> PointSpec:
        return cls(
            id=point.id,
            name_en=point.name.en,
            name_zh=point.name.zh,
            unit=point.unit,
            kind=point.kind.value,
            writable=point.writable,
        )


def profile_points(profile: ModbusProfile | BacnetProfile) -> tuple[PointSpec, ...]:
    """The points of a (loaded, resolved) device profile."""
    return tuple(PointSpec.from_profile_point(point) for point in profile.points)


# -- sites ----------------------------------------------------------------------------
def upsert_site(
    session: Session, site_id: str, *, name: str | None = None, timezone: str | None = None
) -> Site:
    """Create the site, or update the fields given; ``timezone`` must be an IANA name."""
    check_identifier(site_id, "site id")
    if timezone is not None:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
    row = {"id": site_id, "name": name or site_id, "timezone": timezone or "UTC"}
    changes = [c for c, v in (("name", name), ("timezone", timezone)) if v is not None]
    upsert(session, _SITES, [row], keys=["id"], update=changes)
    return _fresh(session, Site, site_id)


def _ensure_sites(session: Session, site_ids: Iterable[str]) -> None:
    rows = [{"id": s, "name": s, "timezone": "UTC"} for s in set(site_ids)]
    upsert(session, _SITES, rows, keys=["id"], update=[])


def ensure_gateways(session: Session, gateways: Iterable[tuple[str, str]]) -> None:
    """Make sure these ``(site, gateway)`` rows (and their sites) exist."""
    keys = set(gateways)
    _ensure_sites(session, (site for site, _ in keys))
    rows = [{"site_id": site, "id": gw, "online": False} for site, gw in keys]
    upsert(session, _GATEWAYS, rows, keys=["site_id", "id"], update=[])


def touch_gateways(session: Session, seen: Mapping[tuple[str, str], int]) -> None:
    """Record that messages from these ``(site, gateway)`` arrived at ``seen_ms`` (cloud time).

    ``last_seen_ms`` only moves forward. One call per ingest batch.
    """
    _ensure_sites(session, (site for site, _ in seen))
    rows = [
        {"site_id": site, "id": gw, "online": False, "last_seen_ms": ms}
        for (site, gw), ms in seen.items()
    ]
    upsert(
        session,
        _GATEWAYS,
        rows,
        keys=["site_id", "id"],
        update={"last_seen_ms": lambda ex: later(_GATEWAYS.c.last_seen_ms, ex.last_seen_ms)},
    )


# -- status messages ------------------------------------------------------------------
def learn_birth(
    session: Session,
    site: str,
    gateway: str,
    birth: Birth,
    *,
    received_ms: int,
    profiles: Mapping[str, Sequence[PointSpec]] | None = None,
) -> Gateway:
    """Apply a birth: the gateway is online on ``birth.boot_id``; its devices are listed.

    Devices the birth no longer names stay in the registry with ``listed = False``.
    ``profiles`` maps profile ids to their points: listed devices whose profile is known
    get their points synchronised; others keep the points they had.
    """
    _ensure_sites(session, [site])
    gateway_row = {
        "site_id": site,
        "id": gateway,
        "boot_id": birth.boot_id,
        "version": birth.version,
        "online": True,
        "since_ms": birth.ts,
        "last_seen_ms": received_ms,
        "reason": None,
    }
    upsert(
        session,
        _GATEWAYS,
        [gateway_row],
        keys=["site_id", "id"],
        update={
            **{c: _take(c) for c in ("boot_id", "version", "online", "since_ms", "reason")},
            "last_seen_ms": lambda ex: later(_GATEWAYS.c.last_seen_ms, ex.last_seen_ms),
        },
    )
    device_rows = [
        {
            "site_id": site,
            "gateway_id": gateway,
            "id": device.id,
            "profile": device.profile,
            "name": device.name,
            "listed": True,
        }
        for device in birth.devices
    ]
    upsert(
        session,
        _DEVICES,
        device_rows,
        keys=["site_id", "gateway_id", "id"],
        update={
            "profile": _take("profile"),
            "listed": _take("listed"),
            "name": lambda ex: func.coalesce(ex.name, _DEVICES.c.name),
        },
    )
    session.execute(
        update(_DEVICES)
        .where(
            _DEVICES.c.site_id == site,
            _DEVICES.c.gateway_id == gateway,
            _DEVICES.c.id.not_in([d.id for d in birth.devices]),
        )
        .values(listed=False)
    )
    for device in birth.devices:
        points = (profiles or {}).get(device.profile)
        if points is not None:
            sync_points(session, site, gateway, device.id, points)
    return _fresh(session, Gateway, (site, gateway))


def learn_will(session: Session, site: str, gateway: str, will: Will) -> bool:
    """Apply a will (the gateway went away); ``False`` when it belongs to an older boot.

    ``last_seen_ms`` is left alone: the broker, not the gateway, sent the will.
    """
    _ensure_sites(session, [site])
    insert = insert_for(session, _GATEWAYS).values(
        site_id=site,
        id=gateway,
        boot_id=will.boot_id,
        online=False,
        since_ms=will.ts,
        reason=will.reason,
    )
    excluded = insert.excluded
    stmt = insert.on_conflict_do_update(
        index_elements=["site_id", "id"],
        set_={
            "boot_id": excluded.boot_id,
            "online": False,
            "since_ms": excluded.since_ms,
            "reason": excluded.reason,
        },
        where=or_(_GATEWAYS.c.boot_id.is_(None), _GATEWAYS.c.boot_id == excluded.boot_id),
    ).returning(_GATEWAYS.c.id)
    return session.execute(stmt).first() is not None


def learn_device_state(
    session: Session, site: str, gateway: str, device: str, state: DeviceState
) -> bool:
    """Apply a device's retained state; ``False`` when it is older than the stored one."""
    ensure_gateways(session, [(site, gateway)])
    insert = insert_for(session, _DEVICES).values(
        site_id=site,
        gateway_id=gateway,
        id=device,
        listed=False,
        online=state.online,
        since_ms=state.since,
        reason=state.reason,
    )
    excluded = insert.excluded
    stmt = insert.on_conflict_do_update(
        index_elements=["site_id", "gateway_id", "id"],
        set_={
            "online": excluded.online,
            "since_ms": excluded.since_ms,
            "reason": excluded.reason,
        },
        where=or_(_DEVICES.c.since_ms.is_(None), _DEVICES.c.since_ms <= excluded.since_ms),
    ).returning(_DEVICES.c.id)
    return session.execute(stmt).first() is not None


# -- devices and points from configuration and profiles -------------------------------
def set_device_details(
    session: Session,
    site: str,
    gateway: str,
    device: str,
    *,
    name: str | None = None,
    building: str | None = None,
    floor: str | None = None,
    room: str | None = None,
) -> Device:
    """Set a device's name and location (from the site config); ``None`` leaves a field."""
    ensure_gateways(session, [(site, gateway)])
    given = {"name": name, "building": building, "floor": floor, "room": room}
    changes = [c for c, v in given.items() if v is not None]
    row = {"site_id": site, "gateway_id": gateway, "id": device, "listed": False, **given}
    upsert(session, _DEVICES, [row], keys=["site_id", "gateway_id", "id"], update=changes)
    return _fresh(session, Device, (site, gateway, device))


def sync_points(
    session: Session, site: str, gateway: str, device: str, points: Sequence[PointSpec]
) -> None:
    """Make the device's points exactly ``points`` (upsert them, delete the others)."""
    columns = ("name_en", "name_zh", "unit", "kind", "writable")
    rows = [
        {"site_id": site, "gateway_id": gateway, "device_id": device, "id": p.id}
        | {c: getattr(p, c) for c in columns}
        for p in points
    ]
    keys = ["site_id", "gateway_id", "device_id", "id"]
    upsert(session, _POINTS, rows, keys=keys, update=columns)
    session.execute(
        delete(_POINTS).where(
            _POINTS.c.site_id == site,
            _POINTS.c.gateway_id == gateway,
            _POINTS.c.device_id == device,
            _POINTS.c.id.not_in([p.id for p in points]),
        )
    )


# -- reads ----------------------------------------------------------------------------
def list_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.id)))


def list_gateways(session: Session, site: str | None = None) -> list[Gateway]:
    query = select(Gateway).order_by(Gateway.site_id, Gateway.id)
    if site is not None:
        query = query.where(Gateway.site_id == site)
    return list(session.scalars(query))


def list_devices(
    session: Session, site: str, gateway: str | None = None, *, listed_only: bool = False
) -> list[Device]:
    query = select(Device).where(Device.site_id == site)
    if gateway is not None:
        query = query.where(Device.gateway_id == gateway)
    if listed_only:
        query = query.where(Device.listed)
    return list(session.scalars(query.order_by(Device.gateway_id, Device.id)))


def list_points(session: Session, site: str, gateway: str, device: str) -> list[Point]:
    query = select(Point).where(
        and_(Point.site_id == site, Point.gateway_id == gateway, Point.device_id == device)
    )
    return list(session.scalars(query.order_by(Point.id)))


# -- helpers --------------------------------------------------------------------------
def _take(column: str) -> Any:
    def take(excluded: Excluded) -> Any:
        return excluded[column]

    return take


def _fresh(session: Session, model: type[_T], key: Any) -> _T:
    row = session.get(model, key, populate_existing=True)
    assert row is not None, f"{model.__name__} {key!r} vanished inside its own transaction"
    return row
