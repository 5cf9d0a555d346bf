"""Migrations apply from empty on both engines, and the migrated schema equals the models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from cloud.db import (
    Database,
    MigrationError,
    current,
    downgrade,
    head,
    is_up_to_date,
    migrate,
    upgrade,
)
from cloud.db.engine import create_engine_for
from cloud.db.schema import target_metadata

TABLES = {
    "alembic_version",
    "alarm_history",
    "alarm_policies",
    "alarms",
    "asset_devices",
    "assets",
    "audit_log",
    "command_requests",
    "dead_letters",
    "devices",
    "gateways",
    "latest_index_state",
    "latest_values",
    "patrol_checkpoints",
    "patrol_exceptions",
    "patrol_incidents",
    "patrol_route_stops",
    "patrol_routes",
    "patrol_scans",
    "patrol_schedules",
    "patrol_tours",
    "pending_events",
    "pm_plans",
    "points",
    "role_assignments",
    "seen_messages",
    "seq_streams",
    "sites",
    "sla_breaches",
    "sla_policies",
    "users",
    "work_order_alarms",
    "work_order_events",
    "work_order_photos",
    "work_orders",
}


def schema_diff(url: str) -> list[Any]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, target_metadata()))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_the_models(db_url: str) -> None:
    assert current(db_url) is None
    assert not is_up_to_date(db_url)

    upgrade(db_url)

    assert current(db_url) == head() == "0006"
    assert is_up_to_date(db_url)
    assert table_names(db_url) == TABLES
    assert schema_diff(db_url) == []


def test_upgrade_is_idempotent_and_downgrade_empties(db_url: str) -> None:
    assert migrate(db_url) == (None, head())
    assert migrate(db_url) == (head(), head())
    database = Database.from_url(db_url)
    try:
        assert is_up_to_date(database.engine)
    finally:
        database.dispose()

    downgrade(db_url, "base")
    assert current(db_url) is None
    assert table_names(db_url) == {"alembic_version"}

    upgrade(db_url)
    assert schema_diff(db_url) == []


def test_unknown_revision_is_a_migration_error(tmp_path: Any) -> None:
    with pytest.raises(MigrationError, match="upgrade failed"):
        upgrade(f"sqlite:///{tmp_path / 'x.db'}", "no-such-revision")


def test_the_diff_check_is_not_vacuous(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'towerwatch.db'}"
    added = {diff[1].name for diff in schema_diff(url) if diff[0] == "add_table"}
    assert added == TABLES - {"alembic_version"}

    upgrade(url)
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP INDEX ix_dead_letters_received_ms"))
    finally:
        engine.dispose()
    assert [(d[0], d[1].name) for d in schema_diff(url)] == [
        ("add_index", "ix_dead_letters_received_ms")
    ]
