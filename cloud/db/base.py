"""The declarative base every table of the relational store derives from, and shared column types.

Conventions:

- Times are UTC epoch milliseconds in ``BIGINT`` columns named ``*_ms`` (the wire's ``ts``).
  Nothing here reads a clock: callers pass ``now_ms``, so tests control time.
- Identifiers (sites, gateways, devices, points) are the wire's ``[a-z0-9][a-z0-9_-]*``
  strings (at most 64 characters) and serve as natural keys.
- JSON columns are ``JSONB`` on PostgreSQL and ``JSON`` (text) on SQLite.
- Constraint and index names follow :data:`NAMING_CONVENTION`, so Alembic migrations name
  them the same way on both engines.

New tables live in their own modules (``class Alarm(Base): …``) and are listed in
:mod:`cloud.db.schema` so Alembic sees them.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import JSON, BigInteger, Integer, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeEngine

__all__ = [
    "ID_LENGTH",
    "NAMING_CONVENTION",
    "Base",
    "IdentifierType",
    "JsonType",
    "SerialType",
]

ID_LENGTH: Final = 64
"""Longest identifier (site, gateway, device, point), boot id or request id."""

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

IdentifierType: Final = String(ID_LENGTH)
"""Column type of identifiers and boot ids."""

JsonType: Final[TypeEngine[Any]] = JSON().with_variant(JSONB(), "postgresql")
"""JSON document: ``JSONB`` on PostgreSQL, ``JSON`` on SQLite."""

SerialType: Final[TypeEngine[int]] = BigInteger().with_variant(Integer(), "sqlite")
"""Auto-incrementing surrogate key: ``BIGINT`` identity on PostgreSQL, rowid on SQLite."""


class Base(DeclarativeBase):
    """Declarative base of all Towerwatch tables (one :class:`MetaData`)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
