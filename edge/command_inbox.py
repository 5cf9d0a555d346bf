"""Commands received from the broker, handed to their handler one at a time, in order.

A bounded queue between the MQTT connection (:mod:`edge.mqtt`) and the handler: a slow
handler never stalls the connection, and commands beyond :data:`COMMAND_QUEUE` waiting
are dropped (logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

COMMAND_QUEUE = 1000

CommandHandler = Callable[[str, bytes], Awaitable[None]]
"""``(topic, payload)``; an exception is logged and the next command handled."""


class CommandInbox:
    """The commands waiting for the handler; :meth:`run` hands them over."""

    def __init__(self, handler: CommandHandler) -> None:
        self._handler = handler
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(COMMAND_QUEUE)

    def put(self, topic: str, payload: bytes) -> None:
        try:
            self._queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            log.warning("MQTT command queue full: dropped the command on %s", topic)

    async def run(self) -> None:
        """Hand each command to the handler, until cancelled."""
        while True:
            topic, payload = await self._queue.get()
            try:
                await self._handler(topic, payload)
            except Exception:
                log.exception("command handler failed for %s", topic)
