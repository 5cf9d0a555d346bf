"""The latest-value index in the relational store, in front of a real InfluxDB 1.x.

The whole store contract runs against ``IndexedStore(InfluxStore, Database)`` on SQLite
and PostgreSQL; then what only the index does: reads come from it (not from InfluxDB),
pending samples are visible in-process at once and to other processes after a flush,
an older sample never replaces a newer one, concurrent writers on PostgreSQL neither
deadlock nor lose the newest sample, a failed flush keeps its samples, a first start
backfills what InfluxDB held, and ``refresh_recent`` repairs what a dead process never
flushed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud.db import Database, migrate
from cloud.db.models import Device, Gateway, Site
from cloud.timeseries import Sample
from cloud.timeseries import indexed as indexed_module
from cloud.timeseries.indexed import IndexedStore, newest_rows
from cloud.timeseries.influx import InfluxStore
from cloud.timeseries.latest_tables import LatestIndexState, LatestValue
from tests.cloud.timeseries.test_sqlite_store import T0, StoreContract, key
from tests.servers.plugin import InfluxDatabase

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated relational database (a SQLite file, or a fresh PostgreSQL database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'towerwatch.db'}"
    else:
        url = request.getfixturevalue("postgres_db").sqlalchemy_url
    migrate(url)
    db = Database.from_url(url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
async def indexed(influx_db: InfluxDatabase, database: Database,
                  ) -> AsyncIterator[IndexedStore]:
    """An empty store whose index is complete (the backfill of an empty registry)."""
    store = IndexedStore(InfluxStore(influx_db.url, database=influx_db.database), database)
    assert await store.backfill() == 0
    try:
        yield store
    finally:
        await store.close()


class TestIndexedInfluxStore(StoreContract):
    @pytest.fixture
    async def store(self, indexed: IndexedStore) -> IndexedStore:
        return indexed


def _index(db: Database) -> dict[str, tuple[int, object]]:
    with db.transaction() as session:
        return {row.point_id: (row.ts_ms, row.num if row.txt is None else row.txt)
                for row in session.scalars(select(LatestValue))}


async def test_reads_come_from_the_index(indexed: IndexedStore) -> None:
    await indexed.write([Sample(key("flow"), T0, 1.5, "good")])
    # Written to InfluxDB behind the index's back: raw sees it, latest does not.
    await indexed.inner.write([Sample(key("flow"), T0 + 1000, 2.5, "good")])
    assert len(await indexed.raw(key("flow"), T0, T0 + 2000, limit=10)) == 2
    assert (await indexed.latest([key("flow")]))[key("flow")].value == 1.5
    assert (await indexed.latest_for_device("tower-a", "gw-1", "pump-1"))["flow"].ts_ms == T0


@pytest.mark.parametrize("flush_between", [False, True])
async def test_an_older_sample_never_replaces_a_newer(indexed: IndexedStore,
                                                      flush_between: bool) -> None:
    for sample in (Sample(key("flow"), T0 + 5000, 5.0, "good"),
                   Sample(key("flow"), T0 + 1000, 1.0, "bad"),  # a late redelivery
                   Sample(key("flow"), T0 + 5000, 6.0, "stale")):  # same time: replaces
        await indexed.write([sample])
        if flush_between:
            await indexed.flush()
    latest = (await indexed.latest([key("flow")]))[key("flow")]
    assert (latest.ts_ms, latest.value, latest.quality) == (T0 + 5000, 6.0, "stale")
    await indexed.flush()
    assert _index(indexed.db) == {"flow": (T0 + 5000, 6.0)}


async def test_pending_samples_reach_other_processes_after_a_flush(
        influx_db: InfluxDatabase, indexed: IndexedStore) -> None:
    indexed.flush_interval = 0.05
    other = IndexedStore(InfluxStore(influx_db.url, database=influx_db.database), indexed.db)
    try:
        await indexed.write([Sample(key("flow"), T0, 1.5, "good")])
        # In this process at once (the alarm service reads what its batch wrote) ...
        assert (await indexed.latest_for_device("tower-a", "gw-1", "pump-1"))["flow"].value == 1.5
        # ... in another once the flusher ran.
        for _ in range(200):
            if await other.latest([key("flow")]):
                break
            await asyncio.sleep(0.02)
        assert (await other.latest([key("flow")]))[key("flow")].value == 1.5
        assert _index(indexed.db) == {"flow": (T0, 1.5)}
    finally:
        await other.close()


async def test_a_failed_flush_keeps_its_samples(indexed: IndexedStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    await indexed.write([Sample(key("flow"), T0, 1.0, "good")])

    def down(session: object, rows: object) -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(indexed_module, "upsert_latest", down)
    with pytest.raises(OSError, match="unreachable"):
        await indexed.flush()
    await indexed.write([Sample(key("flow"), T0 + 1000, 2.0, "good"),
                         Sample(key("temp"), T0, 20.0, "good")])
    monkeypatch.undo()
    await indexed.flush()
    assert _index(indexed.db) == {"flow": (T0 + 1000, 2.0), "temp": (T0, 20.0)}


async def test_refresh_recent_repairs_what_was_never_flushed(indexed: IndexedStore) -> None:
    now_ms = int(time.time() * 1000)
    # Written to InfluxDB by a process that died before its flush.
    await indexed.inner.write([Sample(key("flow"), now_ms - 5_000, 7.5, "good"),
                               Sample(key("old"), now_ms - 3_600_000, 1.0, "good")])
    assert await indexed.refresh_recent(60_000) == 1
    assert _index(indexed.db) == {"flow": (now_ms - 5_000, 7.5)}
    assert await indexed.refresh_recent(7_200_000) == 2


def test_newest_rows_takes_the_newest_per_series_across_equal_keys() -> None:
    a, b = key("a"), key("a")  # equal keys, distinct objects (two payloads)
    rows = newest_rows([Sample(a, T0 + 2, 2.0, "good"), Sample(b, T0 + 9, "on", "good"),
                        Sample(a, T0 + 5, 5.0, "good"), Sample(key("b"), T0, None, "bad")])
    assert [(r["point_id"], r["ts_ms"], r["kind"], r["num"], r["txt"]) for r in rows] == [
        ("a", T0 + 9, "s", None, "on"), ("b", T0, "n", None, None)]


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_concurrent_writers_neither_deadlock_nor_lose_the_newest(
        influx_db: InfluxDatabase, indexed: IndexedStore) -> None:
    points = [f"p{n:03d}" for n in range(200)]

    async def writer(offset: int, order: list[str]) -> None:
        # A worker of its own (own pending set), flushing after every write.
        store = IndexedStore(InfluxStore(influx_db.url, database=influx_db.database),
                             indexed.db)
        try:
            for round_ in range(5):
                ts = T0 + round_ * 10 + offset
                await store.write([Sample(key(p), ts, float(ts - T0), "good") for p in order])
                await store.flush()
        finally:
            await store.close()

    await asyncio.wait_for(asyncio.gather(
        writer(0, points), writer(1, points[::-1]), writer(2, points[100:] + points[:100])),
        timeout=60)
    got = await indexed.latest([key(p) for p in points])
    assert {s.ts_ms for s in got.values()} == {T0 + 42}
    assert len(got) == len(points)


async def test_a_first_start_backfills_registered_devices(
        influx_db: InfluxDatabase, database: Database) -> None:
    inner = InfluxStore(influx_db.url, database=influx_db.database)
    old = [Sample(key("flow", device="pump-1"), T0, 3.5, "good"),
           Sample(key("flow", device="pump-1"), T0 + 60_000, 4.5, "good"),
           Sample(key("mode", device="pump-1"), T0, "auto", "good"),
           Sample(key("flow", device="unregistered"), T0, 9.0, "good")]
    await inner.write(old)
    with database.transaction() as session:
        for row in (Site(id="tower-a", name="Tower A"), Gateway(site_id="tower-a", id="gw-1"),
                    Device(site_id="tower-a", gateway_id="gw-1", id="pump-1")):
            session.add(row)
            session.flush()
    store = IndexedStore(inner, database)
    try:
        # Not yet complete: reads go to InfluxDB, so nothing is missing meanwhile.
        before = await store.latest_for_device("tower-a", "gw-1", "pump-1")
        assert before["flow"].value == 4.5
        assert (await store.latest([key("flow", device="unregistered")]))
        assert await store.backfill() == 2
        assert _index(database) == {"flow": (T0 + 60_000, 4.5), "mode": (T0, "auto")}
        assert await store.latest_for_device("tower-a", "gw-1", "pump-1") == before
        # Complete: a second start does nothing; another process sees the marker.
        assert await store.backfill() == 0
        with database.transaction() as session:
            assert session.scalar(select(func.count()).select_from(LatestIndexState)) == 1
        other = IndexedStore(InfluxStore(influx_db.url, database=influx_db.database), database)
        try:
            assert await other.latest([key("flow", device="unregistered")]) == {}
        finally:
            await other.close()
    finally:
        await store.close()


def test_the_newest_of_out_of_order_samples_is_kept() -> None:
    a, b = key("a"), key("b")
    samples = [Sample(a, T0 + 5, 5.0, "good"), Sample(b, T0, 0.0, "good"),
               Sample(a, T0 + 1, 1.0, "good"),  # late: older than the one before
               Sample(b, T0, 9.0, "stale")]  # same time: the later one wins
    newest = {s.series.point: (s.ts_ms, s.value) for s in indexed_module._newest(samples)}
    assert newest == {"a": (T0 + 5, 5.0), "b": (T0, 9.0)}
