"""Migration 0003 creates exactly the work-order tables, as the models describe them, on
SQLite and PostgreSQL, and its downgrade removes them again."""

from __future__ import annotations

from typing import Any

from cloud.db import downgrade, upgrade
from tests.cloud.db.test_migrations import schema_diff, table_names

OURS = {
    "assets",
    "asset_devices",
    "pm_plans",
    "sla_breaches",
    "sla_policies",
    "work_orders",
    "work_order_alarms",
    "work_order_events",
    "work_order_photos",
}


def _table_of(diff: Any) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if hasattr(part, "name") and hasattr(part, "columns"):
            return str(part.name)
        if isinstance(part, str) and part in OURS:
            return part
    return None


def test_migration_matches_the_models(db_url: str) -> None:
    upgrade(db_url, "0003")
    assert table_names(db_url) >= OURS
    assert [d for d in schema_diff(db_url) if _table_of(d) in OURS] == []


def test_the_check_sees_our_tables(db_url: str) -> None:
    upgrade(db_url, "0002")
    missing = {_table_of(d) for d in schema_diff(db_url) if _table_of(d) in OURS}
    assert missing == OURS


def test_downgrade_removes_them(db_url: str) -> None:
    upgrade(db_url, "0003")
    downgrade(db_url, "0002")
    assert not (OURS & table_names(db_url))
    upgrade(db_url, "0003")
    assert table_names(db_url) >= OURS
