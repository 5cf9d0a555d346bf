"""Fixtures of the work-order, asset and maintenance tests: the store fixtures of
``tests/cloud/db`` (SQLite, and PostgreSQL marked integration) plus a seeded site."""

from __future__ import annotations

import pytest

from cloud.db import Database
from cloud.security.passwords import PasswordHasher
from tests.cloud.api.support import seed
from tests.cloud.db.conftest import db, db_url, hasher, pg, pg_store_url

__all__ = ["db", "db_url", "hasher", "pg", "pg_store_url", "seeded"]


@pytest.fixture
def seeded(db: Database, hasher: PasswordHasher) -> Database:
    """The store with the API tests' registry and users (sites alpha and beta; alpha's
    gateway gw1 has pump-1 and panel-1; engineer-a, supervisor-a, viewer-a on alpha)."""
    with db.transaction() as session:
        seed(session, hasher)
    return db
