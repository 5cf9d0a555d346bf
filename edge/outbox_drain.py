"""Draining the outbox over one connection: in id order, a bounded number in flight.

The MQTT publisher (:mod:`edge.mqtt`) drains on each connection with that connection's
send call; nothing here knows MQTT. A drain starts from the oldest unacked message and
keeps up to ``limit`` messages in flight. ``send`` puts a message on the wire at once
and the broker's acknowledgement calls back with its id; each id is acked in the outbox
once called back (in batches of :data:`ACK_BATCH`, or fewer when nothing is in flight).
No task, future or closure is made per message.

A message never called back (the connection was lost) stays unacked, and the next
connection sends it again. A ``send`` that raises ends the drain with that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.outbox import Outbox, OutMessage

BATCH = 500  # outbox rows read per query
ACK_BATCH = 64  # acks written per outbox transaction (or fewer when nothing is in flight)
STOP_TIMEOUT = 5.0
"""Seconds a graceful stop waits for the publishes in flight (and the offline status)."""

Done = Callable[[int, bool], None]
Send = Callable[[OutMessage, Done], None]
"""Sends one message; later calls ``done(message.id, True)`` once it is acknowledged, or
``done(message.id, False)`` when it was dropped (acked unsent: it cannot be published,
or the broker refused it), and never when the connection is lost first."""


class OutboxDrain:
    """The publishing side of an :class:`~edge.outbox.Outbox`, for one publisher.

    ``stopping`` ends a drain; ``graceful()`` then says whether the messages in flight
    may be waited for (up to :data:`STOP_TIMEOUT`) or are left for the next run.
    """

    def __init__(self, outbox: Outbox, *, stopping: asyncio.Event,
                 graceful: Callable[[], bool]) -> None:
        self._outbox = outbox
        self._stopping = stopping
        self._graceful = graceful
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._acked: list[int] = []
        self._inflight: set[int] = set()
        self._run = 0
        self.published = 0
        """Outbox messages the broker acknowledged."""
        self.dropped = 0
        """Outbox messages acked without being delivered (unencodable, refused)."""

    def notify(self) -> None:
        """New messages were put in the outbox, or the drain is to stop: wake it."""
        self._wake.set()
        self._room.set()

    async def run(self, send: Send, limit: int) -> None:
        """Publish from the oldest unacked message on; returns only when stopping."""
        self._run += 1
        done = self._done_callback(self._run)
        self._inflight = set()
        inflight = self._inflight
        after = 0
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                batch = self._outbox.pending(after, BATCH)
                if not batch:
                    await self._wake.wait()
                    continue
                for message in batch:
                    while len(inflight) >= limit and not self._stopping.is_set():
                        self._room.clear()
                        await self._room.wait()
                    if self._stopping.is_set():
                        break
                    inflight.add(message.id)
                    try:
                        send(message, done)
                    except BaseException:
                        inflight.discard(message.id)
                        raise
                    after = message.id
            if inflight and self._graceful():
                await self._settled(STOP_TIMEOUT)
        finally:
            self._run += 1  # acks arriving after this drain ended are the next run's concern
            self._flush_acks()

    async def _settled(self, within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._inflight and (left := deadline - loop.time()) > 0:
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), left)
            except TimeoutError:
                return

    def _done_callback(self, run: int) -> Done:
        def done(message_id: int, ok: bool) -> None:
            if run != self._run or message_id not in self._inflight:
                return
            self._inflight.discard(message_id)
            if ok:
                self.published += 1
            else:
                self.dropped += 1
            self._acked.append(message_id)
            if len(self._acked) >= ACK_BATCH or not self._inflight:
                self._flush_acks()
            self._room.set()

        return done

    def _flush_acks(self) -> None:
        if self._acked:
            ids, self._acked = self._acked, []
            self._outbox.ack(ids)
