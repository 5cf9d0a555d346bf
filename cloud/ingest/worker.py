"""An ingest worker: subscribe, batch, process, retry. Several run side by side.

Workers share the MQTT 5 subscription ``$share/{group}/tw/v1/#`` so the broker
splits the traffic between them; on a broker without MQTT 5 (amqtt, the embedded
demo broker; asked once per worker with a plain CONNECT) a worker uses MQTT 3.1.1 and
a plain subscription, which is right for one worker only (the log says so).

A worker keeps up to ``pipeline_depth`` batches in progress (default 2): while one
batch waits for the database and the time-series store, the next one is gathered and
decoded. Batches in progress are independent, as two workers' batches are, except
that their claims are committed in the order the batches were gathered.

A QoS 1 message is acknowledged to the broker only once its batch is on record
(claimed and written, or dead-lettered, or found to be a copy), in the order the
messages arrived; a batch that fails is retried and stays unacknowledged. A message
whose connection is gone by then is not acknowledged at all: the broker delivers it
again (to this worker's persistent session, with ``mqtt.client_id`` set) and the
claim drops the copy. See docs/ingest-durability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from cloud.ingest.pipeline import Incoming, IngestPipeline
from cloud.mqtt import MqttError, ack, client_for, is_up, received, speaks_mqtt5
from cloud.settings import IngestSettings, MqttSettings
from towerwatch.contract import ALL_TOPICS, shared_filter

log = logging.getLogger(__name__)
_WINDOW_BATCHES = 2
"""Batches beyond ``pipeline_depth`` the broker may have unacknowledged in flight to a
worker: the one being gathered and one more arriving."""


class Acks:
    """The PUBACKs one connection owes, sent in arrival order once each message is done.

    ``add`` registers a received QoS 1 message under the worker's delivery number;
    ``done`` marks messages safely on record and sends every acknowledgement that is
    no longer held back by an earlier message still in progress. Numbers it does not
    hold (messages of an earlier connection) are ignored."""

    def __init__(self, send: Callable[[int], None]) -> None:
        self._send = send
        self._waiting: OrderedDict[int, int] = OrderedDict()  # delivery -> mid
        self._done: set[int] = set()

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, delivery: int, mid: int) -> None:
        self._waiting[delivery] = mid

    def done(self, deliveries: Iterable[int]) -> None:
        waiting, finished = self._waiting, self._done
        finished.update(d for d in deliveries if d in waiting)
        while waiting:
            delivery = next(iter(waiting))
            if delivery not in finished:
                return
            finished.discard(delivery)
            self._send(waiting.pop(delivery))


class IngestWorker:
    def __init__(self, mqtt: MqttSettings, ingest: IngestSettings, pipeline: IngestPipeline,
                 *, name: str = "ingest-1", pipeline_depth: int = 2) -> None:
        if pipeline_depth < 1:
            raise ValueError(f"pipeline_depth must be at least 1, got {pipeline_depth}")
        self.mqtt, self.settings, self.pipeline, self.name = mqtt, ingest, pipeline, name
        self.pipeline_depth = pipeline_depth
        self.queue: asyncio.Queue[Incoming] = asyncio.Queue(maxsize=ingest.batch_size * 4)
        self.connected = False
        self.shared = False
        self.last_error: str | None = None
        self._v311 = False
        self._probed = False
        self.acks = Acks(lambda mid: None)
        """The PUBACKs the current connection owes."""
        self._deliveries = 0
        self._client: Any = None

    def link_up(self) -> bool:
        """Connected and subscribed, and the connection still open now (``connected``
        turns false only once the worker next waits for a message)."""
        return self.connected and self._client is not None and is_up(self._client)

    async def run(self) -> None:
        """Receive and process until cancelled; reconnect with backoff."""
        batcher = asyncio.create_task(self._batches(), name=f"{self.name} batches")
        delay = 0.5
        try:
            while True:
                try:
                    if not self._probed:
                        self._v311 = not await speaks_mqtt5(self.mqtt, name=self.name)
                        self._probed = True
                        if self._v311:
                            log.info("%s: broker has no MQTT 5; using 3.1.1 and a plain "
                                     "subscription (one worker only)", self.name)
                    window = self.settings.batch_size * (self.pipeline_depth + _WINDOW_BATCHES)
                    async with client_for(self.mqtt, name=self.name, v311=self._v311,
                                          receive_maximum=window) as client:
                        self.acks = acks = Acks(partial(ack, client))
                        self._client = client
                        await self._subscribe(client)
                        self.connected, delay, self.last_error = True, 0.5, None
                        log.info("%s: subscribed (%s)", self.name,
                                 "shared" if self.shared else "plain")
                        queue = self.queue
                        async for message in received(client):
                            payload = message.payload
                            data = payload if isinstance(payload, bytes) else (
                                bytes(payload) if isinstance(payload, bytearray)
                                else str(payload or "").encode())
                            delivery = 0
                            if message.qos:
                                self._deliveries = delivery = self._deliveries + 1
                                acks.add(delivery, message.mid)
                            item = Incoming(str(message.topic), data, int(time.time() * 1000),
                                            delivery)
                            try:
                                queue.put_nowait(item)
                            except asyncio.QueueFull:
                                await queue.put(item)
                except MqttError as exc:
                    self.connected = False
                    if self.last_error != str(exc):
                        log.warning("%s: MQTT: %s", self.name, exc)
                    self.last_error = str(exc)
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(30.0, delay * 2)
        finally:
            self.connected = False
            batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await batcher

    async def _subscribe(self, client: Any) -> None:
        want = self.mqtt.shared
        self.shared = not self._v311 and want != "no"
        topic = shared_filter(self.mqtt.shared_group, ALL_TOPICS) if self.shared else ALL_TOPICS
        await client.subscribe(topic, qos=1)

    async def _batches(self) -> None:
        slots = asyncio.Semaphore(self.pipeline_depth)
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slots.release()

        try:
            while True:
                await slots.acquire()
                try:
                    batch = await self._gather()
                except BaseException:
                    slots.release()
                    raise
                task = asyncio.create_task(self._process(batch), name=f"{self.name} batch")
                running.add(task)
                task.add_done_callback(finished)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _gather(self) -> list[Incoming]:
        """One batch: the first message, then more until full or ``batch_wait`` is over.

        A batch holding anything but telemetry (an event, a state, a status, a command
        reply) does not wait: it takes what has already arrived and goes, so an alarm is
        never held back by batching."""
        queue, size = self.queue, self.settings.batch_size
        first = await queue.get()
        batch = [first]
        urgent = _urgent(first)
        deadline = time.monotonic() + self.settings.batch_wait
        while len(batch) < size:
            try:
                item = queue.get_nowait()  # the common case under load: no waiting
            except asyncio.QueueEmpty:
                pass
            else:
                batch.append(item)
                urgent = urgent or _urgent(item)
                continue
            remaining = deadline - time.monotonic()
            if urgent or remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            batch.append(item)
            urgent = _urgent(item)
        return batch

    async def _process(self, batch: list[Incoming]) -> None:
        delay = 0.5
        while True:
            try:
                await self.pipeline.process(batch)
                self.acks.done(m.delivery for m in batch if m.delivery)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage down: keep the batch, retry with backoff
                log.warning("%s: batch of %d not stored, retrying: %s", self.name, len(batch),
                            exc)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)


def _urgent(item: Incoming) -> bool:
    """Whether ``item`` is something a person may be waiting for (not telemetry)."""
    return "/telemetry/" not in item.topic
