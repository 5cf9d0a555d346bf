"""Fixtures: every store test runs on SQLite and (marked integration) on PostgreSQL.

``db_url`` is an empty database (a fresh one per test) for the migration tests. ``db`` is
a migrated store: on SQLite a new file per test; on PostgreSQL one database migrated
once per session and emptied (``TRUNCATE``) before each test, because creating and
migrating a PostgreSQL database costs about half a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cloud.db import Database, upgrade
from cloud.db.schema import target_metadata
from cloud.security.passwords import PasswordHasher
from tests.servers.plugin import PostgresDatabase
from tests.servers.postgres import PostgresServer

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'towerwatch.db'}"
    postgres_db: PostgresDatabase = request.getfixturevalue("postgres_db")
    return postgres_db.sqlalchemy_url


@pytest.fixture(scope="session")
def pg_store_url(postgres: PostgresServer) -> Iterator[str]:
    """A PostgreSQL database migrated to head, shared by the session's store tests."""
    name = postgres.create_database(f"store_{uuid.uuid4().hex[:12]}")
    try:
        url = postgres.sqlalchemy_url_for(name)
        upgrade(url)
        yield url
    finally:
        postgres.drop_database(name)


def _empty_postgres(database: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in target_metadata().sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty store."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'towerwatch.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_store_url")
    database = Database.from_url(url)
    try:
        if database.dialect == "postgresql":
            _empty_postgres(database)
        yield database
    finally:
        database.dispose()


@pytest.fixture
def pg(pg_store_url: str) -> Iterator[Database]:
    """The migrated, empty PostgreSQL store, for PostgreSQL-only tests (mark them integration)."""
    database = Database.from_url(pg_store_url)
    try:
        _empty_postgres(database)
        yield database
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def hasher() -> PasswordHasher:
    """A cheap Argon2id hasher (the production parameters cost ~50 ms a hash)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
