"""Writing a large batch to a store that sends its writes in chunks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from cloud.timeseries.base import Sample, TimeSeriesStore

__all__ = ["write_sliced"]

CHUNKS_PER_SLICE: Final = 4
"""Chunks (``batch_lines``) per write call to a store that sends chunks."""
WRITES_IN_FLIGHT: Final = 2
"""Sliced write calls of one batch running at once."""


async def write_sliced(store: TimeSeriesStore, samples: Sequence[Sample]) -> None:
    """Write ``samples``: in one call, or in slices for stores that send chunks.

    A store that sends its writes in chunks of ``batch_lines`` (InfluxDB) formats a
    whole call before sending it: slices of a few chunks, :data:`WRITES_IN_FLIGHT` at a
    time, keep the event loop responsive and let the server work on one slice while the
    next is formatted. Other stores (SQLite) get one call: one transaction is much
    cheaper than several.
    """
    chunk = getattr(store, "batch_lines", None)
    if not isinstance(chunk, int) or chunk < 1 or len(samples) <= chunk * CHUNKS_PER_SLICE:
        if samples:
            await store.write(samples)
        return
    size = chunk * CHUNKS_PER_SLICE
    slices = [samples[i:i + size] for i in range(0, len(samples), size)]
    gate = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def one(part: Sequence[Sample]) -> None:
        async with gate:
            await store.write(part)

    results = await asyncio.gather(*(one(part) for part in slices), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
