"""InfluxDB's text formats, as pure functions: line protocol out, InfluxQL in, JSON back.

Schema: one measurement ``tw``; tags ``site``, ``gateway``, ``device``, ``point`` and
``kind`` (the value's type: ``f`` float, ``i`` int, ``b`` bool, ``s`` str, ``n`` none)::

    tw,device=pump-1,gateway=gw-1,kind=f,point=flow,site=tower-a value=12.5,quality="good" 1700…

=============  ========  ===============================================================
field          type      holds
=============  ========  ===============================================================
``value``      float     float and int values, bools as 1.0 / 0.0 (so InfluxQL
                         ``mean``/``min``/``max`` cover them); absent for str and None
``value_str``  string    str values
``quality``    string    ``good`` ``stale`` ``bad``; always present, so ``count`` and
                         ``last`` of it see every sample
=============  ========  ===============================================================

Timestamps are ms (``precision=ms``). Each field costs InfluxDB about as much as a whole
point (InfluxDB 1.6 took ~240k lines/s with one field, ~100k with two, ~55k with three),
so a line carries two fields and the type is a tag: a point's type is stable, so it has
one series per kind it ever had (usually its type, and ``n`` while it had no value).
Queries never group by ``kind``; they read a point's series as one.

InfluxDB keeps one point per (series, time) and a rewrite replaces the fields it carries,
so a redelivery replaces the sample. The one divergence from SQLite: rewriting a sample
at the same timestamp with a value of *another type* lands in another series and adds a
sample instead of replacing it.

Escaping: tag values escape ``,`` ``=`` and space with a backslash; string fields escape
``"`` and backslash. Key parts never hold backslashes or control characters (checked by
:class:`~cloud.timeseries.base.SeriesKey`): InfluxDB 1.x keeps an escaped backslash in a
tag literally, and a line break ends a line. InfluxQL string literals escape backslash
and ``'``; identifiers are always double-quoted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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

PrefixCache: TypeAlias = dict[int, tuple[SeriesKey, dict[Kind, str]]]
"""Series prefixes by ``id(series)``, each with its series (see :func:`line`)."""


# -- line protocol ---------------------------------------------------------------------
def escape_tag(text: str) -> str:
    """A tag key or value: ``,`` ``=`` and space get a backslash."""
    return text.translate(_TAG_ESCAPES)


def escape_field_str(text: str) -> str:
    """A string field value, with its double quotes."""
    return '"' + text.translate(_STR_ESCAPES) + '"'


def series_prefix(key: SeriesKey, kind: Kind) -> str:
    """``tw,device=…,gateway=…,kind=…,point=…,site=…`` (tags sorted, as InfluxDB prefers)."""
    return (
        f"{MEASUREMENT},device={escape_tag(key.device)},gateway={escape_tag(key.gateway)}"
        f",kind={kind},point={escape_tag(key.point)},site={escape_tag(key.site)}"
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
        field = f"value={value!r},"
    elif cls is int:
        kind, field = "i", f"value={float(value)!r},"  # type: ignore[arg-type]
    elif cls is bool:
        kind, field = "b", "value=1.0," if value else "value=0.0,"
    elif value is None:
        kind, field = "n", ""
    else:
        kind, field = "s", f"value_str={escape_field_str(str(value))},"
    series = sample.series
    entry = prefixes.get(id(series))
    if entry is None or entry[0] is not series:
        entry = prefixes[id(series)] = (series, {})
    prefix = entry[1].get(kind)
    if prefix is None:
        prefix = entry[1][kind] = series_prefix(series, kind)
    return f'{prefix} {field}quality="{sample.quality}" {sample.ts_ms}'


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
# The newest sample (of a group): ``last("quality")`` is the only selector, so the other
# columns come from the same row; ``quality`` is the one field every sample has.
_LAST_ROW: Final = 'SELECT last("quality") AS "quality", "kind", "value", "value_str"'


def raw_query(key: SeriesKey, start_ms: int, end_ms: int, limit: int) -> str:
    columns = ", ".join(quote_ident(c) for c in RAW_COLUMNS)
    return (
        f"SELECT {columns} {_FROM} WHERE {where_series(key)} AND {time_range(start_ms, end_ms)}"
        f" ORDER BY time ASC LIMIT {int(limit)}"
    )


def downsampled_queries(
    key: SeriesKey, start_ms: int, end_ms: int, bucket_ms: int
) -> tuple[str, str]:
    """Two statements: the aggregates per bucket, and each bucket's last sample."""
    where = f"{_FROM} WHERE {where_series(key)} AND {time_range(start_ms, end_ms)}"
    group = f"GROUP BY time({int(bucket_ms)}ms) fill(none)"
    aggregates = (
        'SELECT mean("value") AS "mean", min("value") AS "min", max("value") AS "max",'
        f' count("quality") AS "count" {where} {group}'
    )
    return aggregates, f"{_LAST_ROW} {where} {group}"


