"""Fixtures of the work-order, asset and maintenance tests: the store fixtures of
``tests/cloud/db`` (SQLite, and PostgreSQL marked integration) plus a seeded site."""

from __future__ import annotations

from tests.cloud.db.conftest import db, db_url, hasher, pg, pg_store_url

__all__ = ["db", "db_url", "hasher", "pg", "pg_store_url"]
