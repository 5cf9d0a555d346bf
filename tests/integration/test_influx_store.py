"""InfluxStore against real servers: the store contract on InfluxDB 1.x (v1 ``/write``,
InfluxQL ``/query``), and the v2 write path (influxdb-client) against VictoriaMetrics."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cloud.timeseries import Sample, SeriesKey, StoreUnavailable, TimeSeriesError
from cloud.timeseries.influx import InfluxStore
from cloud.timeseries.influxql import (
    PrefixCache,
    escape_field_str,
    escape_tag,
    latest_queries,
    line,
    quote_ident,
    quote_str,
    raw_query,
    series_prefix,
    statement_results,
)
from tests.cloud.timeseries.test_sqlite_store import KEY, T0, StoreContract, key
from tests.servers.influxdb import InfluxDB1Server
from tests.servers.plugin import InfluxDatabase
from tests.servers.ports import free_port
from tests.servers.victoria import VictoriaMetricsServer

pytestmark = pytest.mark.integration


class TestInfluxStoreV1(StoreContract):
    @pytest.fixture
    async def store(self, influx_db: InfluxDatabase) -> AsyncIterator[InfluxStore]:
        async with InfluxStore(influx_db.url, database=influx_db.database) as store:
            yield store


# -- the text formats (pure) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("pump-1", "pump-1"),
        ("a b", r"a\ b"),
        ("a,b", r"a\,b"),
        ("a=b", r"a\=b"),
        ("x' \"y", "x'\\ \"y"),  # quotes need no escaping in tags
        (" ,=", r"\ \,\="),
    ],
)
def test_escape_tag(text: str, escaped: str) -> None:
    assert escape_tag(text) == escaped


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("on", '"on"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("a, b=c", '"a, b=c"'),
        ("", '""'),
    ],
)
def test_escape_field_str(text: str, escaped: str) -> None:
    assert escape_field_str(text) == escaped


@pytest.mark.parametrize(
    ("value", "kind", "fields"),
    [
        (1.5, "f", "value=1.5"),
        (1e-9, "f", "value=1e-09"),
        (3, "i", "value=3.0"),
        (True, "b", "value=1.0"),
        (False, "b", "value=0.0"),
        ("open", "s", 'value_str="open"'),
        ('a "b" \\ c', "s", r'value_str="a \"b\" \\ c"'),
        (None, "n", 'value_str=""'),
    ],
)
def test_line(value: Any, kind: str, fields: str) -> None:
    sample = Sample(SeriesKey("s 1", "g,1", "d=1", "p"), 1234, value, "stale")
    cache: PrefixCache = {}
    assert line(sample, cache) == (
        rf"tw,device=d\=1,gateway=g\,1,kind={kind},point=p,quality=stale,site=s\ 1 {fields} 1234"
    )
    prefix = series_prefix(sample.series, kind, "stale")  # type: ignore[arg-type]
    assert cache == {id(sample.series): (sample.series, {(kind, "stale"): prefix})}


def test_influxql_quoting() -> None:
    assert quote_str("it's") == r"'it\'s'"
    assert quote_str("a\\' OR 1=1") == r"'a\\\' OR 1=1'"
    assert quote_ident('we"ird') == r'"we\"ird"'
    query = raw_query(key("x' OR 'a'='a"), 1, 2, 3)
    assert """"point" = 'x\\' OR \\'a\\'=\\'a'""" in query
    assert query.endswith("time >= 1ms AND time < 2ms ORDER BY time ASC LIMIT 3")
    for statement in latest_queries("s", "g", "d", ["b", "a", "a"]):
        assert statement.count('"point" =') == 2


# -- InfluxDB 1.x specifics ------------------------------------------------------------
async def test_a_rewrite_with_another_quality_or_type_adds_a_sample(
        influx_db: InfluxDatabase) -> None:
    # Type and quality are tags (one field a line): such a rewrite is another series.
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        await store.write([Sample(KEY, T0, 1.0, "good"), Sample(KEY, T0 + 1, 2.0, "good")])
        await store.write([Sample(KEY, T0, 1.5, "stale"), Sample(KEY, T0 + 1, "two", "good")])
        got = await store.raw(KEY, T0, T0 + 2, limit=10)
        assert sorted((s.ts_ms, str(s.value), s.quality) for s in got) == [
            (T0, "1.0", "good"), (T0, "1.5", "stale"), (T0 + 1, "2.0", "good"),
            (T0 + 1, "two", "good")]
        latest = (await store.latest([KEY]))[KEY]
        assert (latest.ts_ms, latest.value) == (T0 + 1, 2.0)  # a tie goes to the number


async def test_tags_are_stored_unescaped(influx_db: InfluxDatabase) -> None:
    odd = SeriesKey("site one", "gw,1", "dev=2", "p'\"oint")
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        await store.write([Sample(odd, T0, 1.0, "good")])
    answer = influx_db.server.query('SHOW SERIES FROM "tw"', influx_db.database)
    (series,) = answer["results"][0]["series"]
    assert series["values"] == [
        [r"tw,device=dev\=2,gateway=gw\,1,kind=f,point=p'" + '"oint,quality=good,site=site\\ one']
    ]
    tags = influx_db.server.query(
        'SHOW TAG VALUES FROM "tw" WITH KEY = "point"', influx_db.database
    )
    assert tags["results"][0]["series"][0]["values"] == [["point", "p'\"oint"]]


def test_only_a_statements_partial_flag_is_a_truncation() -> None:
    series = {"name": "tw", "columns": ["time"], "values": [[1]], "partial": True}
    assert statement_results({"results": [{"series": [series]}]}, 1) == [[series]]
    with pytest.raises(TimeSeriesError, match="truncated"):
        statement_results({"results": [{"series": [series], "partial": True}]}, 1)


async def test_raw_reads_more_than_one_internal_chunk(influx_db: InfluxDatabase) -> None:
    """InfluxDB 1.x answers a non-chunked query of more than 10,000 rows as one series
    marked ``partial`` though every row is there: that is no truncation."""
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        await store.write([Sample(KEY, T0 + i, float(i), "good") for i in range(12_345)])
        got = await store.raw(KEY, T0, T0 + 20_000, limit=20_000)
        assert [s.value for s in got] == [float(i) for i in range(12_345)]


async def test_writes_are_split_into_batches(influx_db: InfluxDatabase) -> None:
    async with InfluxStore(influx_db.url, database=influx_db.database, batch_lines=3) as store:
        await store.write([Sample(KEY, T0 + i, i, "good") for i in range(10)])
        assert [s.value for s in await store.raw(KEY, T0, T0 + 10, limit=10)] == list(range(10))


async def test_a_missing_database_is_an_error(influxdb: InfluxDB1Server) -> None:
    async with InfluxStore(influxdb.url, database=f"missing_{uuid.uuid4().hex}") as store:
        with pytest.raises(TimeSeriesError, match="database not found") as caught:
            await store.write([Sample(KEY, T0, 1.0, "good")])
        assert not isinstance(caught.value, StoreUnavailable)
        with pytest.raises(TimeSeriesError, match="database not found"):
            await store.raw(KEY, T0, T0 + 1, limit=1)


async def test_a_type_conflict_is_an_error(influx_db: InfluxDatabase) -> None:
    # Field types are fixed per shard: a string "value" in the same shard as our float.
    influx_db.server.write(f'tw,site=x value="text" {T0}', influx_db.database, "ms")
    async with InfluxStore(influx_db.url, database=influx_db.database) as store:
        with pytest.raises(TimeSeriesError, match="field type conflict"):
            await store.write([Sample(KEY, T0, 1.0, "good")])


async def test_an_unreachable_server_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with InfluxStore(url, database="tw", timeout_s=2) as store:
        with pytest.raises(StoreUnavailable):
            await store.write([Sample(KEY, T0, 1.0, "good")])
        with pytest.raises(StoreUnavailable):
            await store.latest([KEY])
    async with InfluxStore(url, bucket="tw", write_api="v2", timeout_s=2) as store:
        with pytest.raises(StoreUnavailable):
            await store.write([Sample(KEY, T0, 1.0, "good")])


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="database"):
        InfluxStore("http://127.0.0.1:1", write_api="v1")
    with pytest.raises(ValueError, match="bucket"):
        InfluxStore("http://127.0.0.1:1", database="x", write_api="v2")


# -- the v2 write path (influxdb-client) against VictoriaMetrics ------------------------
async def _export(victoria: VictoriaMetricsServer, match: str) -> list[dict[str, Any]]:
    victoria.flush()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{victoria.url}/api/v1/export", params={"match[]": match})
    response.raise_for_status()
    return [json.loads(row) for row in response.text.splitlines() if row.strip()]


async def test_v2_writes_are_accepted_by_victoriametrics(victoria: VictoriaMetricsServer) -> None:
    site = f"site {uuid.uuid4().hex[:8]}"  # unique per run; a space to prove the escaping
    flow = SeriesKey(site, "gw,1", "pump=1", "flow")
    running = SeriesKey(site, "gw,1", "pump=1", "running")
    mode = SeriesKey(site, "gw,1", "pump=1", "mode")
    samples = [
        Sample(flow, T0, 1.5, "good"),
        Sample(flow, T0 + 1000, 2, "stale"),
        Sample(running, T0, True, "good"),
        Sample(running, T0 + 1000, False, "good"),
        Sample(mode, T0, 'auto "2", x=1 \\', "good"),
        Sample(mode, T0 + 1000, None, "bad"),
    ]
    async with InfluxStore(
        victoria.url, bucket="towerwatch", org="tw", write_api="v2", batch_lines=3
    ) as store:
        await store.write(samples)

    exported = await _export(victoria, f'{{__name__=~"tw_.*",site="{site}"}}')
    by_name = {
        (row["metric"]["__name__"], row["metric"]["point"], row["metric"]["kind"],
         row["metric"]["quality"]): row
        for row in exported
    }
    # VictoriaMetrics names a series <measurement>_<field>; tags become labels.
    flow_f = by_name[("tw_value", "flow", "f", "good")]
    assert flow_f["metric"] == {
        "__name__": "tw_value", "site": site, "gateway": "gw,1", "device": "pump=1",
        "point": "flow", "kind": "f", "quality": "good",
    }  # fmt: skip
    assert (flow_f["timestamps"], flow_f["values"]) == ([T0], [1.5])
    flow_i = by_name[("tw_value", "flow", "i", "stale")]
    assert (flow_i["timestamps"], flow_i["values"]) == ([T0 + 1000], [2])
    bools = by_name[("tw_value", "running", "b", "good")]
    assert (bools["timestamps"], bools["values"]) == ([T0, T0 + 1000], [1, 0])
    # String fields are not VictoriaMetrics values (it stores them as 0), but the lines
    # carrying them were accepted: every sample shows up, and none in tw_value.
    assert by_name[("tw_value_str", "mode", "s", "good")]["timestamps"] == [T0]
    assert by_name[("tw_value_str", "mode", "n", "bad")]["timestamps"] == [T0 + 1000]
    assert len(exported) == 5  # one series per (field, tag set)
