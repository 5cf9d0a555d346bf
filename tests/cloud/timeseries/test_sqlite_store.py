"""The time-series store contract, and the SQLite backend that runs it as a unit test.

:class:`StoreContract` is the behaviour every :class:`TimeSeriesStore` must show; a test
class inherits it and provides a ``store`` fixture (an empty store). It runs here against
:class:`SqliteStore` and in ``tests/integration/test_influx_store.py`` against InfluxDB.
"""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud.timeseries import (
    Bucket,
    QueryTooLarge,
    Sample,
    SeriesKey,
    SqliteStore,
    StoreUnavailable,
    TimeSeriesStore,
    Value,
)
from cloud.timeseries.base import MAX_BUCKETS, MAX_TS_MS
from cloud.timeseries.sqlite import DOWNSAMPLE_SQL, LATEST_SQL, RAW_SQL

T0 = 1_700_000_040_000  # a multiple of 60 s
KEY = SeriesKey("tower-a", "gw-1", "pump-1", "flow")


def key(
    point: str, device: str = "pump-1", gateway: str = "gw-1", site: str = "tower-a"
) -> SeriesKey:
    return SeriesKey(site, gateway, device, point)


def typed(samples: list[Sample]) -> list[tuple[int, type, Value, str]]:
    """What must survive a round trip, types included (``3 == 3.0 == True`` otherwise)."""
    return [(s.ts_ms, type(s.value), s.value, s.quality) for s in samples]


