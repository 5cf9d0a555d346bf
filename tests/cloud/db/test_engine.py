"""Database URLs, SQLite pragmas and the transaction helper."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from cloud.db import Database, Site, UnsupportedDatabase, normalize_url, upgrade
from cloud.db.engine import in_thread


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


# -- in_thread --------------------------------------------------------------------------
async def test_in_thread_returns_and_raises_like_to_thread() -> None:
    assert await in_thread(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        await in_thread(lambda: 1 / 0)


async def test_a_cancelled_in_thread_lets_its_thread_finish_first() -> None:
    # A transaction under way when its task is cancelled still ends (and returns its
    # connection) before the cancellation goes on: a service disposing its engine
    # right after cancelling leaves no connection checked out.
    started, finished = threading.Event(), threading.Event()

    def transaction() -> int:
        started.set()
        time.sleep(0.3)
        finished.set()
        return 1

    task = asyncio.create_task(in_thread(transaction))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_a_cancelled_in_thread_that_fails_says_only_cancelled(
        caplog: pytest.LogCaptureFixture) -> None:
    started = threading.Event()

    def failing() -> None:
        started.set()
        time.sleep(0.1)
        raise RuntimeError("rolled back")

    task = asyncio.create_task(in_thread(failing))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    del task
    gc.collect()  # an exception never retrieved is reported when its task goes
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
