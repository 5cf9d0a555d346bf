"""The store fixtures of the work-order tests (SQLite, and PostgreSQL marked integration)."""

from __future__ import annotations

from tests.cloud.workorders.conftest import db, db_url, hasher, pg, pg_store_url, seeded

__all__ = ["db", "db_url", "hasher", "pg", "pg_store_url", "seeded"]
