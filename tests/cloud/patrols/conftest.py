"""Fixtures of the patrol store tests: ``db_url`` and ``db`` on SQLite and PostgreSQL, from
``tests/cloud/db``."""

from __future__ import annotations

from tests.cloud.db.conftest import db, db_url, hasher, pg_store_url  # noqa: F401
