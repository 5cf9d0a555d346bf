"""The embedded time-series store: one SQLite file (stdlib ``sqlite3``).

Schema::

    series  (id INTEGER PRIMARY KEY, site, gateway, device, point, UNIQUE (…))
    samples (series_id, ts, kind, num REAL, txt TEXT, quality TEXT,
             PRIMARY KEY (series_id, ts)) WITHOUT ROWID
    latest  (series_id INTEGER PRIMARY KEY, ts, kind, num, txt, quality)

``kind`` is ``f``/``i``/``b``/``s``/``n`` (see :func:`~cloud.timeseries.base.encode_value`):
numbers and bools (0/1) live in ``num`` so SQL aggregates cover them, strings in ``txt``.
``INSERT OR REPLACE`` on the ``(series_id, ts)`` key makes redeliveries idempotent; the
``latest`` row of a series is upserted only by a sample at least as new, so
:meth:`SqliteStore.latest` is a keyed lookup. ``series`` is cached in memory; ids only
grow, so the cache catches up with rows other processes added with ``WHERE id > ?``.

The database runs in WAL mode with ``synchronous=NORMAL``: a process crash loses
nothing committed, an OS crash may lose the last commits (the file stays consistent).
Several processes may share the file (``busy_timeout`` waits for the writer lock).

Every call runs on one dedicated worker thread that owns the connection, so the event
loop never blocks and calls run in the order they were made. A write is one transaction
(``executemany``); retention deletes series by series in short transactions so writes
interleave. ``ANALYZE`` is never run: with statistics the planner may pick a skip-scan
that is several times slower than the primary-key range scans these queries use.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from cloud.timeseries.base import (
    Bucket,
    Sample,
    SeriesKey,
    check_buckets,
    check_limit,
    check_ts,
    clamp_range,
    decode_value,
    encode_value,
    too_many,
    trusted_sample,
)
from cloud.timeseries.errors import StoreUnavailable, TimeSeriesError

__all__ = ["SqliteStore"]

T = TypeVar("T")
Row = tuple[int, int, str, float | None, str | None, str]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL, gateway TEXT NOT NULL, device TEXT NOT NULL, point TEXT NOT NULL,
    UNIQUE (site, gateway, device, point)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL, ts INTEGER NOT NULL,
    kind TEXT NOT NULL, num REAL, txt TEXT, quality TEXT NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    series_id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
    kind TEXT NOT NULL, num REAL, txt TEXT, quality TEXT NOT NULL
);
"""
_SERIES_SINCE: Final = (
    "SELECT id, site, gateway, device, point FROM series WHERE id > ? ORDER BY id"
)
_INSERT_SERIES: Final = (
    "INSERT OR IGNORE INTO series (site, gateway, device, point) VALUES (?,?,?,?)"
)
_INSERT_SAMPLE: Final = (
    "INSERT OR REPLACE INTO samples (series_id, ts, kind, num, txt, quality) VALUES (?,?,?,?,?,?)"
)
_UPSERT_LATEST: Final = (
    "INSERT INTO latest (series_id, ts, kind, num, txt, quality) VALUES (?,?,?,?,?,?) "
    "ON CONFLICT (series_id) DO UPDATE SET ts = excluded.ts, kind = excluded.kind, "
    "num = excluded.num, txt = excluded.txt, quality = excluded.quality "
    "WHERE excluded.ts >= latest.ts"
)
RAW_SQL: Final = (
    "SELECT ts, kind, num, txt, quality FROM samples "
    "WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?"
)
# Aggregate per bucket, then fetch each bucket's last sample by its primary key (bare
# columns are unreliable with both min() and max() in one query).
DOWNSAMPLE_SQL: Final = """
WITH b AS (
    SELECT (ts / :bucket) * :bucket AS start, avg(num) AS mean, min(num) AS lo,
           max(num) AS hi, count(*) AS n, max(ts) AS last_ts
    FROM samples WHERE series_id = :sid AND ts >= :start AND ts < :end
    GROUP BY start
)
SELECT b.start, b.mean, b.lo, b.hi, b.n, s.kind, s.num, s.txt
FROM b JOIN samples AS s ON s.series_id = :sid AND s.ts = b.last_ts
ORDER BY b.start
"""
LATEST_SQL: Final = (
    "SELECT series_id, ts, kind, num, txt, quality FROM latest "
    "WHERE series_id IN (SELECT value FROM json_each(?))"
)
_DELETE_OLD: Final = "DELETE FROM samples WHERE series_id = ? AND ts < ?"
_RETENTION_CHUNK: Final = 200  # series per transaction


