"""Lookups the alarm path repeats for every event, answered once per transaction.

A device's profile and whether it (or its gateway) is offline, a site's alarm settings:
each is read at most once per transaction and kept in the transaction's memo
(:func:`~cloud.alarms.commits.transaction_memo`). :func:`prefetch_devices` reads the
devices and gateways of a whole batch of events in two queries.
:func:`insert_unless_taken` inserts a row unless a unique key holds it already, without a
savepoint (``INSERT … ON CONFLICT DO NOTHING RETURNING``, on PostgreSQL and SQLite alike).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.alarms.commits import transaction_memo
from cloud.db.models import Device, Gateway

__all__ = ["covering", "device_offline", "device_profile", "insert_unless_taken", "memoized",
           "prefetch_devices"]

T = TypeVar("T")
E = TypeVar("E")
DeviceKey = tuple[str, str, str]
_DEVICE, _GATEWAY = "device", "gateway"


def memoized(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """``load()``, once per transaction and ``key``."""
    memo = transaction_memo(session)
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    value = memo[key] = load()
    return value


def _device(session: Session, key: DeviceKey) -> tuple[str | None, bool | None] | None:
    """``(profile, online)`` of a known device, ``None`` for an unknown one."""
    def load() -> tuple[str | None, bool | None] | None:
        row = session.get(Device, key)
        return None if row is None else (row.profile, row.online)

    return memoized(session, (_DEVICE, key), load)


def _gateway_online(session: Session, site: str, gateway: str) -> bool | None:
    def load() -> bool | None:
        row = session.get(Gateway, (site, gateway))
        return None if row is None else row.online

    return memoized(session, (_GATEWAY, site, gateway), load)


def covering(columns: Sequence[Any],
             keys: Collection[tuple[Any, ...]]) -> ColumnElement[bool]:
    """A condition that holds for every key in ``keys`` (and maybe a few more rows: filter
    them): each column ``IN`` its values. Much cheaper to send than a row-value ``IN`` of
    thousands of parameters."""
    return and_(*(column.in_(sorted({key[n] for key in keys}))
                  for n, column in enumerate(columns)))


def device_profile(session: Session, key: DeviceKey) -> str | None:
    facts = _device(session, key)
    return None if facts is None else facts[0]


def device_offline(session: Session, site: str, gateway: str, device: str) -> bool:
    """The gateway is known and offline, or the device is known and offline."""
    if _gateway_online(session, site, gateway) is False:
        return True
    facts = _device(session, (site, gateway, device))
    return facts is not None and facts[1] is False


def prefetch_devices(session: Session, keys: Collection[DeviceKey]) -> None:
    """Read the devices ``keys`` and their gateways into the transaction's memo."""
    memo = transaction_memo(session)
    wanted = sorted({k for k in keys if (_DEVICE, k) not in memo})
    if wanted:
        found = {(d.site_id, d.gateway_id, d.id): (d.profile, d.online)
                 for d in session.execute(
                     select(Device.site_id, Device.gateway_id, Device.id, Device.profile,
                            Device.online)
                     .where(covering((Device.site_id, Device.gateway_id, Device.id), wanted)))}
        for key in wanted:
            memo[(_DEVICE, key)] = found.get(key)
    gateways = sorted({(s, g) for s, g, _d in keys if (_GATEWAY, s, g) not in memo})
    if gateways:
        online = {(g.site_id, g.id): g.online for g in session.execute(
            select(Gateway.site_id, Gateway.id, Gateway.online)
            .where(covering((Gateway.site_id, Gateway.id), gateways)))}
        for site, gateway in gateways:
            memo[(_GATEWAY, site, gateway)] = online.get((site, gateway))


def insert_unless_taken(session: Session, row: E) -> E | None:
    """Insert the transient ``row`` and return it persistent (with its id), or ``None``
    when a unique key (an open alarm's, an open work order's) is taken already; the row
    that holds it is visible once this returns (PostgreSQL waits for its transaction)."""
    entity: type[Any] = type(row)
    state: dict[str, Any] = vars(row)
    dialect = session.get_bind().dialect.name
    columns, statement = _INSERTS.get((dialect, entity)) or _conflict_free_insert(dialect,
                                                                                  entity)
    values = {key: state[key] for key, primary in columns
              if key in state and not (primary and state[key] is None)}
    return session.scalars(statement, values,
                           execution_options={"populate_existing": True}).first()


_INSERTS: dict[tuple[str, type[Any]], tuple[tuple[tuple[str, bool], ...], Any]] = {}


def _conflict_free_insert(dialect: str,
                          entity: type[Any]) -> tuple[tuple[tuple[str, bool], ...], Any]:
    """The entity's columns (name, part of the primary key) and its ``INSERT … ON
    CONFLICT DO NOTHING RETURNING`` (made once, so its compiled form is cached too)."""
    if dialect == "postgresql":
        statement: Any = postgresql.insert(entity)
    elif dialect == "sqlite":
        statement = sqlite.insert(entity)
    else:  # pragma: no cover - the relational store is SQLite or PostgreSQL
        raise ValueError(f"no conflict-free insert for the {dialect} dialect")
    columns = tuple((a.key, a.columns[0].primary_key) for a in inspect(entity).column_attrs)
    made = _INSERTS[(dialect, entity)] = (
        columns, statement.on_conflict_do_nothing().returning(entity))
    return made
