"""InfluxStore.downsampled buckets up to a bound of raw samples itself and leaves the rest
to InfluxDB's GROUP BY time: every split gives the buckets InfluxDB alone gives, and the
ones SqliteStore gives (against a real InfluxDB 1.x); the bucketing itself, as a pure
function, below."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from cloud.timeseries import Bucket, Sample, SeriesKey, SqliteStore, TimeSeriesError, Value
from cloud.timeseries.base import MAX_BUCKETS, MAX_TS_MS, Quality
from cloud.timeseries.influx import InfluxStore, raw_downsample_limit
from cloud.timeseries.influxql import RAW_COLUMNS, downsample_raw
from tests.servers.plugin import InfluxDatabase

S = 1000
T0 = 1_700_000_040_000  # a multiple of 60 s
KEY = SeriesKey("tower-a", "gw-1", "pump-1", "mixed")
EDGES = SeriesKey("tower-a", "gw-1", "pump-1", "edges")
FLOATS = SeriesKey("tower-a", "gw-1", "pump-1", "floats")
TIE = SeriesKey("tower-a", "gw-1", "pump-1", "retyped")


class Mean(float):
    """A bucket's mean, equal to a float within rounding: InfluxDB adds the partial means
    of a bucket's series (one per kind and quality) in an order that can vary from one
    bucket of an answer to the next, so the last bits of a mean over several series may
    differ from the same bucket's in another statement."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and math.isclose(self, other, rel_tol=1e-12)

    __hash__ = float.__hash__


def typed(buckets: Sequence[Bucket]) -> list[tuple[Any, ...]]:
    """Buckets with the type of ``last`` (``1 == 1.0 == True`` otherwise)."""
    return [(b.start_ms, None if b.mean is None else Mean(b.mean), b.min, b.max, type(b.last),
             b.last, b.count) for b in buckets]


def mixed_samples() -> list[Sample]:
    """Every kind of value; buckets of one kind, of mixed kinds, without numbers; gaps.
    Sums are exact (SQLite's ``avg()`` and InfluxDB's ``mean()`` add in other orders)."""
    rows: list[tuple[int, Value, str]] = [
        (0 * S, 1.5, "good"), (1 * S, 2.25, "good"), (5 * S, 6, "good"),
        # 10-19 s: empty
        (20 * S, True, "good"), (21 * S, False, "stale"), (22 * S, True, "good"),
        (30 * S, 4.0, "good"), (31 * S, "door open", "good"), (32 * S, None, "bad"),
        (45 * S, "only text", "good"), (46 * S, None, "bad"),
        (50 * S, -7, "good"), (50 * S + 1, 2**40, "good"), (59 * S + 999, "", "stale"),
        # 60-119 s: empty
        (120 * S, 0.0, "good"), (121 * S, -0.5, "bad"), (125 * S, None, "bad"),
        (129 * S + 999, False, "good"),
    ]  # fmt: skip
    out = [Sample(KEY, T0 + t, v, q) for t, v, q in rows]  # type: ignore[arg-type]
    rng = random.Random(7)  # and a run of 1-second samples, a quarter of a unit apart
    out += [Sample(KEY, T0 + 200 * S + i * S, rng.randrange(-400, 400) / 4, "good")
            for i in range(300)]
    return out


def edge_samples() -> list[Sample]:
    """Samples at the first and last storable times."""
    return [Sample(EDGES, t, float(i), "good")
            for i, t in enumerate([0, 1, 2, 999, 1000, MAX_TS_MS - 1000, MAX_TS_MS - 1, MAX_TS_MS])]


WINDOWS = [  # (start, end, bucket) relative to T0
    (0, 600 * S, 10 * S),  # the whole series
    (0, 600 * S, 1 * S),
    (0, 600 * S, 7 * S),  # buckets not aligned to the first sample
    (1 * S, 21 * S, 10 * S),  # partial first and last buckets
    (31 * S, 50 * S + 1, 10 * S),  # a range ending right after a sample
    (-10**6, 10**6, 60 * S),
    (0, 600 * S, 3_600 * S),  # one bucket, partly outside the range
    (200 * S, 290 * S, 1),  # 1-ms buckets
    (60 * S, 120 * S, 10 * S),  # nothing in range
]


