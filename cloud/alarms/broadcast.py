"""Waking the alarm streams of this process when an alarm change commits.

Alarm changes commit in worker threads (ingest batches, API requests run in
``asyncio.to_thread``); Server-Sent Events streams wait on an event loop. A
:class:`ChangeBroadcaster` joins the two: :meth:`ChangeBroadcaster.on_commit` asks for a call
once the session's transaction commits (:func:`~cloud.alarms.commits.after_commit`), and
that call wakes every :class:`Subscription` through its loop's ``call_soon_threadsafe``. A wake
only says "read the history now"; what changed is still read from the database, so a lost
or spurious wake costs latency or one query, never an event. Changes committed by other
processes are found by the stream's slower database poll.

:data:`COMMITTED` is the process's broadcaster: the alarm service announces on it and the
API's streams subscribe to it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sqlalchemy.orm import Session

from cloud.alarms.commits import after_commit

__all__ = ["COMMITTED", "ChangeBroadcaster", "Subscription"]


class Subscription:
    """One waiter (a stream) on the loop it was made on."""

    def __init__(self, owner: ChangeBroadcaster, loop: asyncio.AbstractEventLoop) -> None:
        self.owner, self.loop = owner, loop
        self.event = asyncio.Event()

    def wake(self) -> None:
        """From any thread."""
        self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, seconds: float) -> bool:
        """Until woken or ``seconds`` s; whether it was woken. Wakes since the last call
        count (none is lost between two waits)."""
        try:
            await asyncio.wait_for(self.event.wait(), max(0.0, seconds))
        except TimeoutError:
            return False
        finally:
            woken = self.event.is_set()
            self.event.clear()
        return woken

    def close(self) -> None:
        self.owner.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class ChangeBroadcaster:
    """Thread-safe fan-out of "an alarm change committed" to the subscribed streams."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self.wakes = 0
        self._key = f"tw_alarm_broadcast_{id(self)}"

    def subscribe(self) -> Subscription:
        """A subscription on the running loop (close it when the stream ends)."""
        sub = Subscription(self, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def changed(self, _items: Any = None) -> None:
        """Wake every subscriber (from any thread)."""
        with self._lock:
            subscribers = list(self._subscribers)
        self.wakes += 1
        for sub in subscribers:
            try:
                sub.wake()
            except RuntimeError:  # its loop is closed: the stream is gone
                self.unsubscribe(sub)

    def on_commit(self, session: Session) -> None:
        """Wake the subscribers once the session's transaction commits."""
        after_commit(session, self._key, self.changed)


COMMITTED = ChangeBroadcaster()
"""This process's broadcaster of committed alarm changes."""
