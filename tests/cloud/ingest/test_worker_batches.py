"""How an ingest worker gathers a batch: telemetry waits for company, events do not."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from cloud.ingest.pipeline import Incoming, IngestPipeline
from cloud.ingest.worker import IngestWorker
from cloud.settings import IngestSettings, MqttSettings

WAIT = 5.0  # long enough that returning early cannot be luck


def _worker(batch_size: int = 100) -> IngestWorker:
    settings = IngestSettings(batch_size=batch_size, batch_wait=WAIT)
    return IngestWorker(MqttSettings(), settings, cast(IngestPipeline, None))


def _msg(kind: str, n: int = 0) -> Incoming:
    return Incoming(f"tw/v1/site/gw1/{kind}/dev-{n}", b"{}", 0)


async def test_telemetry_waits_for_more_until_the_batch_is_full() -> None:
    worker = _worker(batch_size=3)
    for n in range(2):
        worker.queue.put_nowait(_msg("telemetry", n))
    gather = asyncio.create_task(worker._gather())
    await asyncio.sleep(0.2)
    assert not gather.done()  # two of three: waiting for batch_wait or a third
    worker.queue.put_nowait(_msg("telemetry", 2))
    batch = await asyncio.wait_for(gather, 1.0)
    assert [m.topic for m in batch] == [f"tw/v1/site/gw1/telemetry/dev-{n}" for n in range(3)]


async def test_an_event_goes_at_once_with_what_has_arrived() -> None:
    worker = _worker()
    worker.queue.put_nowait(_msg("telemetry", 1))
    worker.queue.put_nowait(_msg("event", 2))
    worker.queue.put_nowait(_msg("telemetry", 3))
    started = time.monotonic()
    batch = await asyncio.wait_for(worker._gather(), WAIT / 2)
    assert time.monotonic() - started < 1.0
    assert [m.topic.split("/")[4] for m in batch] == ["telemetry", "event", "telemetry"]


async def test_an_event_arriving_while_waiting_ends_the_wait() -> None:
    worker = _worker()
    worker.queue.put_nowait(_msg("telemetry"))
    gather = asyncio.create_task(worker._gather())
    await asyncio.sleep(0.2)
    assert not gather.done()
    worker.queue.put_nowait(_msg("cmd-reply"))
    batch = await asyncio.wait_for(gather, 1.0)
    assert len(batch) == 2
