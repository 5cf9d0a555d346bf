"""A time-series store whose latest values are kept in the relational latest-value index.

:class:`IndexedStore` wraps a store (InfluxDB) and the relational database: every write
goes to the store, then the newest sample of each series in it joins a pending set that
is upserted into ``latest_values`` (:mod:`cloud.timeseries.latest_tables`) at most every
``flush_interval`` (default 1 s) — only over an older sample, so workers writing out of
order, retries and backfills all leave the newest one. Samples join the pending set
only after the store accepted them: the index never shows a sample the store does not
hold. ``latest`` and ``latest_for_device`` are keyed lookups in the relational store,
overlaid with this process's pending samples (so the alarm service, in the process
that ingested a batch, sees that batch's values at once; other processes see them
within ``flush_interval``). Ranges, aggregates and retention go to the wrapped store
(retention also forgets index rows older than the cutoff, as the contract says).

Why pending, not an upsert per write: a live building reports each point about once
per batch, so indexing every write would add a relational upsert per sample; once per
second it is at most one per series per second.

Coverage: the index knows every sample written through it. On the first start against
a store that already holds data, :meth:`IndexedStore.backfill` copies the newest sample
of every registered device's points from the store and then marks the index complete
(``latest_index_state``); until some process has done that, reads go to the store.
Series of devices the registry never learned are not backfilled (ingest registers every
device from its gateway's birth message before that gateway's telemetry matters). A
process that dies loses at most its pending second; :meth:`IndexedStore.refresh_recent`
(run by the service every few minutes) copies the newest sample of every series written
in the last window from the store, so such a gap closes within that period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from cloud.db.engine import Database
from cloud.db.models import Device
from cloud.db.upsert import insert_for, upsert
from cloud.timeseries.base import (
    Bucket,
    Quality,
    Sample,
    SeriesKey,
    TimeSeriesStore,
    Value,
    check_ts,
    decode_value,
    encode_value,
    trusted_sample,
)
from cloud.timeseries.latest_tables import LatestIndexState, LatestValue
from cloud.timeseries.writes import write_sliced

__all__ = ["IndexedStore", "newest_rows"]

log = logging.getLogger(__name__)

_KEY = ("site_id", "gateway_id", "device_id", "point_id")
_VALUE_COLUMNS = ("ts_ms", "kind", "num", "txt", "quality")
_DEVICES_PER_QUERY = 500
"""Devices per ``(gateway, device) IN (...)`` lookup (SQLite allows 32,766 parameters)."""
_READ = (LatestValue.gateway_id, LatestValue.device_id, LatestValue.point_id, LatestValue.ts_ms,
         LatestValue.kind, LatestValue.num, LatestValue.txt, LatestValue.quality)
_TS = attrgetter("ts_ms")
_UPSERT_ROWS = 5_000
"""Index rows per upsert transaction (a backfill of a large site is several)."""


def newest_rows(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """One index row per series: its newest sample in ``samples``, sorted by key.

    Samples built by ingest share their series objects, so they are grouped by object
    first (hashing a :class:`SeriesKey` hashes four strings), then by key.
    """
    by_object: dict[int, Sample] = {}
    for sample in samples:
        seen = by_object.get(id(sample.series))
        if seen is None or sample.ts_ms >= seen.ts_ms:
            by_object[id(sample.series)] = sample
    by_key: dict[SeriesKey, Sample] = {}
    for sample in by_object.values():
        seen = by_key.get(sample.series)
        if seen is None or sample.ts_ms >= seen.ts_ms:
            by_key[sample.series] = sample
    rows = []
    for key in sorted(by_key, key=lambda k: (k.site, k.gateway, k.device, k.point)):
        sample = by_key[key]
        kind, num, txt = encode_value(sample.value)
        rows.append({"site_id": key.site, "gateway_id": key.gateway, "device_id": key.device,
                     "point_id": key.point, "ts_ms": sample.ts_ms, "kind": kind, "num": num,
                     "txt": txt, "quality": sample.quality})
    return rows


def upsert_latest(session: Session, rows: list[dict[str, Any]]) -> None:
    """Upsert index rows (sorted by key: concurrent writers lock in the same order),
    each only over an older sample."""
    table = LatestValue.__table__
    for first in range(0, len(rows), _UPSERT_ROWS):
        upsert(session, table, rows[first:first + _UPSERT_ROWS],  # type: ignore[arg-type]
               keys=_KEY, update=_VALUE_COLUMNS,
               where=lambda excluded: excluded.ts_ms >= LatestValue.ts_ms)


def _value(row: Any) -> tuple[int, Value, Quality]:
    """``(ts_ms, value, quality)`` of a row of :data:`_READ` (from its fourth column)."""
    return row[3], decode_value(row[4], row[5], row[6]), row[7]


def _complete(session: Session) -> bool:
    return session.get(LatestIndexState, 1) is not None


Pending = dict[tuple[str, str, str], dict[str, Sample]]
"""Samples by device ``(site, gateway, device)``, then point."""


def _newest(samples: Sequence[Sample]) -> Iterable[Sample]:
    """The newest sample of each series object in ``samples`` (of equal times, the later
    in ``samples``). Ingest's samples share their series objects (hashing a
    :class:`SeriesKey` hashes four strings) and come nearly in time order, which a
    stable sort takes in one pass: ~0.17 µs per sample, against ~0.27 for a loop."""
    return {id(s.series): s for s in sorted(samples, key=_TS)}.values()


def _merge(into: Pending, samples: Iterable[Sample]) -> None:
    for sample in samples:
        key = sample.series
        points = into.get((key.site, key.gateway, key.device))
        if points is None:
            points = into[(key.site, key.gateway, key.device)] = {}
        seen = points.get(key.point)
        if seen is None or sample.ts_ms >= seen.ts_ms:
            points[key.point] = sample


class RecentLatest(TimeSeriesStore, Protocol):
    """A store that can list the newest sample of every series written since a time."""

    async def latest_since(self, since_ms: int) -> list[Sample]: ...


class IndexedStore:
    """A :class:`TimeSeriesStore`: ``inner`` for samples, ``db`` for latest values."""

    def __init__(self, inner: RecentLatest, db: Database, *, flush_interval: float = 1.0,
                 max_pending: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.db = db
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._clock = clock
        self._complete = False
        self._pending: Pending = {}
        self._pending_series = 0  # an upper bound: grows per merge, reset per flush
        self._flushing: Pending = {}
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    # -- writes -----------------------------------------------------------------------
    async def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        await write_sliced(self.inner, samples)
        newest = list(_newest(samples))
        _merge(self._pending, newest)
        self._pending_series += len(newest)
        if self._pending_series >= self.max_pending:
            await self.flush()  # keeps memory bounded; a failure fails this write
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later(),
                                                name="latest-index-flush")

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        while True:
            try:
                await self.flush()
                return
            except Exception:
                log.exception("latest-value index: flush failed; keeping %d series pending, "
                              "retrying in %.0f s", self._pending_series, self.flush_interval)
                await asyncio.sleep(self.flush_interval)

    async def flush(self) -> None:
        """Upsert the pending samples into the index now."""
        async with self._flush_lock:
            if not self._pending:
                return
            self._flushing, self._pending = self._pending, {}
            self._pending_series = 0
            rows = newest_rows([s for points in self._flushing.values()
                                for s in points.values()])
            try:
                await self.db.run(lambda session: upsert_latest(session, rows))
            except BaseException:
                # Back into the pending set; samples written since are newer and win.
                flushed, self._flushing = self._flushing, {}
                _merge(self._pending, (s for points in flushed.values()
                                       for s in points.values()))
                self._pending_series += len(rows)
                raise
            self._flushing = {}

    def _overlay(self, site: str, gateway: str, device: str, point: str,
                 found: Sample | None) -> Sample | None:
        """``found`` or a newer sample of that series still on its way to the index."""
        best = found
        for pending in (self._flushing, self._pending):
            points = pending.get((site, gateway, device))
            sample = None if points is None else points.get(point)
            if sample is not None and (best is None or sample.ts_ms >= best.ts_ms):
                best = sample
        return best

    # -- reads from the index ------------------------------------------------------------
    async def _indexed(self, read: Callable[[Session], Any]) -> Any:
        """``read(session)`` when the index is complete, else ``None``."""
        def run(session: Session) -> Any:
            if not self._complete:
                if not _complete(session):
                    return None
                self._complete = True
            return read(session)

        return await self.db.run(run)

    async def latest(self, series: Sequence[SeriesKey]) -> dict[SeriesKey, Sample]:
        # The caller's key objects are reused for the answer: no key is built per row.
        wanted: dict[str, dict[tuple[str, str, str], SeriesKey]] = defaultdict(dict)
        for key in series:
            wanted[key.site][(key.gateway, key.device, key.point)] = key

        def read(session: Session) -> dict[SeriesKey, Sample]:
            found: dict[SeriesKey, Sample] = {}
            for site, keys in wanted.items():
                pairs = sorted({(gateway, device) for gateway, device, _ in keys})
                for first in range(0, len(pairs), _DEVICES_PER_QUERY):
                    rows = session.execute(select(*_READ).where(
                        LatestValue.site_id == site,
                        tuple_(LatestValue.gateway_id, LatestValue.device_id).in_(
                            pairs[first:first + _DEVICES_PER_QUERY])))
                    for row in rows:
                        key = keys.get((row[0], row[1], row[2]))
                        if key is not None:
                            found[key] = trusted_sample(key, *_value(row))
            return found

        indexed: dict[SeriesKey, Sample] | None = await self._indexed(read)
        if indexed is None:
            return await self.inner.latest(series)
        if self._pending or self._flushing:
            for site, keys in wanted.items():
                for (gateway, device, point), key in keys.items():
                    best = self._overlay(site, gateway, device, point, indexed.get(key))
                    if best is not None:
                        indexed[key] = best
        return indexed

    async def latest_for_device(self, site: str, gateway: str, device: str) -> dict[str, Sample]:
        def read(session: Session) -> dict[str, Sample]:
            rows = session.execute(select(*_READ).where(
                LatestValue.site_id == site, LatestValue.gateway_id == gateway,
                LatestValue.device_id == device))
            return {row[2]: trusted_sample(SeriesKey(site, gateway, device, row[2]),
                                           *_value(row)) for row in rows}

        indexed: dict[str, Sample] | None = await self._indexed(read)
        if indexed is None:
            return await self.inner.latest_for_device(site, gateway, device)
        for pending in (self._flushing, self._pending):
            for point in (pending.get((site, gateway, device)) or {}):
                best = self._overlay(site, gateway, device, point, indexed.get(point))
                if best is not None:
                    indexed[point] = best
        return indexed

    # -- everything else is the store's ------------------------------------------------------
    async def raw(self, series: SeriesKey, start_ms: int, end_ms: int, *,
                  limit: int) -> list[Sample]:
        return await self.inner.raw(series, start_ms, end_ms, limit=limit)

    async def downsampled(self, series: SeriesKey, start_ms: int, end_ms: int, *,
                          bucket_ms: int) -> list[Bucket]:
        return await self.inner.downsampled(series, start_ms, end_ms, bucket_ms=bucket_ms)

    async def apply_retention(self, older_than_ms: int) -> int:
        check_ts(older_than_ms)
        deleted = await self.inner.apply_retention(older_than_ms)
        for pending in (self._pending, self._flushing):
            for points in pending.values():
                for point in [p for p, sample in points.items() if sample.ts_ms < older_than_ms]:
                    del points[point]
        await self.db.run(lambda session: session.execute(
            delete(LatestValue).where(LatestValue.ts_ms < older_than_ms)))
        return deleted

    async def close(self) -> None:
        """Flush what is pending, then close the store."""
        try:
            if self._flusher is not None:
                self._flusher.cancel()
            await self.flush()
        except Exception:
            log.exception("latest-value index: final flush failed; refresh_recent will "
                          "restore those series")
        finally:
            await self.inner.close()

    # -- coverage ---------------------------------------------------------------------
    async def backfill(self) -> int:
        """Copy the newest sample of every registered device's points from the store,
        then mark the index complete; a no-op (0) once some process has. Returns the
        number of series copied."""
        def devices(session: Session) -> list[tuple[str, str, str]] | None:
            if _complete(session):
                return None
            rows = session.execute(select(Device.site_id, Device.gateway_id, Device.id)
                                   .order_by(Device.site_id, Device.gateway_id, Device.id))
            return [(r[0], r[1], r[2]) for r in rows]

        listed = await self.db.run(devices)
        if listed is None:
            self._complete = True
            return 0
        copied = 0
        for site, gateway, device in listed:
            found = await self.inner.latest_for_device(site, gateway, device)
            if found:
                rows = newest_rows(list(found.values()))
                await self.db.run(partial(upsert_latest, rows=rows))
                copied += len(rows)
        now_ms = int(self._clock() * 1000)

        def mark(session: Session) -> None:
            insert = insert_for(session, LatestIndexState.__table__)  # type: ignore[arg-type]
            session.execute(insert.values(id=1, complete_ms=now_ms)
                            .on_conflict_do_nothing(index_elements=["id"]))

        await self.db.run(mark)
        self._complete = True
        log.info("latest-value index complete: %d series of %d devices copied from the store",
                 copied, len(listed))
        return copied

    async def refresh_recent(self, window_ms: int) -> int:
        """Copy the newest sample of every series written in the last ``window_ms`` from
        the store into the index (only over older rows); returns how many series."""
        since = max(0, int(self._clock() * 1000) - window_ms)
        samples = await self.inner.latest_since(since)
        rows = newest_rows(samples)
        if rows:
            await self.db.run(lambda session: upsert_latest(session, rows))
        return len(rows)

    async def run_backfill(self) -> None:
        """:meth:`backfill`, retried every 30 s while the store or database is down."""
        while True:
            try:
                await self.backfill()
                return
            except Exception:
                log.exception("latest-value index backfill failed; retrying in 30 s")
                await asyncio.sleep(30)
