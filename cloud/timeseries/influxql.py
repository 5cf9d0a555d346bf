"""InfluxDB's text formats, as pure functions: line protocol out, InfluxQL in, JSON back.

Schema: one measurement ``tw``; tags ``site``, ``gateway``, ``device``, ``point``,
``kind`` (the value's type: ``f`` float, ``i`` int, ``b`` bool, ``s`` str, ``n`` none)
and ``quality`` (``good`` ``stale`` ``bad``); each line carries exactly one field::

    tw,device=pump-1,gateway=gw-1,kind=f,point=flow,quality=good,site=tower-a value=12.5 1700…

=============  ========  ===============================================================
field          type      holds
=============  ========  ===============================================================
``value``      float     float and int values, bools as 1.0 / 0.0 (so InfluxQL
                         ``mean``/``min``/``max`` and a Grafana panel cover them)
``value_str``  string    str values; ``""`` for a sample without a value (kind ``n``)
=============  ========  ===============================================================

Timestamps are ms (``precision=ms``). A second field adds ~40 % to what a line costs
InfluxDB (1.6 on a 2-core VM, ``python -m bench.ingest``: 3.8–4.8 µs of influxd CPU per
line with one field, ~6.3 with two), so the type and the quality are tags: both are
stable, so a point has one series per (kind, quality) it ever had, usually one.
Queries never group by ``kind`` or ``quality``; they read a point's series as one.
VictoriaMetrics (v2 writes) keeps tags as labels: ``tw_value{…,quality="good"}`` graphs
the numbers, and a sample without a value or with a text is not a 0 in it.

Every sample has one of the two fields, so ``count`` is ``count(value) +
count(value_str)``, and the newest sample (of a point, of a bucket) is the newer of
``last(value)`` and ``last(value_str)``; on a tie (only after a rewrite of the same
timestamp with another type or quality) the number wins (:func:`text_is_newer`).

InfluxDB keeps one point per (series, time) and a rewrite replaces the field it
carries, so a redelivery replaces the sample. The one divergence from SQLite: rewriting
a sample at the same timestamp with a value of *another type* or *another quality*
lands in another series and adds a sample instead of replacing it.

Escaping: tag values escape ``,`` ``=`` and space with a backslash; string fields escape
``"`` and backslash. Key parts never hold backslashes or control characters (checked by
:class:`~cloud.timeseries.base.SeriesKey`): InfluxDB 1.x keeps an escaped backslash in a
tag literally, and a line break ends a line. InfluxQL string literals escape backslash
and ``'``; identifiers are always double-quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from cloud.timeseries.base import (
    Bucket,
    Kind,
    Sample,
    SeriesKey,
    Value,
    decode_value,
    trusted_sample,
)
from cloud.timeseries.errors import TimeSeriesError

MEASUREMENT: Final = "tw"
RAW_COLUMNS: Final = ("value", "value_str", "quality", "kind")

_TAG_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESCAPES: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})

PrefixCache: TypeAlias = dict[int, tuple[SeriesKey, dict[tuple[Kind, str], str]]]
"""Series prefixes by ``id(series)``, each with its series (see :func:`line`)."""


# -- line protocol ---------------------------------------------------------------------
def escape_tag(text: str) -> str:
    """A tag key or value: ``,`` ``=`` and space get a backslash."""
    return text.translate(_TAG_ESCAPES)


def escape_field_str(text: str) -> str:
    """A string field value, with its double quotes."""
    return '"' + text.translate(_STR_ESCAPES) + '"'


def series_prefix(key: SeriesKey, kind: Kind, quality: str) -> str:
    """``tw,device=…,gateway=…,kind=…,point=…,quality=…,site=…`` (tags sorted, as
    InfluxDB prefers)."""
    return (
        f"{MEASUREMENT},device={escape_tag(key.device)},gateway={escape_tag(key.gateway)}"
        f",kind={kind},point={escape_tag(key.point)},quality={escape_tag(quality)}"
        f",site={escape_tag(key.site)}"
    )


def line(sample: Sample, prefixes: PrefixCache) -> str:
    """One line of line protocol for ``sample``; ``prefixes`` caches series prefixes.

    The hot path of every write: the value's type is dispatched here rather than
    through :func:`~cloud.timeseries.base.encode_value` (same mapping), and the cache is
    keyed by the series object's identity (each entry keeps its series, so an id is
    never mistaken for another's): hashing a :class:`SeriesKey` hashes four strings.
    """
    value = sample.value
    cls = value.__class__
    if cls is float:
        kind: Kind = "f"
        field = f" value={value!r} "
    elif cls is int:
        kind, field = "i", f" value={float(value)!r} "  # type: ignore[arg-type]
    elif cls is bool:
        kind, field = "b", " value=1.0 " if value else " value=0.0 "
    elif value is None:
        kind, field = "n", ' value_str="" '
    else:
        kind, field = "s", f" value_str={escape_field_str(str(value))} "
    series = sample.series
    entry = prefixes.get(id(series))
    if entry is None or entry[0] is not series:
        entry = prefixes[id(series)] = (series, {})
    tags = (kind, sample.quality)
    prefix = entry[1].get(tags)
    if prefix is None:
        prefix = entry[1][tags] = series_prefix(series, kind, sample.quality)
    return f"{prefix}{field}{sample.ts_ms}"


# -- InfluxQL --------------------------------------------------------------------------
def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _eq(tag: str, value: str) -> str:
    return f"{quote_ident(tag)} = {quote_str(value)}"


def where_device(site: str, gateway: str, device: str) -> str:
    return f"{_eq('site', site)} AND {_eq('gateway', gateway)} AND {_eq('device', device)}"


def where_series(key: SeriesKey) -> str:
    return f"{where_device(key.site, key.gateway, key.device)} AND {_eq('point', key.point)}"


def time_range(start_ms: int, end_ms: int) -> str:
    return f"time >= {int(start_ms)}ms AND time < {int(end_ms)}ms"


_FROM: Final = f"FROM {quote_ident(MEASUREMENT)}"
_RAW_SELECT: Final = 'SELECT "value", "value_str", "quality"::tag, "kind"::tag'
# The newest sample with a number, and with a text (or none): the selector picks the row,
# and the tags asked for alongside are that row's.
_LAST_NUMBER: Final = 'SELECT last("value") AS "value", "kind"::tag, "quality"::tag'
_LAST_TEXT: Final = 'SELECT last("value_str") AS "value_str", "kind"::tag, "quality"::tag'


def raw_query(key: SeriesKey, start_ms: int, end_ms: int, limit: int) -> str:
    return (
        f"{_RAW_SELECT} {_FROM} WHERE {where_series(key)} AND {time_range(start_ms, end_ms)}"
        f" ORDER BY time ASC LIMIT {int(limit)}"
    )


def _lasts(rest: str) -> tuple[str, str]:
    return f"{_LAST_NUMBER} {rest}", f"{_LAST_TEXT} {rest}"


def downsampled_queries(
    key: SeriesKey, start_ms: int, end_ms: int, bucket_ms: int
) -> tuple[str, str, str]:
    """Three statements: the aggregates per bucket, and each bucket's last sample with a
    number and with a text (when a bucket has both, :func:`bucket_last_queries` tells
    which is newer)."""
    where = f"{_FROM} WHERE {where_series(key)} AND {time_range(start_ms, end_ms)}"
    group = f"GROUP BY time({int(bucket_ms)}ms) fill(none)"
    aggregates = (
        'SELECT mean("value") AS "mean", min("value") AS "min", max("value") AS "max",'
        f' count("value") AS "numbers", count("value_str") AS "texts" {where} {group}'
    )
    return (aggregates, *_lasts(f"{where} {group}"))


def bucket_last_queries(key: SeriesKey, start_ms: int, end_ms: int) -> tuple[str, str]:
    """The newest sample with a number and with a text in ``[start_ms, end_ms)``, with
    their own times (a ``GROUP BY time`` answer gives the bucket's)."""
    return _lasts(f"{_FROM} WHERE {where_series(key)} AND {time_range(start_ms, end_ms)}")


def latest_queries(site: str, gateway: str, device: str, points: Iterable[str] = (), *,
                   since_ms: int | None = None) -> tuple[str, str]:
    """The newest sample of each point of one device (of ``points`` only, if given;
    among samples at or after ``since_ms`` only, if given): with a number, with a text."""
    where = where_device(site, gateway, device)
    wanted = sorted(set(points))
    if wanted:
        where += " AND (" + " OR ".join(_eq("point", p) for p in wanted) + ")"
    if since_ms is not None:
        where += f" AND time >= {int(since_ms)}ms"
    return _lasts(f'{_FROM} WHERE {where} GROUP BY "point"')


def recent_latest_queries(since_ms: int) -> tuple[str, str]:
    """The newest sample of every series with samples at or after ``since_ms``."""
    return _lasts(f'{_FROM} WHERE time >= {int(since_ms)}ms'
                  ' GROUP BY "site", "gateway", "device", "point"')


def count_before_query(cutoff_ms: int) -> str:
    return (f'SELECT count("value") AS "numbers", count("value_str") AS "texts" {_FROM}'
            f" WHERE time < {int(cutoff_ms)}ms")


def delete_before_query(cutoff_ms: int) -> str:
    return f"DELETE {_FROM} WHERE time < {int(cutoff_ms)}ms"


# -- /query results --------------------------------------------------------------------
Series: TypeAlias = Mapping[str, Any]


def statement_results(body: Any, statements: int) -> list[list[Series]]:
    """The series of each statement in a ``/query`` JSON answer; raise on any error."""
    if not isinstance(body, Mapping):
        raise TimeSeriesError(f"InfluxDB answered with unexpected JSON: {body!r:.200}")
    if "error" in body:
        raise TimeSeriesError(f"InfluxDB: {body['error']}")
    results = body.get("results")
    if not isinstance(results, list) or len(results) != statements:
        raise TimeSeriesError(f"InfluxDB answered {statements} statements with {body!r:.200}")
    out: list[list[Series]] = []
    for result in results:
        if "error" in result:
            raise TimeSeriesError(f"InfluxDB: {result['error']}")
        series = result.get("series", [])
        # Only the statement's own flag means rows were cut (``max-row-limit``): in a
        # non-chunked answer InfluxDB 1.x merges its internal 10,000-row chunks into one
        # series and leaves that series marked ``partial`` though every row is there.
        if result.get("partial"):
            raise TimeSeriesError("InfluxDB truncated the answer (max-row-limit); narrow it")
        out.append(series)
    return out


def rows(series: Series) -> list[dict[str, Any]]:
    columns: Sequence[str] = series["columns"]
    return [dict(zip(columns, values, strict=True)) for values in series.get("values", [])]


def _value(kind: Any, num: Any, txt: Any) -> Value:
    return decode_value(str(kind), None if num is None else float(num), txt)


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def text_is_newer(number_ts: int | None, text_ts: int | None) -> bool:
    """Whether the newest sample is the one with a text (a tie goes to the number)."""
    return text_ts is not None and (number_ts is None or text_ts > number_ts)


def row_count(answer: Sequence[Series]) -> int:
    return sum(len(s.get("values", [])) for s in answer)


def _quality(quality: Any) -> Any:
    if quality is None:  # a line written before quality was a tag
        raise TimeSeriesError("InfluxDB holds samples without a quality tag (written by an "
                              "older Towerwatch schema): recreate the database")
    return quality


def parse_raw(key: SeriesKey, answer: Sequence[Series]) -> list[Sample]:
    return [
        trusted_sample(key, int(r["time"]), _value(r["kind"], r["value"], r["value_str"]),
                       _quality(r["quality"]))
        for s in answer
        for r in rows(s)
    ]


def _columns(series: Series, *names: str) -> list[int]:
    columns: Sequence[str] = series["columns"]
    try:
        return [columns.index(name) for name in names]
    except ValueError as exc:
        raise TimeSeriesError(f"InfluxDB answer lacks a column: {exc}; got {columns}") from exc


def _bucket_lasts(answer: Sequence[Series], field: str) -> dict[int, Value]:
    out: dict[int, Value] = {}
    for s in answer:
        t, k, v = _columns(s, "time", "kind", field)
        for r in s.get("values", []):
            out[int(r[t])] = (_value(r[k], r[v], None) if field == "value"
                              else _value(r[k], None, r[v]))
    return out


BucketLasts: TypeAlias = tuple[dict[int, Value], dict[int, Value]]
"""Each bucket's last value with a number, and with a text, by bucket start."""


def bucket_lasts(numbers: Sequence[Series], texts: Sequence[Series]) -> BucketLasts:
    """The last-number and last-text answers of :func:`downsampled_queries`, read once."""
    return _bucket_lasts(numbers, "value"), _bucket_lasts(texts, "value_str")


def buckets_with_both(lasts: BucketLasts) -> list[int]:
    """The buckets (starts) that have a last sample with a number and one with a text:
    which is the bucket's last needs their own times."""
    return sorted(lasts[0].keys() & lasts[1].keys())


def last_time(answer: Sequence[Series]) -> int | None:
    """The time of the one row of a :func:`bucket_last_queries` statement, if any."""
    for s in answer:
        for r in s.get("values", []):
            return int(r[_columns(s, "time")[0]])
    return None


def parse_downsampled(aggregates: Sequence[Series], lasts: BucketLasts,
                      text_is_last: Collection[int]) -> list[Bucket]:
    """The buckets of :func:`downsampled_queries`' answers; ``text_is_last``: the buckets
    (of :func:`buckets_with_both`) whose newest sample is the one with a text."""
    # A day of 1-minute buckets is 3 x 1,440 rows: read them by column index.
    last = dict(lasts[0])
    for start, value in lasts[1].items():
        if start not in last or start in text_is_last:
            last[start] = value
    out: list[Bucket] = []
    for s in aggregates:
        t, mean, lo, hi, n, txt = _columns(s, "time", "mean", "min", "max", "numbers", "texts")
        for r in s.get("values", []):
            count = (r[n] or 0) + (r[txt] or 0)
            if count:
                start = int(r[t])
                out.append(Bucket(start_ms=start, mean=_float(r[mean]), min=_float(r[lo]),
                                  max=_float(r[hi]), last=last.get(start), count=int(count)))
    return out


class _Bucketing:
    """One bucket of :func:`downsample_raw` being filled."""

    __slots__ = ("count", "hi", "lo", "number", "number_ts", "start", "sums", "text",
                 "text_ts")

    def __init__(self, start: int) -> None:
        self.start, self.count = start, 0
        self.sums: dict[str, list[float]] = {}  # series (kind + quality) -> [sum, count]
        self.lo = self.hi = 0.0
        self.number_ts = self.text_ts = -1
        self.number: tuple[Any, float] = ("f", 0.0)
        self.text: tuple[Any, str] = ("n", "")

    def bucket(self) -> Bucket:
        if text_is_newer(self.number_ts if self.number_ts >= 0 else None,
                 self.text_ts if self.text_ts >= 0 else None):
            last = _value(self.text[0], None, self.text[1])
        else:
            last = _value(self.number[0], self.number[1], None)
        if not self.sums:
            return Bucket(self.start, None, None, None, last, self.count)
        return Bucket(self.start, _mean(self.sums), self.lo, self.hi, last, self.count)


def downsample_raw(answer: Sequence[Series], bucket_ms: int) -> list[Bucket]:
    """The buckets of :meth:`~cloud.timeseries.base.TimeSeriesStore.downsampled`, computed
    here from the answer to a :func:`raw_query` (rows in time order) rather than by
    InfluxDB: the result :func:`parse_downsampled` gives for the
    :func:`downsampled_queries` over the same rows (with :func:`bucket_last_queries` for
    the buckets holding a number and a text).

    Buckets start at multiples of ``bucket_ms``; ``mean``/``min``/``max`` cover the
    ``value`` field (numbers, bools as 1/0); ``count`` counts every row; ``last`` is the
    value of the bucket's latest row. The mean is computed as InfluxDB does: the mean of
    each series (each ``kind`` and ``quality``) in time order, then their sum weighted
    by their counts (:func:`_mean`; over several series, InfluxDB may add them in
    another order, so the last bits may differ). Rows at the same time happen only after a rewrite
    with another type or quality (see the module docstring): among numbers, InfluxDB's
    ``last()`` of a ``GROUP BY time`` bucket keeps the greatest, among texts likewise,
    and between the two :func:`text_is_newer` decides. (Of equal numbers of two types, ``5.0``
    and ``5``, InfluxDB returns either, depending on where the statement starts; this
    keeps the first in series order.)
    """
    out: list[Bucket] = []
    b: _Bucketing | None = None
    last_ts = -1
    for s in answer:
        t, k, v, vs, q = _columns(s, "time", "kind", "value", "value_str", "quality")
        for r in s.get("values", []):
            ts = int(r[t])
            if ts < last_ts:  # not an answer to raw_query (one series, time order)
                raise TimeSeriesError(f"InfluxDB answered rows out of time order at {ts}")
            last_ts = ts
            if b is None or ts - ts % bucket_ms != b.start:
                if b is not None:
                    out.append(b.bucket())
                b = _Bucketing(ts - ts % bucket_ms)
            b.count += 1
            num = r[v]
            if num is None:
                text = r[vs]
                if ts > b.text_ts or text > b.text[1]:
                    b.text_ts, b.text = ts, (r[k], text)
                continue
            x = float(num)
            if ts > b.number_ts or x > b.number[1]:
                b.number_ts, b.number = ts, (r[k], x)
            series = r[k] + _quality(r[q])
            acc = b.sums.get(series)
            if acc is not None:
                acc[0] += x
                acc[1] += 1
            elif not b.sums:
                b.lo = b.hi = x
                b.sums[series] = [x, 1]
                continue
            else:
                b.sums[series] = [x, 1]
            if x < b.lo:
                b.lo = x
            elif x > b.hi:
                b.hi = x
    if b is not None:
        out.append(b.bucket())
    return out


def _mean(sums: dict[str, list[float]]) -> float:
    """InfluxDB 1.x's ``mean()`` of a bucket: each series' mean (``sum / n``) is emitted
    with its count, and merged by ``FloatMeanReducer`` as ``mean * n`` (or the value
    itself when ``n == 1``), in series order (by ``kind``, ``b`` < ``f`` < ``i``, then
    ``quality``). That is InfluxDB's order for one bucket; in a statement over many
    buckets its merge takes a bucket's series in an order that varies, so a mean over
    several series can differ from this one in the last bits."""
    if len(sums) == 1:
        ((part, parts),) = sums.values()
        return part / parts * parts / parts if parts >= 2 else part
    total = n = 0.0
    for series in sorted(sums):
        part, parts = sums[series]
        total += part / parts * parts if parts >= 2 else part
        n += parts
    return total / n


def _newest(numbers: Sequence[Series], texts: Sequence[Series],
            key: Callable[[Mapping[str, str]], SeriesKey]) -> list[Sample]:
    """The samples of a pair of last-number / last-text answers grouped by series tags:
    for each series, the newer of its two."""
    found: dict[SeriesKey, Sample] = {}
    for answer, field in ((numbers, "value"), (texts, "value_str")):
        for s in answer:
            series = key(s["tags"])
            for r in rows(s):
                ts = int(r["time"])
                old = found.get(series)
                if old is not None and not (field == "value_str"
                                            and text_is_newer(old.ts_ms, ts)):
                    continue
                value = (_value(r["kind"], r["value"], None) if field == "value"
                         else _value(r["kind"], None, r["value_str"]))
                found[series] = trusted_sample(series, ts, value, _quality(r["quality"]))
    return list(found.values())


def parse_latest(site: str, gateway: str, device: str, numbers: Sequence[Series],
                 texts: Sequence[Series]) -> list[Sample]:
    """The samples of the :func:`latest_queries` of one device."""
    return _newest(numbers, texts, lambda tags: SeriesKey(site, gateway, device, tags["point"]))


def parse_recent_latest(numbers: Sequence[Series], texts: Sequence[Series]) -> list[Sample]:
    """The samples of the :func:`recent_latest_queries`."""
    return _newest(numbers, texts, lambda tags: SeriesKey(
        tags["site"], tags["gateway"], tags["device"], tags["point"]))


def parse_count(answer: Sequence[Series]) -> int:
    return sum(int(r["numbers"] or 0) + int(r["texts"] or 0) for s in answer for r in rows(s))
