"""The live feed of alarm changes as Server-Sent Events (framework-free).

The feed reads ``alarm_history`` by id, so it works across processes (an ingest worker
elsewhere raises, an API replica streams) and resumes: the SSE ``id`` of each event is the
history id, and a client that reconnects with ``Last-Event-ID`` gets what it missed.
It reads as soon as a change commits in this process (the
:class:`~cloud.alarms.broadcast.ChangeBroadcaster` wakes it), and every ``poll`` seconds
anyway, for changes committed by other processes. Every read also re-reads the last
:data:`LOOKBACK` ids, because PostgreSQL may commit a lower id after a higher one; ids
already sent are skipped. Comments (``: keepalive``)
go out every ``heartbeat`` seconds so proxies and clients see a live connection.

Event format::

    id: 42
    event: alarm
    data: {"change": "acknowledged", "ts": …, "user": "li.wei", "comment": …,
           "alarm": {… as the API shows an alarm …}}
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from sqlalchemy.orm import Session

from cloud.alarms.broadcast import COMMITTED, ChangeBroadcaster
from cloud.alarms.queries import changes_since, last_change_id
from cloud.alarms.service import describe

__all__ = ["LOOKBACK", "POLL", "alarm_events"]

LOOKBACK: Final = 100
POLL: Final = 2.0
"""Seconds between reads when nothing in this process woke the stream."""
_SEEN_KEPT: Final = 1000
T = TypeVar("T")
Run = Callable[[Callable[[Session], T]], Awaitable[T]]


def _event(entry_id: int, data: dict[str, Any]) -> str:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {entry_id}\nevent: alarm\ndata: {body}\n\n"


def _reader(sites: Sequence[str] | None,
            after: int) -> Callable[[Session], list[tuple[int, dict[str, Any]]]]:
    def read(session: Session) -> list[tuple[int, dict[str, Any]]]:
        return [(e.id, {"change": e.kind, "ts": e.ts_ms, "user": e.username,
                        "comment": e.comment, "detail": e.detail, "alarm": describe(a)})
                for e, a in changes_since(session, sites, after)]

    return read


async def alarm_events(run: Run[Any], sites: Sequence[str] | None, *,
                       last_event_id: int | None, poll: float | None = None,
                       heartbeat: float = 15.0,
                       alive: Callable[[], Awaitable[bool]],
                       clock: Callable[[], float],
                       changes: ChangeBroadcaster = COMMITTED) -> AsyncGenerator[str, None]:
    """SSE text for the changes of ``sites`` (``None``: every site) after
    ``last_event_id`` (``None``: from now on), while ``alive()`` says so; ``poll``:
    seconds between reads that no wake asked for (default :data:`POLL`)."""
    poll = POLL if poll is None else poll
    with changes.subscribe() as wake:
        cursor = last_event_id if last_event_id is not None else await run(last_change_id)
        floor = cursor  # the client has everything up to here
        seen: deque[int] = deque(maxlen=_SEEN_KEPT)
        sent: set[int] = set()
        yield f"retry: 2000\n: alarm stream from id {cursor}\n\n"
        beat = clock()
        while await alive():
            rows = await run(_reader(sites, max(0, cursor - LOOKBACK)))
            for entry_id, data in rows:
                if entry_id <= floor or entry_id in sent:
                    continue
                if len(seen) == seen.maxlen:
                    sent.discard(seen[0])
                seen.append(entry_id)
                sent.add(entry_id)
                cursor = max(cursor, entry_id)
                yield _event(entry_id, data)
            if clock() - beat >= heartbeat:
                beat = clock()
                yield ": keepalive\n\n"
            await wake.wait(min(poll, max(0.0, beat + heartbeat - clock())))
