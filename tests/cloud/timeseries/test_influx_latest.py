"""InfluxStore.latest looks at a recent window first, then further back for the rest:
the answer is the same as one unbounded query (against a real InfluxDB 1.x)."""

from __future__ import annotations

import pytest

from cloud.timeseries import Sample, SeriesKey
from cloud.timeseries.influx import InfluxStore
from cloud.timeseries.influxql import latest_queries
from tests.servers.plugin import InfluxDatabase

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
NOW_MS = 1_750_000_000_000


def _key(device: str, point: str) -> SeriesKey:
    return SeriesKey("site-a", "gw-1", device, point)


async def test_recent_old_future_and_absent_series(influx_db: InfluxDatabase) -> None:
    recent, old, future, absent = (_key("d1", "recent"), _key("d1", "old"),
                                   _key("d2", "future"), _key("d2", "absent"))
    async with InfluxStore(influx_db.url, database=influx_db.database,
                           latest_window_s=3600, clock=lambda: NOW_MS / 1000) as store:
        await store.write([
            Sample(recent, NOW_MS - 30 * DAY_MS, 1.0, "good"),
            Sample(recent, NOW_MS - 60_000, 2.0, "good"),
            Sample(old, NOW_MS - 30 * DAY_MS, "first", "good"),
            Sample(old, NOW_MS - 2 * DAY_MS, "second", "stale"),
            Sample(future, NOW_MS + DAY_MS, 7, "good"),  # an edge clock ahead of ours
        ])
        found = await store.latest([recent, old, future, absent])
    assert {k: (s.ts_ms, s.value, s.quality) for k, s in found.items()} == {
        recent: (NOW_MS - 60_000, 2.0, "good"),
        old: (NOW_MS - 2 * DAY_MS, "second", "stale"),
        future: (NOW_MS + DAY_MS, 7, "good"),
    }


def test_the_window_bounds_the_statement() -> None:
    for statement in latest_queries("s", "g", "d", ["p"], since_ms=1_000):
        assert statement.endswith('AND time >= 1000ms GROUP BY "point"')
    for statement in latest_queries("s", "g", "d", ["p"]):
        assert "time" not in statement


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latest_window_s"):
        InfluxStore("http://127.0.0.1:9", database="x", latest_window_s=0)
