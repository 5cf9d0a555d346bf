"""Fixtures of the patrol store tests: the migrated ``db`` on SQLite and PostgreSQL (from
``tests/cloud/db``), with two sites, and a key vault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.db import Database, upsert_site
from cloud.patrols.keys import KeyVault
from tests.cloud.db.conftest import db, db_url, hasher, pg_store_url  # noqa: F401

MASTER = bytes.fromhex("8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0")


@pytest.fixture
def vault() -> KeyVault:
    return KeyVault(MASTER)


@pytest.fixture
def sites(db: Database) -> Iterator[Database]:  # noqa: F811
    """``db`` holding sites ``alpha`` (Asia/Shanghai) and ``beta`` (UTC)."""
    with db.transaction() as session:
        upsert_site(session, "alpha", name="Alpha Tower", timezone="Asia/Shanghai")
        upsert_site(session, "beta", name="Beta Estate")
    yield db
