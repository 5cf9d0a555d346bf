"""How an ingest worker gathers a batch (telemetry waits for company, events do not)
and when it acknowledges messages (once on record, in arrival order)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

from cloud.ingest.pipeline import Incoming, IngestPipeline
from cloud.ingest.worker import Acks, IngestWorker
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


def test_acks_go_in_arrival_order_once_each_message_is_done() -> None:
    sent: list[int] = []
    acks = Acks(sent.append)
    for delivery, mid in ((1, 11), (2, 12), (3, 13), (4, 14)):
        acks.add(delivery, mid)
    acks.done([2, 3])
    assert sent == []  # held back by 1, still in progress
    acks.done([1])
    assert sent == [11, 12, 13]
    acks.done([4])
    assert sent == [11, 12, 13, 14]
    assert len(acks) == 0


def test_acks_ignore_messages_of_an_earlier_connection() -> None:
    sent: list[int] = []
    acks = Acks(sent.append)
    acks.add(7, 1)
    acks.done([3, 4, 7, 7])
    assert sent == [1]


class FlakyPipeline:
    """Fails its first ``failures`` batches, then records them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: list[Sequence[Incoming]] = []

    async def process(self, batch: Sequence[Incoming]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("store down")
        self.batches.append(batch)


async def test_a_failed_batch_stays_unacknowledged_until_its_retry_succeeds() -> None:
    pipeline = FlakyPipeline(failures=1)
    worker = IngestWorker(MqttSettings(), IngestSettings(),
                          cast(IngestPipeline, pipeline))
    sent: list[int] = []
    worker.acks = Acks(sent.append)
    batch = [Incoming(f"tw/v1/site/gw1/telemetry/dev-{n}", b"{}", 0, n + 1) for n in range(3)]
    batch.append(Incoming("tw/v1/site/gw1/telemetry/qos0", b"{}", 0))  # nothing to ack
    for item in batch[:3]:
        worker.acks.add(item.delivery, 100 + item.delivery)
    task = asyncio.create_task(worker._process(batch))
    await asyncio.sleep(0.2)
    assert not task.done()  # waiting to retry
    assert sent == []
    await asyncio.wait_for(task, 5.0)
    assert pipeline.batches == [batch]
    assert sent == [101, 102, 103]
