"""An ingest worker: subscribe, batch, process, retry. Several run side by side.

Workers share the MQTT 5 subscription ``$share/{group}/tw/v1/#`` so the broker
splits the traffic between them; on a broker without MQTT 5 (amqtt, the embedded
demo broker) a worker falls back to MQTT 3.1.1 and a plain subscription, which is
right for one worker only (the log says so).

A worker keeps up to ``pipeline_depth`` batches in progress (default 2): while one
batch waits for the database and the time-series store, the next one is gathered and
decoded. Batches in progress are independent, as two workers' batches are, except
that their claims are committed in the order the batches were gathered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from cloud.ingest.pipeline import Incoming, IngestPipeline
from cloud.mqtt import UNSUPPORTED_PROTOCOL, MqttError, client_for, error_code
from cloud.settings import IngestSettings, MqttSettings
from towerwatch.contract import ALL_TOPICS, shared_filter

log = logging.getLogger(__name__)


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

    async def run(self) -> None:
        """Receive and process until cancelled; reconnect with backoff."""
        batcher = asyncio.create_task(self._batches(), name=f"{self.name} batches")
        delay = 0.5
        try:
            while True:
                try:
                    async with client_for(self.mqtt, name=self.name, v311=self._v311) as client:
                        await self._subscribe(client)
                        self.connected, delay, self.last_error = True, 0.5, None
                        log.info("%s: subscribed (%s)", self.name,
                                 "shared" if self.shared else "plain")
                        queue = self.queue
                        async for message in client.messages:
                            payload = message.payload
                            data = payload if isinstance(payload, bytes) else (
                                bytes(payload) if isinstance(payload, bytearray)
                                else str(payload or "").encode())
                            item = Incoming(str(message.topic), data, int(time.time() * 1000))
                            try:
                                queue.put_nowait(item)
                            except asyncio.QueueFull:
                                await queue.put(item)
                except MqttError as exc:
                    self.connected = False
                    code = error_code(exc)
                    if not self._v311 and code in UNSUPPORTED_PROTOCOL:
                        log.info("%s: broker has no MQTT 5; using 3.1.1 and a plain "
                                 "subscription (one worker only)", self.name)
                        self._v311 = True
                        continue
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
