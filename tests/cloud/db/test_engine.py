"""Database URLs, SQLite pragmas and the transaction helper."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from cloud.db import Database, Site, UnsupportedDatabase, normalize_url, upgrade


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@db:5432/tw", "postgresql+psycopg"),
        ("postgres://u@db/tw", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/tw", "postgresql+psycopg"),
        ("sqlite:///data/tw.db", "sqlite"),
        ("sqlite:////var/lib/tw.db", "sqlite"),
    ],
)
def test_accepted_urls(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@db/tw",
        "postgresql+psycopg2://u@db/tw",
        "sqlite://",
        "sqlite:///:memory:",
        "not a url",
    ],
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(UnsupportedDatabase):
        normalize_url(url)


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'tw.db'}"
    database = Database.from_url(url)
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (tmp_path / "nested" / "dir" / "tw.db").exists()
        assert database.dialect == "sqlite"
    finally:
        database.dispose()


def test_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    upgrade(url)
    database = Database.from_url(url)
    try:
        with database.transaction() as session:
            session.add(Site(id="tower-a", name="Tower A", timezone="Asia/Shanghai"))

        def add_then_fail() -> None:
            with database.transaction() as session:
                session.add(Site(id="tower-b", name="Tower B", timezone="UTC"))
                session.flush()
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            add_then_fail()
        with database.transaction() as session:
            assert list(session.scalars(select(Site.id))) == ["tower-a"]
    finally:
        database.dispose()
