"""Migration 0004 creates exactly the patrol tables the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cloud.db import downgrade, upgrade
from cloud.db.engine import create_engine_for
from cloud.db.schema import target_metadata

PATROL_TABLES = {
    "patrol_checkpoints", "patrol_routes", "patrol_route_stops", "patrol_schedules",
    "patrol_tours", "patrol_scans", "patrol_incidents", "patrol_exceptions",
}


def _patrol_diff(url: str) -> list[object]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, target_metadata())
    finally:
        engine.dispose()
    return [d for d in diffs if "patrol" in repr(d)]


def _tables(url: str) -> set[str]:
    engine = create_engine_for(url)
    try:
        return {t for t in inspect(engine).get_table_names() if t.startswith("patrol_")}
    finally:
        engine.dispose()


def test_0004_matches_the_patrol_models(db_url: str) -> None:
    upgrade(db_url, "0003")
    assert _tables(db_url) == set()
    assert len(_patrol_diff(db_url)) >= len(PATROL_TABLES)  # the check is not vacuous
    upgrade(db_url)
    assert _tables(db_url) == PATROL_TABLES
    assert _patrol_diff(db_url) == []
    downgrade(db_url, "0003")
    assert _tables(db_url) == set()
