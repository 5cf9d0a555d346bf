"""A time-series store whose latest values are kept in the relational latest-value index.

:class:`IndexedStore` wraps a store (InfluxDB) and the relational database: every write
goes to the store, then the newest sample of each series in it is upserted into
``latest_values`` (:mod:`cloud.timeseries.latest_tables`) — only over an older one, so
workers writing out of order, retries and backfills all leave the newest sample. The
index is written after the store accepted the samples: it never shows a sample the
store does not hold. ``latest`` and ``latest_for_device`` are then keyed lookups in the
relational store; ranges, aggregates and retention go to the wrapped store (retention
also forgets index rows older than the cutoff, as the contract says).

Coverage: the index knows every sample written through it. On the first start against
a store that already holds data, :meth:`IndexedStore.backfill` copies the newest sample
of every registered device's points from the store and then marks the index complete
(``latest_index_state``); until some process has done that, reads go to the store.
Series of devices the registry never learned are not backfilled (ingest registers every
device from its gateway's birth message before that gateway's telemetry matters).

Cost: one upsert per series per write call (a write of a batch of 250,000 samples over
5,000 series upserts 5,000 rows), against ~65 µs of InfluxDB CPU per series on every
latest-value read without it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

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


class IndexedStore:
    """A :class:`TimeSeriesStore`: ``inner`` for samples, ``db`` for latest values."""

    def __init__(self, inner: TimeSeriesStore, db: Database, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.db = db
        self._clock = clock
        self._complete = False

    # -- writes -----------------------------------------------------------------------
    async def write(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        await write_sliced(self.inner, samples)
        rows = newest_rows(samples)
        await self.db.run(lambda session: upsert_latest(session, rows))

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
        return await self.inner.latest(series) if indexed is None else indexed

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
        await self.db.run(lambda session: session.execute(
            delete(LatestValue).where(LatestValue.ts_ms < older_than_ms)))
        return deleted

    async def close(self) -> None:
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

    async def run_backfill(self) -> None:
        """:meth:`backfill`, retried every 30 s while the store or database is down."""
        while True:
            try:
                await self.backfill()
                return
            except Exception:
                log.exception("latest-value index backfill failed; retrying in 30 s")
                await asyncio.sleep(30)
