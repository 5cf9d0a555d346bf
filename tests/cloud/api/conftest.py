"""Fixtures: the API on a migrated relational store (SQLite, and PostgreSQL marked
integration), a SQLite time-series store, an injected clock and a recording sender.

``client`` is an :class:`httpx.AsyncClient` on the app (ASGI transport, no sockets);
``as_user("viewer-a")`` returns it with that user's bearer token.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from cloud.api import create_app
from cloud.db import Database, upgrade
from cloud.db.schema import target_metadata
from cloud.security.passwords import PasswordHasher
from cloud.settings import ApiSettings, CloudSettings
from cloud.timeseries import SqliteStore
from tests.cloud.api.support import (
    SECRET,
    AsUser,
    FakeClock,
    RecordingSender,
    bearer,
    login,
    seed,
)
from tests.servers.postgres import PostgresServer

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]

@pytest.fixture(scope="session")
def api_pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A PostgreSQL database migrated once per session (emptied before each test)."""
    name = postgres.create_database(f"api_{uuid.uuid4().hex[:12]}")
    try:
        url = postgres.sqlalchemy_url_for(name)
        upgrade(url)
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def hasher() -> PasswordHasher:
    """A cheap Argon2id hasher (production parameters cost ~50 ms a hash)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(params=ENGINES)
def database(
    request: pytest.FixtureRequest, tmp_path: Path, hasher: PasswordHasher
) -> Iterator[Database]:
    """A migrated relational store holding the seeded sites, gateways and users."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'towerwatch.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("api_pg_url")
    db = Database.from_url(url)
    try:
        if db.dialect == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in target_metadata().sorted_tables)
            with db.engine.begin() as connection:
                connection.execute(text(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE"))
        with db.transaction() as session:
            seed(session, hasher)
        yield db
    finally:
        db.dispose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "timeseries.db") as ts:
        yield ts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def api_settings(tmp_path: Path) -> ApiSettings:
    """API settings with a secret file; tests override fields with ``model_copy``."""
    secret = tmp_path / "api-secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    return ApiSettings(secret_file=secret, secret_env=None, token_ttl=3600.0,
                       login_attempts=3, login_window=60.0, max_points=1000,
                       max_range=30 * 86400.0)


@pytest.fixture
def app(
    api_settings: ApiSettings,
    database: Database,
    store: SqliteStore,
    sender: RecordingSender,
    clock: FakeClock,
    hasher: PasswordHasher,
) -> FastAPI:
    settings = CloudSettings(api=api_settings)
    return create_app(
        settings, db=database, store=store, commands=sender, clock=clock, hasher=hasher
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def as_user(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[AsUser]:
    """``await as_user("viewer-a")``: a client sending that user's token."""
    opened: list[httpx.AsyncClient] = []

    async def make(username: str) -> httpx.AsyncClient:
        token = await login(client, username)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                 base_url="http://testserver", headers=bearer(token))
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.aclose()