# -- the contract ----------------------------------------------------------------------
class StoreContract:
    """Behaviour shared by every backend; subclasses provide the ``store`` fixture."""

    async def test_round_trip_keeps_value_types_and_quality(self, store: TimeSeriesStore) -> None:
        values: list[Value] = [
            1.5, -2.25, 0.0, 3.0, 1e-9, 123456.789, 3, -7, 0, 2**53, True, False,
            "running", "", 'quote" back\\slash, comma=1 space\nnewline', "中文", None,
        ]  # fmt: skip
        qualities = ["good", "stale", "bad"]
        samples = [
            Sample(KEY, T0 + i, v, qualities[i % 3])  # type: ignore[arg-type]
            for i, v in enumerate(values)
        ]
        await store.write(samples)
        got = await store.raw(KEY, T0, T0 + 1000, limit=100)
        assert typed(got) == typed(samples)
        assert all(s.series == KEY for s in got)

    async def test_raw_is_time_ordered_and_half_open(self, store: TimeSeriesStore) -> None:
        times = [T0 + 1000 * i for i in range(20)]
        shuffled = random.Random(4).sample(times, len(times))
        await store.write([Sample(KEY, t, float(t - T0), "good") for t in shuffled[:10]])
        await store.write([Sample(KEY, t, float(t - T0), "good") for t in shuffled[10:]])
        got = await store.raw(KEY, T0 + 3000, T0 + 8000, limit=100)
        assert [s.ts_ms for s in got] == [T0 + 3000, T0 + 4000, T0 + 5000, T0 + 6000, T0 + 7000]
        assert [s.value for s in got] == [3000.0, 4000.0, 5000.0, 6000.0, 7000.0]
        assert await store.raw(KEY, T0 + 8000, T0 + 8000, limit=10) == []
        assert await store.raw(KEY, T0 + 9000, T0 + 8000, limit=10) == []
        assert await store.raw(KEY, 0, T0, limit=10) == []
        assert len(await store.raw(KEY, -(2**70), 2**70, limit=20)) == 20  # bounds clamp

    async def test_raw_over_the_limit_raises_instead_of_truncating(
        self, store: TimeSeriesStore
    ) -> None:
        await store.write([Sample(KEY, T0 + i, i, "good") for i in range(10)])
        assert len(await store.raw(KEY, T0, T0 + 10, limit=10)) == 10
        with pytest.raises(QueryTooLarge) as caught:
            await store.raw(KEY, T0, T0 + 10, limit=9)
        assert caught.value.bound == 9
        assert [s.value for s in await store.raw(KEY, T0 + 2, T0 + 5, limit=3)] == [2, 3, 4]
        with pytest.raises(ValueError, match="limit"):
            await store.raw(KEY, T0, T0 + 10, limit=0)

    async def test_rewriting_a_sample_replaces_it(self, store: TimeSeriesStore) -> None:
        batch = [Sample(KEY, T0 + i * 1000, float(i), "good") for i in range(5)]
        await store.write(batch)
        await store.write(batch)  # a redelivery
        assert typed(await store.raw(KEY, T0, T0 + 10_000, limit=10)) == typed(batch)
        # Same (series, ts), new value: replaced, also in latest(). (A new type or quality
        # too on SQLite; InfluxDB adds such a sample: test_influx_store.py.)
        await store.write([Sample(KEY, T0 + 4000, 99.5, "good")])
        got = await store.raw(KEY, T0, T0 + 10_000, limit=10)
        assert [(s.ts_ms, s.value, s.quality) for s in got][-2:] == [
            (T0 + 3000, 3.0, "good"),
            (T0 + 4000, 99.5, "good"),
        ]
        latest = await store.latest([KEY])
        assert (latest[KEY].ts_ms, latest[KEY].value) == (T0 + 4000, 99.5)
        # Within one batch the later duplicate wins.
        await store.write([Sample(KEY, T0, 7.0, "good"), Sample(KEY, T0, 8.0, "good")])
        (first,) = await store.raw(KEY, T0, T0 + 1, limit=1)
        assert (first.value, first.quality) == (8.0, "good")

    async def test_downsampled_buckets_are_exact(self, store: TimeSeriesStore) -> None:
        s = 1000
        rows: list[tuple[int, Value, str]] = [
            (0 * s, 1.0, "good"), (1 * s, 2.0, "good"), (5 * s, 6, "good"),  # bucket 0
            # bucket 10 s: empty
            (20 * s, True, "good"), (21 * s, False, "good"), (22 * s, True, "good"),
            (30 * s, 4.0, "good"), (31 * s, "door open", "good"), (32 * s, None, "bad"),
            (45 * s, "only text", "good"),
        ]  # fmt: skip
        await store.write([Sample(KEY, T0 + t, v, q) for t, v, q in rows])  # type: ignore[arg-type]
        got = await store.downsampled(KEY, T0, T0 + 50 * s, bucket_ms=10 * s)
        assert [b.start_ms - T0 for b in got] == [0, 20 * s, 30 * s, 40 * s]
        assert got[0] == Bucket(T0, 3.0, 1.0, 6.0, 6, 3)
        assert type(got[0].last) is int
        assert got[1].mean == pytest.approx(2 / 3)
        assert (got[1].min, got[1].max, got[1].last, got[1].count) == (0.0, 1.0, True, 3)
        assert type(got[1].last) is bool
        assert got[2] == Bucket(T0 + 30 * s, 4.0, 4.0, 4.0, None, 3)
        assert got[3] == Bucket(T0 + 40 * s, None, None, None, "only text", 1)
        # A range starting mid-bucket: buckets stay aligned, only samples in range count.
        partial = await store.downsampled(KEY, T0 + 1 * s, T0 + 21 * s, bucket_ms=10 * s)
        assert partial == [Bucket(T0, 4.0, 2.0, 6.0, 6, 2), Bucket(T0 + 20 * s, 1, 1, 1, True, 1)]
        # One bucket over everything.
        (whole,) = await store.downsampled(KEY, T0, T0 + 60 * s, bucket_ms=60 * s)
        assert whole.count == len(rows)
        assert whole.mean == pytest.approx((1 + 2 + 6 + 1 + 0 + 1 + 4) / 7)
        assert (whole.min, whole.max, whole.last) == (0.0, 6.0, "only text")

    async def test_downsampled_bounds(self, store: TimeSeriesStore) -> None:
        assert await store.downsampled(KEY, T0, T0 + 60_000, bucket_ms=1000) == []
        assert await store.downsampled(KEY, T0, T0, bucket_ms=1000) == []
        with pytest.raises(ValueError, match="bucket_ms"):
            await store.downsampled(KEY, T0, T0 + 60_000, bucket_ms=0)
        with pytest.raises(QueryTooLarge):
            await store.downsampled(KEY, T0, T0 + MAX_BUCKETS + 1, bucket_ms=1)
        await store.downsampled(KEY, T0, T0 + MAX_BUCKETS, bucket_ms=1)  # exactly the bound

    async def test_latest_across_many_series(self, store: TimeSeriesStore) -> None:
        keys = [
            key(f"p{p}", device=f"dev-{d}", gateway=f"gw-{g}")
            for g in range(3)
            for d in range(4)
            for p in range(25)
        ]
        newest = [Sample(k, T0 + 10_000 + i, i * 0.5, "good") for i, k in enumerate(keys)]
        older = [Sample(k, T0 + i, -1.0, "bad") for i, k in enumerate(keys)]
        await store.write(newest)
        await store.write(older)  # arrives late: must not replace the newest
        texts = [Sample(k, T0 + 20_000, f"s{i}", "stale") for i, k in enumerate(keys[:10])]
        await store.write(texts)
        unknown = key("nope", device="dev-9")
        got = await store.latest([*keys, unknown])
        assert len(got) == len(keys)
        assert unknown not in got
        expected = {s.series: s for s in newest} | {s.series: s for s in texts}
        assert got == expected
        assert await store.latest([]) == {}

    async def test_latest_for_device_by_point(self, store: TimeSeriesStore) -> None:
        await store.write(
            [
                Sample(key("flow", device="pump"), T0, 1.0, "good"),
                Sample(key("flow", device="pump"), T0 + 5, 2.0, "good"),
                Sample(key("running", device="pump"), T0 + 1, True, "good"),
                Sample(key("flow", device="pump-2"), T0 + 9, 3.0, "good"),
                Sample(key("flow", device="pump", gateway="gw-2"), T0 + 9, 4.0, "good"),
                Sample(key("flow", device="pump", site="tower-b"), T0 + 9, 5.0, "good"),
            ]
        )
        got = await store.latest_for_device("tower-a", "gw-1", "pump")
        assert got == {
            "flow": Sample(key("flow", device="pump"), T0 + 5, 2.0, "good"),
            "running": Sample(key("running", device="pump"), T0 + 1, True, "good"),
        }
        assert await store.latest_for_device("tower-a", "gw-1", "nope") == {}
        assert await store.latest_for_device("tower-a", "gw-1", "pum") == {}

    async def test_retention_deletes_older_samples(self, store: TimeSeriesStore) -> None:
        fresh, stale = key("fresh"), key("stale")
        await store.write([Sample(fresh, T0 + i * 1000, i, "good") for i in range(10)])
        await store.write([Sample(stale, T0 + i * 1000, i, "good") for i in range(3)])
        deleted = await store.apply_retention(T0 + 5000)
        assert deleted == 5 + 3
        assert [s.value for s in await store.raw(fresh, 0, T0 + 10**6, limit=100)] == [
            5, 6, 7, 8, 9
        ]  # fmt: skip
        assert await store.raw(stale, 0, T0 + 10**6, limit=100) == []
        assert set(await store.latest([fresh, stale])) == {fresh}
        assert set(await store.latest_for_device("tower-a", "gw-1", "pump-1")) == {"fresh"}
        assert await store.apply_retention(T0 + 5000) == 0

    async def test_hostile_names_are_only_data(self, store: TimeSeriesStore) -> None:
        hostile = [
            "x' OR 'a'='a",
            'x" OR "a"="a',
            "p'; DROP MEASUREMENT tw; --",
            'p"; DROP DATABASE x; --',
            "a b,c=d",
            "/.*/",
            "flow) OR (point =~ /.*/",
            "点位 ünïcode",
        ]
        normal = key("normal", device="victim")
        samples = [
            Sample(key(p, device=p), T0 + i, float(i), "good") for i, p in enumerate(hostile)
        ]
        await store.write([*samples, Sample(normal, T0, -1.0, "good")])
        for sample in samples:
            assert await store.raw(sample.series, T0, T0 + 100, limit=10) == [sample]
            point = sample.series.point
            assert await store.latest_for_device("tower-a", "gw-1", point) == {point: sample}
        assert await store.latest([s.series for s in samples]) == {s.series: s for s in samples}
        assert await store.raw(normal, T0, T0 + 1, limit=1) == [Sample(normal, T0, -1.0, "good")]

    async def test_unknown_series_are_empty(self, store: TimeSeriesStore) -> None:
        await store.write([])
        assert await store.raw(KEY, 0, MAX_TS_MS, limit=1) == []
        assert await store.downsampled(KEY, T0, T0 + 60_000, bucket_ms=60_000) == []
        assert await store.latest([KEY]) == {}
        assert await store.latest_for_device("tower-a", "gw-1", "pump-1") == {}
        assert await store.apply_retention(T0) == 0

    async def test_a_closed_store_refuses_work(self, store: TimeSeriesStore) -> None:
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(StoreUnavailable):
            await store.write([Sample(KEY, T0, 1.0, "good")])
        with pytest.raises(StoreUnavailable):
            await store.raw(KEY, T0, T0 + 1, limit=1)