def latest_query(site: str, gateway: str, device: str, points: Iterable[str] = (), *,
                 since_ms: int | None = None) -> str:
    """The newest sample of each point of one device (of ``points`` only, if given;
    among samples at or after ``since_ms`` only, if given)."""
    where = where_device(site, gateway, device)
    wanted = sorted(set(points))
    if wanted:
        where += " AND (" + " OR ".join(_eq("point", p) for p in wanted) + ")"
    if since_ms is not None:
        where += f" AND time >= {int(since_ms)}ms"
    return f'{_LAST_ROW} {_FROM} WHERE {where} GROUP BY "point"'


def recent_latest_query(since_ms: int) -> str:
    """The newest sample of every series with samples at or after ``since_ms``."""
    return (f'{_LAST_ROW} {_FROM} WHERE time >= {int(since_ms)}ms'
            ' GROUP BY "site", "gateway", "device", "point"')


def count_before_query(cutoff_ms: int) -> str:
    return f'SELECT count("quality") AS "count" {_FROM} WHERE time < {int(cutoff_ms)}ms'


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


def parse_raw(key: SeriesKey, answer: Sequence[Series]) -> list[Sample]:
    return [
        trusted_sample(key, int(r["time"]), _value(r["kind"], r["value"], r["value_str"]),
                       r["quality"])
        for s in answer
        for r in rows(s)
    ]


def _columns(series: Series, *names: str) -> list[int]:
    columns: Sequence[str] = series["columns"]
    try:
        return [columns.index(name) for name in names]
    except ValueError as exc:
        raise TimeSeriesError(f"InfluxDB answer lacks a column: {exc}; got {columns}") from exc


def parse_downsampled(aggregates: Sequence[Series], lasts: Sequence[Series]) -> list[Bucket]:
    # A day of 1-minute buckets is 2 x 1,440 rows: read them by column index.
    last: dict[int, Value] = {}
    for s in lasts:
        t, k, v, vs = _columns(s, "time", "kind", "value", "value_str")
        for r in s.get("values", []):
            last[int(r[t])] = _value(r[k], r[v], r[vs])
    out: list[Bucket] = []
    for s in aggregates:
        t, mean, lo, hi, n = _columns(s, "time", "mean", "min", "max", "count")
        for r in s.get("values", []):
            if r[n]:
                start = int(r[t])
                out.append(Bucket(start_ms=start, mean=_float(r[mean]), min=_float(r[lo]),
                                  max=_float(r[hi]), last=last.get(start), count=int(r[n])))
    return out


