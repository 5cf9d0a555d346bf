"""Draining the outbox over one connection: in id order, a bounded number in flight.

The MQTT publisher (:mod:`edge.mqtt`) drains on each connection with that connection's
publish call; nothing here knows MQTT. A drain starts from the oldest unacked message,
keeps up to ``limit`` publishes in flight and acks each id once its publish returned
(in batches of :data:`ACK_BATCH`, or fewer when nothing is in flight). A publish that
raises ends the drain with that error, its message unacked for the next connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from edge.outbox import Outbox, OutMessage

BATCH = 500  # outbox rows read per query
ACK_BATCH = 64  # acks written per outbox transaction (or fewer when nothing is in flight)
STOP_TIMEOUT = 5.0
"""Seconds a graceful stop waits for the publishes in flight (and the offline status)."""

Publish = Callable[[OutMessage], Awaitable[bool]]
"""Sends one message; True once acknowledged, False when it was dropped (acked unsent)."""


class OutboxDrain:
    """The publishing side of an :class:`~edge.outbox.Outbox`, for one publisher.

    ``stopping`` ends a drain; ``graceful()`` then says whether the publishes in flight
    may finish (up to :data:`STOP_TIMEOUT`) or are cancelled.
    """

    def __init__(self, outbox: Outbox, *, stopping: asyncio.Event,
                 graceful: Callable[[], bool]) -> None:
        self._outbox = outbox
        self._stopping = stopping
        self._graceful = graceful
        self._wake = asyncio.Event()
        self._acked: list[int] = []
        self._inflight = 0
        self.published = 0
        """Outbox messages the broker acknowledged."""

    def notify(self) -> None:
        """New messages were put in the outbox, or the drain is to stop: wake it."""
        self._wake.set()

    async def run(self, publish: Publish, limit: int) -> None:
        """Publish from the oldest unacked message on; returns only when stopping."""
        slots = asyncio.Semaphore(limit)
        tasks: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                failures.append(exc)
                self._wake.set()

        after = 0
        try:
            while not failures and not self._stopping.is_set():
                self._wake.clear()
                batch = self._outbox.pending(after, BATCH)
                if not batch:
                    await self._wake.wait()
                    continue
                for message in batch:
                    await slots.acquire()
                    if failures or self._stopping.is_set():
                        slots.release()
                        break
                    self._inflight += 1
                    task = asyncio.create_task(self._publish(publish, message, slots))
                    tasks.add(task)
                    task.add_done_callback(finished)
                    after = message.id
            if tasks and self._graceful() and not failures:
                await asyncio.wait(set(tasks), timeout=STOP_TIMEOUT)
            if failures:
                raise failures[0]
        finally:
            pending = list(tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._flush_acks()

    async def _publish(self, publish: Publish, message: OutMessage,
                       slots: asyncio.Semaphore) -> None:
        try:
            if await publish(message):
                self.published += 1
        finally:
            self._inflight -= 1
            slots.release()
        self._acked.append(message.id)
        if len(self._acked) >= ACK_BATCH or self._inflight == 0:
            self._flush_acks()

    def _flush_acks(self) -> None:
        if self._acked:
            ids, self._acked = self._acked, []
            self._outbox.ack(ids)