class TestSqliteStore(StoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteStore]:
        async with SqliteStore(tmp_path / "ts.db") as store:
            yield store


class TestSqliteInMemory(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[SqliteStore]:
        async with SqliteStore(":memory:") as store:
            yield store


# -- SQLite specifics ------------------------------------------------------------------
async def test_a_rewrite_replaces_type_and_quality_too(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "rewrite.db") as store:
        await store.write([Sample(KEY, T0, 1.0, "good")])
        await store.write([Sample(KEY, T0, "text", "stale")])
        assert typed(await store.raw(KEY, T0, T0 + 1, limit=5)) == typed(
            [Sample(KEY, T0, "text", "stale")])


async def test_queries_use_the_primary_key_without_analyze(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "plan.db") as store:
        await store.write([Sample(KEY, T0, 1.0, "good")])
    conn = sqlite3.connect(tmp_path / "plan.db")
    plans: dict[str, tuple[str, Any]] = {
        "raw": (RAW_SQL, (1, T0, T0 + 1, 10)),
        "downsampled": (DOWNSAMPLE_SQL, {"sid": 1, "start": 0, "end": T0, "bucket": 1000}),
        "latest": (LATEST_SQL, ("[1, 2]",)),
    }
    try:
        for name, (sql, params) in plans.items():
            steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            assert not any(s.startswith(("SCAN samples", "SCAN latest")) for s in steps), steps
            assert any("PRIMARY KEY" in s for s in steps), (name, steps)
        stats = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        assert stats.fetchone() == (0,)  # ANALYZE never ran
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


async def test_data_survives_reopening(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "ts.db") as store:
        await store.write([Sample(KEY, T0, 1.0, "good"), Sample(KEY, T0 + 1, "x", "bad")])
    async with SqliteStore(tmp_path / "ts.db") as store:
        assert len(await store.raw(KEY, T0, T0 + 2, limit=2)) == 2
        assert (await store.latest([KEY]))[KEY].value == "x"


async def test_two_stores_on_one_file_see_each_others_series(tmp_path: Path) -> None:
    """Two processes (here: two stores) share a file; each caches series ids."""
    async with SqliteStore(tmp_path / "ts.db") as a, SqliteStore(tmp_path / "ts.db") as b:
        await a.write([Sample(key("one"), T0, 1.0, "good")])
        await b.write([Sample(key("two"), T0, 2.0, "good")])  # b's cache is new
        await a.write([Sample(key("three"), T0, 3.0, "good")])
        await b.write([Sample(key("three"), T0 + 1, 3.5, "good")])  # a added it meanwhile
        for store in (a, b):
            got = await store.latest_for_device("tower-a", "gw-1", "pump-1")
            assert {p: s.value for p, s in got.items()} == {"one": 1.0, "two": 2.0, "three": 3.5}
            assert len(await store.raw(key("three"), T0, T0 + 2, limit=2)) == 2
            assert set(await store.latest([key("one"), key("two")])) == {key("one"), key("two")}


async def test_close_lets_queued_calls_finish(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.db")
    write = asyncio.create_task(store.write([Sample(KEY, T0, 1.0, "good")]))
    await asyncio.sleep(0)  # the write is queued on the worker thread
    await store.close()
    await write
    async with SqliteStore(tmp_path / "ts.db") as again:
        assert len(await again.raw(KEY, T0, T0 + 1, limit=1)) == 1


async def test_an_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "missing-dir" / "ts.db") as store:
        with pytest.raises(StoreUnavailable, match="unable to open"):
            await store.write([Sample(KEY, T0, 1.0, "good")])


async def test_the_event_loop_keeps_running_during_a_write(tmp_path: Path) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    keys = [key(f"p{i}") for i in range(100)]
    samples = [Sample(keys[i % 100], T0 + i, float(i), "good") for i in range(20_000)]
    async with SqliteStore(tmp_path / "ts.db") as store:
        task = asyncio.create_task(ticker())
        await store.write(samples)
        seen = ticks
        done.set()
        await task
    assert seen > 0


# -- value objects ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parts", "ok"),
    [
        (("tower-a", "gw-1", "pump-1", "flow"), True),
        (("a b", "g,w", "d=1", "x'\"y"), True),
        (("", "gw", "d", "p"), False),
        (("s", "gw", "d", "line\nbreak"), False),
        (("s", "gw", "d", "tab\there"), False),
        (("s", "gw", "d", "back\\slash"), False),
        (("s", "gw", "d", "x" * 257), False),
        (("s", "gw", "d", 5), False),
    ],
)
def test_series_key_checks_itself(parts: tuple[Any, ...], ok: bool) -> None:
    if ok:
        SeriesKey(*parts)
    else:
        with pytest.raises(ValueError, match="series"):
            SeriesKey(*parts)


@pytest.mark.parametrize(
    ("ts", "value", "quality", "problem"),
    [
        (T0, 1.0, "good", None),
        (0, None, "bad", None),
        (MAX_TS_MS, "x", "stale", None),
        (-1, 1.0, "good", "ts_ms"),
        (MAX_TS_MS + 1, 1.0, "good", "ts_ms"),
        (1.5, 1.0, "good", "ts_ms"),
        (True, 1.0, "good", "ts_ms"),
        (T0, math.nan, "good", "finite"),
        (T0, math.inf, "good", "finite"),
        (T0, 2**64, "good", "out of range"),
        (T0, b"bytes", "good", "must be"),
        (T0, 1.0, "ok", "quality"),
    ],
)
def test_sample_checks_itself(ts: Any, value: Any, quality: Any, problem: str | None) -> None:
    if problem is None:
        Sample(KEY, ts, value, quality)
    else:
        with pytest.raises(ValueError, match=problem):
            Sample(KEY, ts, value, quality)
