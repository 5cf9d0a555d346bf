"""The replay job: hand events left in ``pending_events`` to the event sink again.

An event stays pending when its worker died between the claim and the sink, or the sink
could not apply it (its database work failed, or a clear waits for an earlier event of
its alarm). Once a row is due (``replay_after`` after its claim, 60 s by default) the
job claims it (:func:`~cloud.ingest.pending.claim_due`: counted as an attempt and pushed
back, so another service process does not take it too), hands the claimed events to the
sink in received order, and forgets those the sink took. A row that keeps failing is
tried again after ``replay_after`` × 2^(attempts − 1), at most an hour, and logged every
time; it is never dropped.
"""

from __future__ import annotations

import logging
from typing import Final

from cloud.db.engine import Database
from cloud.ingest.pending import PendingRow, claim_due, forget_pending, pending_summary
from cloud.ingest.pipeline import REPLAY_AFTER_MS, EventSink, IngestedEvent
from towerwatch.contract import ContractError, Event, decode

__all__ = ["REPLAY_EVERY_S", "EventReplayer"]

log = logging.getLogger(__name__)

REPLAY_EVERY_S: Final = 30.0
"""How often the service runs the job."""
MAX_DELAY_MS: Final = 3_600_000
"""Longest wait between two attempts of one event."""
_ROUNDS: Final = 20
"""Batches per run at most, so one run ends even while events keep failing."""


class EventReplayer:
    """``run(now_ms)`` replays due pending events (see the module docstring)."""

    def __init__(self, db: Database, sink: EventSink, *, replay_after_ms: int = REPLAY_AFTER_MS,
                 batch: int = 200) -> None:
        if replay_after_ms < 1 or batch < 1:
            raise ValueError("replay_after_ms and batch must be positive")
        self.db, self.sink = db, sink
        self.replay_after_ms, self.batch = replay_after_ms, batch
        self.applied = self.left = 0

    def retry_ms(self, attempts: int) -> int:
        """The wait after the ``attempts``-th replay of an event before the next one."""
        return min(self.replay_after_ms << min(attempts - 1, 32), MAX_DELAY_MS)

    async def run(self, now_ms: int) -> int:
        """Replay what is due at ``now_ms``; return how many events were applied."""
        applied = 0
        for _ in range(_ROUNDS):
            rows = await self.db.run(
                lambda session: claim_due(session, now_ms, limit=self.batch,
                                          retry_ms=self.retry_ms))
            if not rows:
                break
            applied += await self._replay(rows, now_ms)
            if len(rows) < self.batch:
                break
        if applied:
            log.info("replayed %d pending event(s)", applied)
        return applied

    async def _replay(self, rows: list[PendingRow], now_ms: int) -> int:
        events: list[IngestedEvent] = []
        for row in rows:
            try:
                event = decode(Event, row.event)
            except ContractError as exc:  # stored by an older contract: kept for a person
                log.error("pending event %s/%s/%s seq %d (attempt %d) cannot be read: %s",
                          row.site, row.gateway, row.device, row.key.seq, row.attempts, exc)
                continue
            events.append(IngestedEvent(row.site, row.gateway, row.device, event,
                                        row.received_ms, pending=True, replayed=True))
        if not events:
            return 0
        try:
            left = await self.sink.handle(events)
        except Exception:
            log.exception("replay of %d pending event(s) failed", len(events))
            left = events
        kept = {e.key for e in left or ()}
        by_key = {row.key: row for row in rows}
        for item in left or ():
            row = by_key[item.key]
            log.warning("pending event %s/%s/%s %s=%s (seq %d, received %d ms ago) not "
                        "applied on attempt %d; next in %d s", item.site, item.gateway,
                        item.device, item.event.name, item.event.state, item.event.seq,
                        now_ms - item.received_ms, row.attempts,
                        self.retry_ms(row.attempts) // 1000)
        done = {e.key for e in events} - kept
        if done:
            await self.db.run(lambda session: forget_pending(session, done))
        self.applied += len(done)
        self.left += len(kept)
        return len(done)

    async def summary(self) -> tuple[int, int | None]:
        """How many events are pending, and the oldest one's receive time (ms)."""
        return await self.db.run(pending_summary)