# -- against InfluxDB (and SQLite) -----------------------------------------------------
@pytest.fixture
async def stores(influx_db: InfluxDatabase, tmp_path: Path,
                 ) -> AsyncIterator[tuple[InfluxStore, SqliteStore]]:
    samples = mixed_samples() + edge_samples()
    async with InfluxStore(influx_db.url, database=influx_db.database) as influx, \
            SqliteStore(tmp_path / "ts.db") as sqlite:
        await influx.write(samples)
        await sqlite.write(samples)
        yield influx, sqlite


async def every_split(store: InfluxStore, key: SeriesKey, start: int, end: int,
                      bucket: int, samples: int) -> list[list[Bucket]]:
    """The buckets with InfluxDB bucketing all (limit 0), some, and none of the samples."""
    limits = sorted({0, 1, 2, samples // 3, samples - 1, samples, samples + 1, 10**4 - 1})
    return [await store._downsampled(key, start, end, bucket, limit) for limit in limits]


@pytest.mark.integration
@pytest.mark.parametrize(("start", "end", "bucket"), WINDOWS)
async def test_every_split_gives_influxdbs_and_sqlites_buckets(
    stores: tuple[InfluxStore, SqliteStore], start: int, end: int, bucket: int
) -> None:
    influx, sqlite = stores
    empty = (start, end) == (60 * S, 120 * S)
    start, end = T0 + start, T0 + end
    by_server, *others = await every_split(influx, KEY, start, end, bucket, len(mixed_samples()))
    assert (by_server == []) == empty
    for other in [*others, await influx.downsampled(KEY, start, end, bucket_ms=bucket)]:
        assert typed(other) == typed(by_server)
    assert typed(await sqlite.downsampled(KEY, start, end, bucket_ms=bucket)) == typed(by_server)


@pytest.mark.integration
@pytest.mark.parametrize(("start", "end", "bucket", "grouped"), [
    (0, MAX_TS_MS + 1, MAX_TS_MS // 10, True),
    (0, 2_000, 1_000, True),
    (0, 1_001, 1, True),
    (MAX_TS_MS - 5_000, MAX_TS_MS + 1, 1_000, True),
    # InfluxDB refuses to group these ("invalid duration"); raw samples are bucketed here.
    (MAX_TS_MS - 1, 2**70, 7, False),
    (-(2**70), 2**70, MAX_TS_MS + 1, False),  # one bucket over every storable time
])
async def test_the_first_and_last_storable_times(
    stores: tuple[InfluxStore, SqliteStore], start: int, end: int, bucket: int, grouped: bool
) -> None:
    influx, sqlite = stores
    expected = typed(await sqlite.downsampled(EDGES, start, end, bucket_ms=bucket))
    assert expected
    assert typed(await influx.downsampled(EDGES, start, end, bucket_ms=bucket)) == expected
    if grouped:
        for split in await every_split(influx, EDGES, start, end, bucket, len(edge_samples())):
            assert typed(split) == expected


@pytest.mark.integration
async def test_means_of_arbitrary_numbers_are_identical(influx_db: InfluxDatabase) -> None:
    # Rounded as InfluxDB rounds (not compared with SQLite, whose avg() adds otherwise).
    rng = random.Random(11)
    qualities: list[Quality] = ["good", "good", "good", "good", "good", "good", "stale", "bad"]
    floats = [Sample(FLOATS, T0 + i * 250, rng.uniform(-1e6, 1e6), rng.choice(qualities))
              for i in range(5000)]  # a series per quality
    values: list[Value] = [rng.uniform(-1e6, 1e6), rng.randrange(-(2**60), 2**60),
                           rng.random() < 0.5, "text", None]
    kinds = [Sample(KEY, T0 + i * 250, values[i % 5 if i < 2500 else rng.randrange(5)],
                    rng.choice(qualities))
             for i in range(5000)]  # a series per kind and quality
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        await store.write(floats + kinds)
        for key in (FLOATS, KEY):
            for bucket in (1_000, 60_000, 3_600_000):
                by_server, *others = await every_split(
                    store, key, T0 - 1, T0 + 5000 * 250, bucket, 5000)
                for other in others:
                    assert typed(other) == typed(by_server)


@pytest.mark.integration
async def test_rewritten_samples_are_bucketed_as_influxdb_does(influx_db: InfluxDatabase) -> None:
    # A rewrite with another type or quality adds a sample at the same time (the one
    # divergence from SQLite). Each 10-second bucket below is one case of such ties.
    rows: list[tuple[int, Value, str]] = [
        (0, 1.0, "good"), (1, 5.0, "bad"), (1, "text", "stale"),
        (2, "text", "good"), (2, 3, "bad"),  # a number and a text: the number
        (10, 9.0, "bad"), (10, 3.0, "good"), (10, 7, "good"),  # numbers: the greatest
        (20, "zz", "bad"), (20, "aa", "good"), (20, None, "stale"),  # texts: the greatest
        # (Equal numbers of two types, 5.0 and 5, come back as either, by InfluxDB's whim.)
        (40, None, "bad"), (41, 2.0, "good"), (41, None, "stale"),
        (50, 4.0, "good"), (55, None, "bad"),  # a text after a number
    ]  # fmt: skip
    samples = [Sample(TIE, T0 + t * S, v, q) for t, v, q in rows]  # type: ignore[arg-type]
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        await store.write(samples)
        by_server, *others = await every_split(store, TIE, T0, T0 + 60 * S, 10 * S,
                                               len(samples))
        assert typed(by_server) == typed([
            Bucket(T0, 3.0, 1.0, 5.0, 3, 5),
            Bucket(T0 + 10 * S, 19 / 3, 3.0, 9.0, 9.0, 3),
            Bucket(T0 + 20 * S, None, None, None, "zz", 3),
            Bucket(T0 + 40 * S, 2.0, 2.0, 2.0, 2.0, 3),
            Bucket(T0 + 50 * S, 4.0, 4.0, 4.0, None, 2),
        ])
        for other in others:
            assert typed(other) == typed(by_server)


FLAPPING = SeriesKey("tower-a", "gw-1", "pump-1", "flapping")


def flapping(samples: int, every_ms: int, none_every: int) -> list[Sample]:
    """A point with a value, and without one (bad) every ``none_every``-th sample."""
    return [Sample(FLAPPING, T0 + i * every_ms,
                   None if i % none_every == none_every - 1 else float(i % 97),
                   "bad" if i % none_every == none_every - 1 else "good")
            for i in range(samples)]


async def statements_of(store: InfluxStore, key: SeriesKey, start: int, end: int,
                        bucket: int) -> tuple[list[Bucket], list[int]]:
    """``store.downsampled`` and the statements of each request it sent."""
    counts: list[int] = []
    query = store._query

    async def spy(batch: Sequence[str]) -> Any:
        counts.append(len(batch))
        return await query(batch)

    store._query = spy  # type: ignore[method-assign,assignment]
    try:
        return await store.downsampled(key, start, end, bucket_ms=bucket), counts
    finally:
        store._query = query  # type: ignore[method-assign]


@pytest.mark.integration
@pytest.mark.parametrize(("samples", "every_ms", "none_every", "bucket", "settled"), [
    (25_000, 1_000, 7, 10_000, False),  # 2,500 buckets hold both: read raw, in pages
    (15_000, 40, 220, 10_000, True),  # 60 buckets of 250 samples: settled bucket by bucket
])
async def test_a_point_flapping_between_a_value_and_none(
        influx_db: InfluxDatabase, tmp_path: Path, samples: int, every_ms: int,
        none_every: int, bucket: int, settled: bool) -> None:
    data = flapping(samples, every_ms, none_every)
    end = T0 + samples * every_ms
    async with InfluxStore(influx_db.url, database=influx_db.database) as store, \
            SqliteStore(tmp_path / "ts.db") as sqlite:
        await store.write(data)
        await sqlite.write(data)
        got, requests = await statements_of(store, FLAPPING, T0, end, bucket)
        assert typed(got) == typed(await sqlite.downsampled(FLAPPING, T0, end,
                                                             bucket_ms=bucket))
    assert sum(b.last is None for b in got) > 0
    # The raw-first read (250 + 3 per bucket samples), InfluxDB's grouping of the rest,
    # then raw pages of up to 9,999 samples, or two statements per bucket holding both.
    assert requests[:2] == [1, 3]
    if settled:
        assert requests[2:] == [100, 18]  # the 59 buckets after the raw-first one
    else:
        assert requests[2:] == [1, 1]  # 17,250 samples after the raw-first 7,750


@pytest.mark.integration
async def test_a_bucket_beyond_a_raw_page_is_settled_by_statements(
        influx_db: InfluxDatabase, tmp_path: Path) -> None:
    # 200 small buckets holding both, then one of 10,050 samples: the raw pages cannot
    # finish that one, so the buckets are settled by their own statements after all.
    data = flapping(2_000, 1_000, 4) + [
        Sample(FLAPPING, T0 + 2_000_000 + i, float(i % 13), "good") for i in range(10_050)]
    end = T0 + 2_020_000
    async with InfluxStore(influx_db.url, database=influx_db.database) as store, \
            SqliteStore(tmp_path / "ts.db") as sqlite:
        await store.write(data)
        await sqlite.write(data)
        got, requests = await statements_of(store, FLAPPING, T0, end, 10_000)
        assert typed(got) == typed(await sqlite.downsampled(FLAPPING, T0, end,
                                                             bucket_ms=10_000))
    assert requests[:4] == [1, 3, 1, 1]  # raw-first, grouping, two pages in vain
    settling = requests[4:]
    assert settling == [100, 100, 30]  # the 115 small buckets after the raw-first read


@pytest.mark.integration
async def test_samples_of_the_old_schema_are_refused_by_name(
        influx_db: InfluxDatabase) -> None:
    # Before quality was a tag, it was a field: such a database is not read as if the
    # samples had no quality.
    old = ('tw,device=pump-1,gateway=gw-1,kind=f,point=flow,site=tower-a'
           f' value=1.5,quality="good" {T0}')
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        response = await store._http.post(f"{influx_db.url}/write", content=old.encode(),
                                          params={"db": influx_db.database,
                                                  "precision": "ms"})
        assert response.status_code == 204
        flow = SeriesKey("tower-a", "gw-1", "pump-1", "flow")
        for read in (store.raw(flow, T0, T0 + 1, limit=10), store.latest([flow]),
                     store.downsampled(flow, T0, T0 + 1, bucket_ms=1_000)):
            with pytest.raises(TimeSeriesError, match="quality tag"):
                await read


@pytest.mark.integration
async def test_downsampled_reads_raw_samples_first(influx_db: InfluxDatabase) -> None:
    statements: list[str] = []
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        query = store._query

        async def spy(batch: Sequence[str]) -> Any:
            statements.append(" | ".join(batch))
            return await query(batch)

        store._query = spy  # type: ignore[method-assign,assignment]
        # 1,441 samples, one a minute over a day, in 1-minute buckets: all bucketed here.
        await store.write([Sample(KEY, T0 + i * 60 * S, float(i), "good") for i in range(1441)])
        buckets = await store.downsampled(KEY, T0, T0 + 86_400 * S, bucket_ms=60 * S)
        assert len(buckets) == 1440
        assert len(statements) == 1 and "GROUP BY" not in statements[0]
        assert statements[0].endswith(f"LIMIT {raw_downsample_limit(1440) + 1}")
        # The same in 1-day buckets (T0 is mid-day: two of them): more samples than the
        # limit, so InfluxDB buckets those after the last complete bucket read.
        assert raw_downsample_limit(2) < 1440
        statements.clear()
        day = T0 // (86_400 * S) * (86_400 * S)
        buckets = await store.downsampled(KEY, T0, T0 + 86_400 * S, bucket_ms=86_400 * S)
        assert [(b.start_ms, b.count) for b in buckets] == [
            (day, (day + 86_400 * S - T0) // (60 * S)),
            (day + 86_400 * S, (T0 - day) // (60 * S)),
        ]
        assert len(statements) == 2 and "GROUP BY time(86400000ms)" in statements[1]


def test_the_raw_limit_grows_with_the_buckets_within_bounds() -> None:
    assert 100 <= raw_downsample_limit(1) < raw_downsample_limit(10) < 1000
    assert raw_downsample_limit(1440) >= 1440 * 3
    assert raw_downsample_limit(MAX_BUCKETS) < 10_000  # InfluxDB's rows per chunk


# -- the bucketing (pure) ----------------------------------------------------------------
def answer(*rows: tuple[int, Any, Any, str, str]) -> list[dict[str, Any]]:
    """A raw_query answer: rows of (time, value, value_str, quality, kind)."""
    return [{"name": "tw", "columns": ["time", *RAW_COLUMNS], "values": [list(r) for r in rows]}]


def test_downsample_raw_reads_influxdb_json() -> None:
    got = downsample_raw(answer(
        (1_000, 3, None, "good", "i"),  # JSON numbers may be ints
        (1_500, 1, None, "good", "b"),
        (1_999, None, "open", "stale", "s"),
        (2_000, None, "", "bad", "n"),
        (5_000, 2.5, None, "good", "f"),
    ), 1_000)
    assert typed(got) == typed([
        Bucket(1_000, 2.0, 1.0, 3.0, "open", 3),
        Bucket(2_000, None, None, None, None, 1),
        Bucket(5_000, 2.5, 2.5, 2.5, 2.5, 1),
    ])
    assert type(got[0].min) is float
    assert downsample_raw([], 1_000) == []
    assert downsample_raw([{"name": "tw", "columns": ["time", *RAW_COLUMNS]}], 1_000) == []


def test_downsample_raw_sums_big_integers_as_floats() -> None:
    # InfluxDB adds float64s: 2**53 + 1 is 2**53 there, and so here.
    (bucket,) = downsample_raw(answer((0, 2**53, None, "good", "i"), (1, 1, None, "good", "i"),
                                      (2, 1, None, "good", "i")), 10)
    assert bucket.mean == float(2**53) / 3


def test_downsample_raw_breaks_ties_like_last() -> None:
    # Among numbers (and among texts) the greatest; between the two, the number.
    rows = [(0, 1.0, None, "bad", "f"), (0, None, "x", "good", "s"), (0, 2.0, None, "good", "f")]
    assert downsample_raw(answer(*rows), 10)[0].last == 2.0
    assert downsample_raw(answer(*reversed(rows)), 10)[0].last == 2.0
    texts = [(0, None, "a", "good", "s"), (0, None, "b", "bad", "s"), (0, None, "", "bad", "n")]
    assert downsample_raw(answer(*texts), 10)[0].last == "b"
    # A text newer than every number is the last.
    assert downsample_raw(answer((0, 1.0, None, "good", "f"), (1, None, "", "bad", "n")),
                          10)[0].last is None


def test_downsample_raw_refuses_rows_out_of_time_order() -> None:
    with pytest.raises(TimeSeriesError, match="time order"):
        downsample_raw(answer((5, 1.0, None, "good", "f"), (4, 1.0, None, "good", "f")), 10)


def test_downsample_raw_needs_the_raw_columns() -> None:
    with pytest.raises(TimeSeriesError, match="column"):
        downsample_raw([{"name": "tw", "columns": ["time", "value"], "values": [[0, 1.0]]}], 10)