class SqliteStore:
    """A :class:`~cloud.timeseries.base.TimeSeriesStore` in one SQLite file.

    Nothing is opened until the first call (on the worker thread); an unopenable path
    raises :class:`StoreUnavailable` then. ``path`` may be ``":memory:"`` for tests.
    """

    def __init__(self, path: str | Path, *, cache_mb: int = 64, busy_timeout_s: float = 5.0):
        self.path = str(path)
        self._cache_kib = cache_mb * 1024
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tw-tsdb-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Touched only on the worker thread.
        self._ids: dict[SeriesKey, int] = {}
        self._keys: dict[int, SeriesKey] = {}
        self._devices: dict[tuple[str, str, str], dict[str, int]] = {}
        self._max_id = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the worker thread ------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable(f"SQLite store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, partial(fn, *args))
        except sqlite3.OperationalError as exc:  # locked, busy, unopenable, disk I/O
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise TimeSeriesError(f"SQLite store {self.path}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            # Created, used and closed on the worker thread only.
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA cache_size=-{int(self._cache_kib)}")
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._refresh()
        return self._conn

    def _refresh(self) -> None:
        """Load series rows added since the last look (by us or another process)."""
        assert self._conn is not None
        for sid, site, gateway, device, point in self._conn.execute(_SERIES_SINCE, (self._max_id,)):
            key = SeriesKey(site, gateway, device, point)
            self._ids[key] = sid
            self._keys[sid] = key
            self._devices.setdefault((site, gateway, device), {})[point] = sid
            self._max_id = max(self._max_id, sid)

    def _series_id(self, key: SeriesKey) -> int | None:
        self._db()
        sid = self._ids.get(key)
        if sid is None:
            self._refresh()
            sid = self._ids.get(key)
        return sid

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already
                db.execute("ROLLBACK")
            raise
        return result

    # -- writes -----------------------------------------------------------------------
    async def write(self, samples: Sequence[Sample]) -> None:
        if samples:
            await self._run(self._write, samples)

    def _write(self, samples: Sequence[Sample]) -> None:
        self._db()
        ids = self._ids
        missing = {s.series for s in samples if s.series not in ids}
        if missing:
            self._add_series(missing)
        rows: list[Row] = []
        newest: dict[int, Row] = {}
        for sample in samples:
            sid = ids[sample.series]
            kind, num, txt = encode_value(sample.value)
            row = (sid, sample.ts_ms, kind, num, txt, sample.quality)
            rows.append(row)
            best = newest.get(sid)
            if best is None or row[1] >= best[1]:
                newest[sid] = row

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(_INSERT_SAMPLE, rows)
            conn.executemany(_UPSERT_LATEST, newest.values())

        self._transaction(work)

    def _add_series(self, keys: Iterable[SeriesKey]) -> None:
        self._refresh()
        new = [(k.site, k.gateway, k.device, k.point) for k in keys if k not in self._ids]
        if new:
            # Committed on its own: a failed sample write must not leave cached ids of
            # rolled-back series behind. OR IGNORE: another process may add them first.
            self._transaction(lambda conn: conn.executemany(_INSERT_SERIES, new))
            self._refresh()

    async def apply_retention(self, older_than_ms: int) -> int:
        check_ts(older_than_ms)
        ids = await self._run(self._all_ids)
        deleted = 0
        for first in range(0, len(ids), _RETENTION_CHUNK):
            chunk = ids[first : first + _RETENTION_CHUNK]
            deleted += await self._run(self._delete_older, chunk, older_than_ms)
        await self._run(
            self._transaction,
            lambda conn: conn.execute("DELETE FROM latest WHERE ts < ?", (older_than_ms,)),
        )
        return deleted

    def _all_ids(self) -> list[int]:
        self._db()
        self._refresh()
        return sorted(self._keys)

    def _delete_older(self, ids: Sequence[int], cutoff: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            return conn.executemany(_DELETE_OLD, [(sid, cutoff) for sid in ids]).rowcount

        return self._transaction(work)

    # -- reads ------------------------------------------------------------------------
    async def raw(
        self, series: SeriesKey, start_ms: int, end_ms: int, *, limit: int
    ) -> list[Sample]:
        check_limit(limit)
        window = clamp_range(start_ms, end_ms)
        if window is None:
            return []
        rows = await self._run(self._raw, series, *window, limit + 1)
        if len(rows) > limit:
            raise too_many(limit, series)
        return [trusted_sample(series, ts, decode_value(k, n, t), q) for ts, k, n, t, q in rows]

    def _raw(self, series: SeriesKey, start: int, end: int, limit: int) -> list[Any]:
        sid = self._series_id(series)
        if sid is None:
            return []
        return self._db().execute(RAW_SQL, (sid, start, end, limit)).fetchall()

    async def downsampled(
        self, series: SeriesKey, start_ms: int, end_ms: int, *, bucket_ms: int
    ) -> list[Bucket]:
        check_buckets(start_ms, end_ms, bucket_ms)
        window = clamp_range(start_ms, end_ms)
        if window is None:
            return []
        rows = await self._run(self._downsampled, series, *window, bucket_ms)
        return [
            Bucket(start, mean, lo, hi, decode_value(kind, num, txt), n)
            for start, mean, lo, hi, n, kind, num, txt in rows
        ]

    def _downsampled(self, series: SeriesKey, start: int, end: int, bucket: int) -> list[Any]:
        sid = self._series_id(series)
        if sid is None:
            return []
        params = {"sid": sid, "start": start, "end": end, "bucket": bucket}
        return self._db().execute(DOWNSAMPLE_SQL, params).fetchall()

    async def latest(self, series: Sequence[SeriesKey]) -> dict[SeriesKey, Sample]:
        if not series:
            return {}
        return await self._run(self._latest, series)

    def _latest(self, series: Sequence[SeriesKey]) -> dict[SeriesKey, Sample]:
        self._db()
        if any(key not in self._ids for key in series):
            self._refresh()
        ids = [sid for key in series if (sid := self._ids.get(key)) is not None]
        return {s.series: s for s in self._latest_rows(ids)}

    async def latest_for_device(self, site: str, gateway: str, device: str) -> dict[str, Sample]:
        return await self._run(self._latest_for_device, (site, gateway, device))

    def _latest_for_device(self, device: tuple[str, str, str]) -> dict[str, Sample]:
        self._db()
        self._refresh()
        points = self._devices.get(device, {})
        return {s.series.point: s for s in self._latest_rows(list(points.values()))}

    def _latest_rows(self, ids: list[int]) -> list[Sample]:
        if not ids:
            return []
        rows = self._db().execute(LATEST_SQL, (json.dumps(ids),)).fetchall()
        return [
            trusted_sample(self._keys[sid], ts, decode_value(kind, num, txt), quality)
            for sid, ts, kind, num, txt, quality in rows
        ]

    # -- lifecycle --------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # refuse new calls; those already queued run first
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        except sqlite3.Error as exc:
            raise TimeSeriesError(f"SQLite store {self.path}: {exc}") from exc
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