def downsample_raw(answer: Sequence[Series], bucket_ms: int) -> list[Bucket]:
    """The buckets of :meth:`~cloud.timeseries.base.TimeSeriesStore.downsampled`, computed
    here from the answer to a :func:`raw_query` (rows in time order) rather than by
    InfluxDB: the result :func:`parse_downsampled` gives for the
    :func:`downsampled_queries` over the same rows.

    Buckets start at multiples of ``bucket_ms``; ``mean``/``min``/``max`` cover the
    ``value`` field (numbers, bools as 1/0); ``count`` counts every row; ``last`` is the
    value of the bucket's latest row. The mean is computed as InfluxDB does: the mean of
    each series (each ``kind``) in time order, then their sum weighted by their counts
    (:func:`_mean`). Rows at the same time happen only after a rewrite with a value of
    another type (see the module docstring); among them ``last("quality")`` picks the
    greatest ``quality``, and so does this.
    """
    out: list[Bucket] = []
    start = last_ts = -1
    count = 0
    sums: dict[str, list[float]] = {}  # kind -> [sum, count] of the bucket's numbers
    lo = hi = 0.0
    last_row, quality = (None, None, None), ""
    for s in answer:
        t, k, v, vs, q = _columns(s, "time", "kind", "value", "value_str", "quality")
        for r in s.get("values", []):
            ts = int(r[t])
            if ts < last_ts:  # not an answer to raw_query (one series, time order)
                raise TimeSeriesError(f"InfluxDB answered rows out of time order at {ts}")
            if ts - ts % bucket_ms != start:
                if count:
                    out.append(_bucket(start, sums, lo, hi, last_row, count))
                start, count, sums = ts - ts % bucket_ms, 0, {}
            count += 1
            num = r[v]
            if num is not None:
                x = float(num)
                acc = sums.get(r[k])
                if acc is not None:
                    acc[0] += x
                    acc[1] += 1
                    if x < lo:
                        lo = x
                    elif x > hi:
                        hi = x
                else:
                    if not sums:
                        lo = hi = x
                    elif x < lo:
                        lo = x
                    elif x > hi:
                        hi = x
                    sums[r[k]] = [x, 1]
            if ts != last_ts or r[q] > quality:
                last_ts, last_row, quality = ts, (r[k], num, r[vs]), r[q]
    if count:
        out.append(_bucket(start, sums, lo, hi, last_row, count))
    return out


def _mean(sums: dict[str, list[float]]) -> float:
    """InfluxDB 1.x's ``mean()`` of a bucket: each series' mean (``sum / n``) is emitted
    with its count, and merged by ``FloatMeanReducer`` as ``mean * n`` (or the value
    itself when ``n == 1``), in series order (``kind`` ``b`` < ``f`` < ``i``)."""
    if len(sums) == 1:
        ((part, parts),) = sums.values()
        return part / parts * parts / parts if parts >= 2 else part
    total = n = 0.0
    for kind in sorted(sums):
        part, parts = sums[kind]
        total += part / parts * parts if parts >= 2 else part
        n += parts
    return total / n


def _bucket(start: int, sums: dict[str, list[float]], lo: float, hi: float,
            last: tuple[Any, Any, Any], count: int) -> Bucket:
    if not sums:
        return Bucket(start, None, None, None, _value(*last), count)
    return Bucket(start, _mean(sums), lo, hi, _value(*last), count)


def parse_latest(site: str, gateway: str, device: str, answer: Sequence[Series]) -> list[Sample]:
    out: list[Sample] = []
    for s in answer:
        key = SeriesKey(site, gateway, device, s["tags"]["point"])
        for r in rows(s):
            value = _value(r["kind"], r["value"], r["value_str"])
            out.append(trusted_sample(key, int(r["time"]), value, r["quality"]))
    return out


def parse_recent_latest(answer: Sequence[Series]) -> list[Sample]:
    out: list[Sample] = []
    for s in answer:
        tags = s["tags"]
        key = SeriesKey(tags["site"], tags["gateway"], tags["device"], tags["point"])
        for r in rows(s):
            value = _value(r["kind"], r["value"], r["value_str"])
            out.append(trusted_sample(key, int(r["time"]), value, r["quality"]))
    return out


def parse_count(answer: Sequence[Series]) -> int:
    return sum(int(r["count"] or 0) for s in answer for r in rows(s))
