"""Engines and sessions from a database URL: SQLite (embedded default) or PostgreSQL.

Accepted URLs:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``: a file (its directory
  is created); every connection gets ``journal_mode=WAL``, ``foreign_keys=ON``,
  ``synchronous=NORMAL`` and a busy timeout, so concurrent writers wait instead of failing.
  In-memory SQLite is refused: ingest and API use several connections.
- ``postgresql+psycopg://user:pass@host:port/db`` (``postgresql://`` and ``postgres://``
  mean the same: psycopg 3 is the only PostgreSQL driver Towerwatch ships).

Sessions are synchronous and short: one unit of work per :meth:`Database.transaction`.
Async code (the API, ingest) runs a function that opens its own transaction in a worker
thread (``await in_thread(fn)``, :meth:`Database.run`, or FastAPI's threadpool for
``def`` routes); a
:class:`~sqlalchemy.orm.Session` is never shared between threads or tasks. Sessions do
not expire objects on commit, so rows returned from a transaction stay readable.

Creating a :class:`Database` does not connect; the first transaction does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.errors import UnsupportedDatabase

__all__ = ["SQLITE_BUSY_TIMEOUT_S", "Database", "create_engine_for", "in_thread",
           "normalize_url"]

SQLITE_BUSY_TIMEOUT_S: Final = 30.0
"""How long a SQLite connection waits for another writer before failing."""

T = TypeVar("T")

_POSTGRES_NAMES: Final = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


async def in_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """``fn(*args)`` on a worker thread, as ``asyncio.to_thread``, except when cancelled:
    the thread cannot be stopped, so the cancellation waits for it (a transaction under
    way commits or rolls back and returns its connection) before it goes on. A service
    that cancels its tasks and then disposes its engine leaves no connection checked
    out. Database work of async code goes through here (:meth:`Database.run`)."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])  # a second cancellation stops waiting
        if not future.cancelled():
            future.exception()  # seen: the caller gets the cancellation
        raise


def normalize_url(url: str | URL) -> URL:
    """Parse and check ``url``; PostgreSQL URLs get the psycopg 3 driver.

    Raises :class:`UnsupportedDatabase` for other engines, drivers and in-memory SQLite.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UnsupportedDatabase(f"not a database URL: {exc}") from exc
    if parsed.drivername in _POSTGRES_NAMES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
            raise UnsupportedDatabase(
                "in-memory SQLite is not supported; use a file: sqlite:///path/to/towerwatch.db"
            )
        return parsed
    raise UnsupportedDatabase(
        f"unsupported database {parsed.drivername!r}: use sqlite:///path or "
        "postgresql+psycopg://user@host/db"
    )


def _sqlite_pragmas(foreign_keys: bool) -> Callable[[Any, object], None]:
    statements = (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        "PRAGMA synchronous=NORMAL",
    )

    def on_connect(dbapi_connection: Any, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()

    return on_connect


def create_engine_for(url: str | URL, *, echo: bool = False, foreign_keys: bool = True) -> Engine:
    """An engine for ``url`` (see the module docstring); does not connect yet.

    ``foreign_keys=False`` leaves SQLite's foreign keys off: migrations need that, because
    rebuilding a table in SQLite (drop and rename) would otherwise fire ``ON DELETE CASCADE``.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None  # normalize_url refused the rest
        if not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_pragmas(foreign_keys))
        return engine
    return create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        connect_args={"application_name": "towerwatch"},
    )


@dataclass(frozen=True)
class Database:
    """An engine and its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_url(cls, url: str | URL, *, echo: bool = False) -> Database:
        """A database for ``url``; nothing connects until the first transaction."""
        engine = create_engine_for(url, echo=echo)
        return cls(engine, sessionmaker(engine, expire_on_commit=False))

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work`` in one :meth:`transaction` on a worker thread (for async callers)."""
        def in_transaction() -> T:
            with self.transaction() as session:
                return work(session)

        return await in_thread(in_transaction)

    def session(self) -> Session:
        """A new session (the caller commits and closes it; prefer :meth:`transaction`)."""
        return self.sessions()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
