"""The alarm tables migrate to exactly the models, and the database keeps one open alarm
per (site, gateway, device, name)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from cloud.alarms.tables import SITE_LEVEL, Alarm, rank_of
from cloud.db import Database, downgrade, upgrade
from cloud.db.registry import upsert_site
from tests.cloud.db.test_migrations import schema_diff, table_names

ALARM_TABLES = {"alarms", "alarm_history", "alarm_policies"}


def test_alarm_migration_matches_the_models_and_downgrades(db_url: str) -> None:
    upgrade(db_url)
    assert table_names(db_url) >= ALARM_TABLES
    assert schema_diff(db_url) == []
    downgrade(db_url, "0001")
    assert not ALARM_TABLES & table_names(db_url)
    upgrade(db_url)
    assert schema_diff(db_url) == []


def _alarm(name: str, closed_ms: int | None = None, device: str = "pump-1") -> Alarm:
    return Alarm(site_id="alpha", gateway_id="gw1", device_id=device, name=name, source="edge",
                 category="water", priority="high", rank=rank_of("water", "high"),
                 state="unack_active", active=True, text_en="t", text_zh="t", detail={},
                 raised_ms=1, last_active_ms=1, changed_ms=1, closed_ms=closed_ms,
                 occurrences=1, out_of_service=False, escalation_level=0)


def test_one_open_alarm_per_key_is_enforced_by_the_database(db: Database) -> None:
    with db.transaction() as session:
        upsert_site(session, "alpha", name="Alpha")
        session.add_all([_alarm("trip", closed_ms=5), _alarm("trip", closed_ms=9),
                         _alarm("trip"), _alarm("trip", device=SITE_LEVEL)])
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(_alarm("trip"))


@pytest.mark.parametrize(
    ("category", "priority", "rank"),
    [("fire", "emergency", 0), ("fire", "low", 3), ("elevator", "emergency", 4),
     ("water", "low", 7)],
)
def test_fire_alarms_rank_before_everything(category: str, priority: str, rank: int) -> None:
    assert rank_of(category, priority) == rank
