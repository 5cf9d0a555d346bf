"""``INSERT … ON CONFLICT`` for both engines (PostgreSQL and SQLite share the syntax).

Upserts keep concurrent ingest workers from tripping over each other: two workers that
learn the same birth both succeed, where ``SELECT`` then ``INSERT`` would fail one of them.
Rows are sorted by key before they are sent, so two transactions lock rows in the same
order and cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnClause

from cloud.db.errors import UnsupportedDatabase

__all__ = ["Excluded", "Insert", "insert_for", "later", "sorted_rows", "upsert"]

Insert = postgresql.Insert | sqlite.Insert
Excluded = Any
"""``stmt.excluded``: the row that was proposed for insertion (``excluded.column``)."""


def insert_for(session: Session, table: Table) -> Insert:
    """The dialect's ``INSERT`` (which has ``on_conflict_do_update`` / ``_do_nothing``)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise UnsupportedDatabase(f"no upsert for {dialect!r}")


def sorted_rows(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """``rows`` with one row per key (the last wins), sorted by key."""
    by_key = {tuple(row[k] for k in keys): dict(row) for row in rows}
    return [by_key[k] for k in sorted(by_key)]


def later(current: ColumnClause[Any] | ColumnElement[Any], proposed: Any) -> ColumnElement[Any]:
    """The larger of ``current`` (may be ``NULL``) and ``proposed`` (SQL ``CASE``)."""
    return case(
        (current.is_(None), proposed),
        (proposed > current, proposed),
        else_=current,
    )


def upsert(
    session: Session,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Mapping[str, Callable[[Excluded], Any]] | Sequence[str],
    where: Callable[[Excluded], ColumnElement[bool]] | None = None,
) -> None:
    """Insert ``rows`` into ``table``; on a key conflict update the ``update`` columns.

    ``update`` names columns to take from the proposed row, or maps columns to
    ``lambda excluded: expression``. ``where`` limits which conflicting rows are updated.
    An empty ``update`` means ``DO NOTHING``.
    """
    batch = sorted_rows(rows, keys)
    if not batch:
        return
    stmt = insert_for(session, table)
    excluded = stmt.excluded
    if isinstance(update, Mapping):
        values = {column: make(excluded) for column, make in update.items()}
    else:
        values = {column: excluded[column] for column in update}
    if values:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_=values,
            where=None if where is None else where(excluded),
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt, batch)
