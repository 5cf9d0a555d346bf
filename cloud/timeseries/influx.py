"""The InfluxDB time-series store: line protocol in, InfluxQL out.

Writes go either to the v1 endpoint ``POST /write?db=&precision=ms`` (InfluxDB 1.x, and
the 1.x compatibility API of InfluxDB 2/3) with httpx, or through influxdb-client's v2
``WriteApi`` to ``/api/v2/write`` (InfluxDB 2/3, InfluxDB Cloud, VictoriaMetrics), run
synchronously on a dedicated thread. Both send batches of up to ``batch_lines`` lines.

Reads are InfluxQL over ``POST /query?db=&epoch=ms`` at ``query_url`` (default ``url``),
which InfluxDB 1.x, 2.x (with a DBRP mapping) and 3.x answer. The schema and escaping
are described in :mod:`cloud.timeseries.influxql`. ``latest`` sends two ``last()``
statements per device (a number's and a text's; 50 devices per request), first over
the last ``latest_window_s`` (default a day) only: a ``last()`` without a time bound
reads every shard of every series asked for (30 days of 1-minute data: ~0.18 ms per
series on InfluxDB 1.6 on a 2-core VM, ~0.05 ms bounded to a day). Series with nothing
in that window are asked for again without the bound, so the answer is the same: the
newest sample, however old.

``downsampled`` first reads the range's raw samples with a ``LIMIT`` that grows with the
number of buckets (:func:`raw_downsample_limit`) and buckets them itself
(:func:`~cloud.timeseries.influxql.downsample_raw`); only when the range holds more
samples does InfluxDB bucket the rest, from the bucket of the last sample read on, with
three statements (mean/min/max/count ``GROUP BY time``, and ``last()`` of the numbers and
of the texts per bucket). A bucket holding both a number and a text (or a sample
without a value) needs two statements more to tell which is newer; when many do (a point
flapping between a value and none), the rest of the range is read raw instead, page by
page, if that costs less. Either way the buckets are the same. InfluxDB 1.6 on a 2-core
VM spends ~40 µs per bucket of a ``GROUP BY time`` (plus ~2 µs per sample) but ~7 µs per
raw sample, so a day of 1-minute data in 1-minute buckets costs it ~10 ms raw instead of
~60 ms grouped.

This module imports influxdb-client (~0.5 s); :mod:`cloud.timeseries` does not
re-export :class:`InfluxStore` so SQLite-only processes never load it.

Retention: production deployments should give the database a retention policy (1.x:
``CREATE RETENTION POLICY "raw" ON "db" DURATION 90d REPLICATION 1 DEFAULT``) or the
bucket a retention period (2.x/3.x): whole shards are dropped, which is far cheaper than
deleting. :meth:`InfluxStore.apply_retention` is the portable fallback for 1.x: it counts
the samples older than the cutoff, then runs ``DELETE FROM "tw" WHERE time < cutoff``
(the count is exact unless samples older than the cutoff are written in between).
Servers without InfluxQL ``DELETE`` (2.x, 3.x) answer with an error, raised as
:class:`~cloud.timeseries.errors.TimeSeriesError`.

Idempotence: InfluxDB keeps one point per (series, time), so a redelivery replaces the
sample. VictoriaMetrics keeps every copy unless it runs with deduplication
(``-dedup.minScrapeInterval=1ms`` keeps one sample per series and millisecond); it does
not answer InfluxQL either, so it serves as a write target (e.g. for Grafana), not as
the store the API reads from. It turns string fields into 0-valued series and silently
drops a line whose string field holds a line break (InfluxDB 1.x stores it intact).

Authentication: ``token`` is sent as ``Authorization: Token <token>`` on every request.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final, Literal, Self

import httpx
import urllib3.exceptions
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi
from influxdb_client.rest import ApiException

from cloud.timeseries import influxql
from cloud.timeseries.base import (
    Bucket,
    Sample,
    SeriesKey,
    check_buckets,
    check_limit,
    check_ts,
    clamp_range,
    too_many,
)
from cloud.timeseries.errors import StoreUnavailable, TimeSeriesError

__all__ = ["InfluxStore"]

_PREFIX_CACHE_MAX: Final = 100_000
_LATEST_STATEMENTS: Final = 100  # statements per /query request (latest, bucket lasts)
_POINT_FILTER_MAX: Final = 8  # above this many points of one device, fetch all and filter
# downsampled() reads up to _RAW_BASE + _RAW_PER_BUCKET x buckets raw samples (at most
# _RAW_MAX) to bucket them itself. Measured on InfluxDB 1.6 (2-core VM, data in TSM
# files), per request in ms, influxd CPU plus this process's CPU (parsing, bucketing):
#   GROUP BY time (3 statements)  ~3.5 + 0.049 x buckets + 0.002 x samples
#   raw samples, bucketed here    ~1.5 + 0.0117 x samples
# so reading raw costs less below ~200 + 5 x buckets samples. Above the limit the
# samples read are not wasted (their complete buckets are kept; InfluxDB does the rest),
# but a range denser than that costs up to ~0.01 ms x limit more than grouping alone
# (7 days of 1-minute data in 10-minute buckets: ~+35 ms at 5 per bucket): 3 per bucket
# keeps that smaller and still covers the common case of about one sample per bucket.
# InfluxDB 1.x marks a non-chunked answer of more than 10,000 rows partial.
_RAW_BASE: Final = 250
_RAW_PER_BUCKET: Final = 3
_RAW_MAX: Final = 9_999
# A bucket holding a number and a text (or a sample without a value) needs two statements
# of its own to tell which is its last (~2 ms a bucket). Up to _SETTLE_MAX such buckets are
# settled so; with more, the rest of the range is read raw, page by page, if that is
# cheaper: at most _SETTLE_ROWS samples per such bucket (~0.01 ms a sample).
_SETTLE_MAX: Final = 50
_SETTLE_ROWS: Final = 200
_MS: Any = "ms"  # WritePrecision.MS (typed str, though write() is annotated WritePrecision)


class InfluxStore:
    """A :class:`~cloud.timeseries.base.TimeSeriesStore` on an InfluxDB-compatible server.

    ``write_api="v1"`` needs ``database``; ``"v2"`` needs ``bucket`` (and ``org`` for
    InfluxDB 2). Queries use ``database``, or ``bucket`` when no database is given.
    """

    def __init__(
        self,
        url: str,
        *,
        database: str | None = None,
        bucket: str | None = None,
        org: str | None = None,
        token: str | None = None,
        write_api: Literal["v1", "v2"] = "v1",
        query_url: str | None = None,
        batch_lines: int = 5000,
        timeout_s: float = 10.0,
        latest_window_s: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if write_api == "v1" and not database:
            raise ValueError("write_api='v1' needs a database")
        if write_api == "v2" and not bucket:
            raise ValueError("write_api='v2' needs a bucket")
        if write_api not in ("v1", "v2"):
            raise ValueError(f"write_api must be 'v1' or 'v2', got {write_api!r}")
        if batch_lines < 1:
            raise ValueError(f"batch_lines must be positive, got {batch_lines}")
        if latest_window_s <= 0:
            raise ValueError(f"latest_window_s must be positive, got {latest_window_s}")
        self.url = url.rstrip("/")
        self.query_url = (query_url or url).rstrip("/")
        self.database = database or bucket
        self.bucket = bucket
        self.org = org
        self.write_api = write_api
        self.batch_lines = batch_lines
        self.latest_window_ms = int(latest_window_s * 1000)
        self._clock = clock
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout_s)
        self._prefixes: influxql.PrefixCache = {}
        self._closed = False
        self._v2: InfluxDBClient | None = None
        self._v2_write: WriteApi | None = None
        self._v2_thread: ThreadPoolExecutor | None = None
        if write_api == "v2":
            self._v2 = InfluxDBClient(
                url=self.url, token=token or "", org=org or "", timeout=int(timeout_s * 1000)
            )
            self._v2_write = self._v2.write_api(write_options=SYNCHRONOUS)
            self._v2_thread = ThreadPoolExecutor(1, thread_name_prefix="tw-tsdb-influx")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"InfluxDB store {self.url} is closed")

    # -- writes -----------------------------------------------------------------------
    def _lines(self, samples: Sequence[Sample]) -> list[str]:
        prefixes = self._prefixes
        if len(prefixes) > _PREFIX_CACHE_MAX:
            prefixes.clear()
        return [influxql.line(sample, prefixes) for sample in samples]

    async def write(self, samples: Sequence[Sample]) -> None:
        self._check_open()
        lines = self._lines(samples)
        for first in range(0, len(lines), self.batch_lines):
            body = "\n".join(lines[first : first + self.batch_lines]).encode()
            if self.write_api == "v1":
                await self._write_v1(body)
            else:
                await self._write_v2(body)

    async def _write_v1(self, body: bytes) -> None:
        params = {"db": self.database or "", "precision": "ms"}
        response = await self._request("POST", f"{self.url}/write", params=params, content=body)
        if response.status_code != 204:
            raise _http_error("write", response)

    async def _write_v2(self, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        assert self._v2_thread is not None
        await loop.run_in_executor(self._v2_thread, self._write_v2_sync, body)

    def _write_v2_sync(self, body: bytes) -> None:
        assert self._v2_write is not None
        try:
            self._v2_write.write(
                bucket=self.bucket or "", org=self.org or "", record=body, write_precision=_MS
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            kind = StoreUnavailable if status >= 500 or status == 0 else TimeSeriesError
            raise kind(f"InfluxDB v2 write: HTTP {status} {exc.body or exc.reason}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"InfluxDB v2 write to {self.url}: {exc}") from exc

    # -- queries ----------------------------------------------------------------------
    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self._check_open()
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:  # connect errors, timeouts, protocol errors
            raise StoreUnavailable(f"InfluxDB {url}: {exc!r}") from exc

    async def _query(self, statements: Sequence[str]) -> list[list[influxql.Series]]:
        data = {"q": ";\n".join(statements), "db": self.database or "", "epoch": "ms"}
        response = await self._request("POST", f"{self.query_url}/query", data=data)
        if response.status_code != 200:
            raise _http_error("query", response)
        try:
            body = response.json()
        except ValueError as exc:
            raise TimeSeriesError(f"InfluxDB query: invalid JSON {response.text!r:.200}") from exc
        return influxql.statement_results(body, len(statements))

    async def raw(
        self, series: SeriesKey, start_ms: int, end_ms: int, *, limit: int
    ) -> list[Sample]:
        check_limit(limit)
        window = clamp_range(start_ms, end_ms)
        if window is None:
            return []
        (answer,) = await self._query([influxql.raw_query(series, *window, limit + 1)])
        samples = influxql.parse_raw(series, answer)
        if len(samples) > limit:
            raise too_many(limit, series)
        return samples

    async def downsampled(
        self, series: SeriesKey, start_ms: int, end_ms: int, *, bucket_ms: int
    ) -> list[Bucket]:
        check_buckets(start_ms, end_ms, bucket_ms)
        window = clamp_range(start_ms, end_ms)
        if window is None:
            return []
        start, end = window
        buckets = (end - 1) // bucket_ms - start // bucket_ms + 1
        return await self._downsampled(series, start, end, bucket_ms,
                                       raw_downsample_limit(buckets))

    async def _downsampled(self, series: SeriesKey, start: int, end: int, bucket_ms: int,
                           limit: int) -> list[Bucket]:
        """Bucket up to ``limit`` raw samples here; InfluxDB buckets the rest, if any."""
        (answer,) = await self._query([influxql.raw_query(series, start, end, limit + 1)])
        here = influxql.downsample_raw(answer, bucket_ms)
        if influxql.row_count(answer) <= limit:
            return here
        # The bucket of the last sample read may hold more: it is InfluxDB's to compute.
        rest = max(start, here.pop().start_ms)
        aggregates, numbers, texts = await self._query(
            influxql.downsampled_queries(series, rest, end, bucket_ms))
        lasts = influxql.bucket_lasts(numbers, texts)
        both = influxql.buckets_with_both(lasts)
        if (len(both) > _SETTLE_MAX
                and influxql.parse_count(aggregates) <= _SETTLE_ROWS * len(both)):
            paged = await self._raw_buckets(series, rest, end, bucket_ms)
            if paged is not None:
                return here + paged
        text_is_last: set[int] = set()
        for first in range(0, len(both), _LATEST_STATEMENTS // 2):
            chunk = both[first : first + _LATEST_STATEMENTS // 2]
            answers = await self._query([
                q for b in chunk
                for q in influxql.bucket_last_queries(series, max(b, rest),
                                                      min(b + bucket_ms, end))])
            for b, number, text in zip(chunk, answers[::2], answers[1::2], strict=True):
                if influxql.text_is_newer(influxql.last_time(number), influxql.last_time(text)):
                    text_is_last.add(b)
        return here + influxql.parse_downsampled(aggregates, lasts, text_is_last)

    async def _raw_buckets(self, series: SeriesKey, start: int, end: int,
                           bucket_ms: int) -> list[Bucket] | None:
        """The buckets of ``[start, end)`` from its raw samples, read :data:`_RAW_MAX` at a
        time; ``None`` if one bucket holds more than that."""
        out: list[Bucket] = []
        while True:
            (answer,) = await self._query([influxql.raw_query(series, start, end,
                                                              _RAW_MAX + 1)])
            here = influxql.downsample_raw(answer, bucket_ms)
            if influxql.row_count(answer) <= _RAW_MAX:
                return out + here
            start = here.pop().start_ms  # read its samples again with the next page
            if not here:
                return None
            out += here

    async def latest(self, series: Sequence[SeriesKey]) -> dict[SeriesKey, Sample]:
        wanted = set(series)
        since = max(0, int(self._clock() * 1000) - self.latest_window_ms)
        found = await self._latest(wanted, since)
        older = wanted - found.keys()  # nothing in the window: look further back
        if older:
            found.update(await self._latest(older, None))
        return found

    async def _latest(self, wanted: set[SeriesKey], since: int | None,
                      ) -> dict[SeriesKey, Sample]:
        by_device: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for key in wanted:
            by_device[(key.site, key.gateway, key.device)].add(key.point)
        devices = sorted(by_device)
        found: dict[SeriesKey, Sample] = {}
        per_request = _LATEST_STATEMENTS // 2  # two statements a device
        for first in range(0, len(devices), per_request):
            chunk = devices[first : first + per_request]
            answers = await self._query(
                [q for d in chunk for q in self._latest_statements(d, by_device[d], since)])
            for device, numbers, texts in zip(chunk, answers[::2], answers[1::2], strict=True):
                for sample in influxql.parse_latest(*device, numbers, texts):
                    if sample.series in wanted:
                        found[sample.series] = sample
        return found

    @staticmethod
    def _latest_statements(device: tuple[str, str, str], points: Iterable[str],
                           since: int | None) -> tuple[str, str]:
        # A long OR of point names costs InfluxDB more than returning a few extra series.
        wanted = set(points)
        return influxql.latest_queries(*device, () if len(wanted) > _POINT_FILTER_MAX else wanted,
                                       since_ms=since)

    async def latest_for_device(self, site: str, gateway: str, device: str) -> dict[str, Sample]:
        numbers, texts = await self._query(influxql.latest_queries(site, gateway, device))
        return {s.series.point: s
                for s in influxql.parse_latest(site, gateway, device, numbers, texts)}

    async def latest_since(self, since_ms: int) -> list[Sample]:
        """The newest sample of every series that has samples at or after ``since_ms``
        (InfluxDB reads only the shards of that window)."""
        check_ts(since_ms)
        numbers, texts = await self._query(influxql.recent_latest_queries(since_ms))
        return influxql.parse_recent_latest(numbers, texts)

    async def apply_retention(self, older_than_ms: int) -> int:
        check_ts(older_than_ms)
        (counted,) = await self._query([influxql.count_before_query(older_than_ms)])
        await self._query([influxql.delete_before_query(older_than_ms)])
        return influxql.parse_count(counted)

    # -- lifecycle --------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._http.aclose()
        finally:
            if self._v2 is not None and self._v2_thread is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._v2_thread, self._v2.close)
                self._v2_thread.shutdown(wait=False)


def raw_downsample_limit(buckets: int) -> int:
    """How many raw samples :meth:`InfluxStore.downsampled` reads to bucket them itself."""
    return min(_RAW_MAX, _RAW_BASE + _RAW_PER_BUCKET * buckets)


def _http_error(what: str, response: httpx.Response) -> TimeSeriesError:
    message = f"InfluxDB {what}: HTTP {response.status_code} {response.text.strip()[:500]}"
    if response.status_code >= 500:
        return StoreUnavailable(message)
    return TimeSeriesError(message)
