"""The ingest outbox: accepted events kept in ``pending_events`` until they are applied.

The claim of a batch (:func:`~cloud.db.dedupe.claim_messages`) commits before the events
it accepted reach the alarm service, and a redelivery after that commit is dropped as a
copy. So the claim transaction also writes one row per accepted event
(:func:`record_pending`), and the row goes only once the event is applied: the alarm
sink takes the rows of the events it applies in the transaction that applies them
(:func:`take_pending`, :func:`forget_pending`), and events a sink has no use for are
forgotten once it returns. A row left behind (a worker that died, a sink that failed) is
handed to the sink again by the replay job (:mod:`cloud.ingest.replay`), which claims
due rows with :func:`claim_due`.

An event is applied at most once: the sink applies a pending event only if this
transaction took its row, so a replay racing the original hand-over (or another replay)
finds the row gone and skips the event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from cloud.db.dedupe import MessageKey
from cloud.db.models import PendingEvent
from cloud.db.upsert import upsert
from towerwatch.contract import Event, encode

__all__ = [
    "NewEvent",
    "PendingRow",
    "claim_due",
    "earlier_pending",
    "forget_pending",
    "pending_summary",
    "record_pending",
    "take_pending",
]

_TABLE: Table = PendingEvent.__table__  # type: ignore[assignment]
_KEY = ["gateway_key", "boot_id", "seq"]
NewEvent = tuple[MessageKey, str, str, str, Event, int]
"""``(key, site, gateway, device, event, received_ms)`` of an accepted event."""


@dataclass(frozen=True)
class PendingRow:
    """A row the replay job claimed: the event as stored and how often it was tried."""

    key: MessageKey
    site: str
    gateway: str
    device: str
    event: str
    """The contract's JSON of the event."""
    received_ms: int
    claimed_ms: int
    attempts: int
    """Replays including this one."""


def _key_column() -> Any:
    return tuple_(_TABLE.c.gateway_key, _TABLE.c.boot_id, _TABLE.c.seq)


def _rows(keys: Iterable[MessageKey]) -> list[tuple[str, str, int]]:
    return sorted({(k.gateway, k.boot_id, k.seq) for k in keys})


def record_pending(session: Session, events: Iterable[NewEvent], *, claimed_ms: int,
                   due_ms: int) -> None:
    """Keep ``events`` (just accepted by the claim in this transaction) until applied.

    A key already pending keeps its row (a redelivery accepted again after its seen key
    was pruned must not fail the claim)."""
    rows = [{"gateway_key": key.gateway, "boot_id": key.boot_id, "seq": key.seq,
             "site_id": site, "gateway_id": gateway, "device_id": device, "name": event.name,
             "event": encode(event).decode("utf-8"), "received_ms": received,
             "claimed_ms": claimed_ms, "due_ms": due_ms, "attempts": 0}
            for key, site, gateway, device, event, received in events]
    if rows:
        upsert(session, _TABLE, rows, keys=_KEY, update=[])


def take_pending(session: Session, keys: Collection[MessageKey]) -> set[MessageKey]:
    """Of ``keys``, those still pending, their rows locked until this transaction ends:
    a concurrent taker waits, then finds them gone if this transaction deletes them.
    Take them before anything else in the transaction (the lock order is pending rows,
    then alarms)."""
    if not keys:
        return set()
    t = _TABLE
    columns = (t.c.gateway_key, t.c.boot_id, t.c.seq)
    if session.get_bind().dialect.name == "sqlite":
        # pysqlite begins a transaction only at its first write, so a plain SELECT here
        # could read rows another writer is deleting: a write that returns them takes
        # SQLite's one write lock first, and the rest of the transaction reads under it.
        found = session.execute(update(t).where(_key_column().in_(_rows(keys)))
                                .values(attempts=t.c.attempts).returning(*columns))
    else:
        found = session.execute(select(*columns).where(_key_column().in_(_rows(keys)))
                                .order_by(*columns).with_for_update())
    return {MessageKey(g, b, s) for g, b, s in found}


def forget_pending(session: Session, keys: Collection[MessageKey]) -> int:
    """Delete the rows of ``keys`` (applied, or of no use to the sink); return how many."""
    if not keys:
        return 0
    result = session.execute(delete(_TABLE).where(_key_column().in_(_rows(keys))))
    return cast(CursorResult[Any], result).rowcount


def earlier_pending(session: Session, site: str, gateway: str, device: str, name: str, *,
                    before_ms: int, besides: Collection[MessageKey] = ()) -> bool:
    """Whether an event ``name`` of the device received before ``before_ms`` is still
    pending (other than ``besides``): a later event of that alarm must wait for it."""
    t = _TABLE
    found = session.execute(
        select(t.c.gateway_key, t.c.boot_id, t.c.seq)
        .where(t.c.site_id == site, t.c.gateway_id == gateway, t.c.device_id == device,
               t.c.name == name, t.c.received_ms < before_ms))
    return any(MessageKey(g, b, s) not in besides for g, b, s in found)


def claim_due(session: Session, now_ms: int, *, limit: int,
              retry_ms: Callable[[int], int]) -> list[PendingRow]:
    """Up to ``limit`` rows due at ``now_ms``, oldest received first, each counted as an
    attempt and pushed back by ``retry_ms(attempts)``: another replayer does not take
    them before then (PostgreSQL: and skips rows being claimed, ``FOR UPDATE SKIP
    LOCKED``; on SQLite two claimers may both get a row, and the sink's
    :func:`take_pending` lets one of them apply it). If the claimer dies, the rows come
    back when that delay is over."""
    t = _TABLE
    found = session.execute(
        select(t.c.gateway_key, t.c.boot_id, t.c.seq, t.c.site_id, t.c.gateway_id,
               t.c.device_id, t.c.event, t.c.received_ms, t.c.claimed_ms, t.c.attempts)
        .where(t.c.due_ms <= now_ms)
        .order_by(t.c.received_ms, t.c.gateway_key, t.c.boot_id, t.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)).all()
    rows = [PendingRow(MessageKey(r.gateway_key, r.boot_id, r.seq), r.site_id, r.gateway_id,
                       r.device_id, r.event, r.received_ms, r.claimed_ms, r.attempts + 1)
            for r in found]
    if rows:
        session.execute(
            update(t).where(t.c.gateway_key == bindparam("k_gateway"),
                            t.c.boot_id == bindparam("k_boot"), t.c.seq == bindparam("k_seq"))
            .values(attempts=bindparam("v_attempts"), due_ms=bindparam("v_due")),
            [{"k_gateway": r.key.gateway, "k_boot": r.key.boot_id, "k_seq": r.key.seq,
              "v_attempts": r.attempts, "v_due": now_ms + retry_ms(r.attempts)} for r in rows])
    return rows


def pending_summary(session: Session) -> tuple[int, int | None]:
    """How many events are pending, and the oldest one's receive time."""
    count, oldest = session.execute(
        select(func.count(), func.min(_TABLE.c.received_ms)).select_from(_TABLE)).one()
    return int(count), None if oldest is None else int(oldest)
