"""Fixtures of the alarm tests: the relational-store fixtures of ``tests/cloud/db`` (SQLite,
and PostgreSQL marked integration)."""

from tests.cloud.db.conftest import db, db_url, pg, pg_store_url

__all__ = ["db", "db_url", "pg", "pg_store_url"]
