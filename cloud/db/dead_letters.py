"""Dead letters: messages ingest could not use, kept with the reason, never crashing a worker.

Payloads are stored as bytes (an invalid message may not even be UTF-8), truncated to
:data:`MAX_PAYLOAD_BYTES`; ``payload_size`` keeps the original length.
"""

from __future__ import annotations

from typing import Any, Final, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from cloud.db.models import DeadLetter

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_REASON_CHARS",
    "add_dead_letter",
    "count_dead_letters",
    "list_dead_letters",
    "prune_dead_letters",
]

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_REASON_CHARS: Final = 4000


def add_dead_letter(
    session: Session, *, topic: str, payload: bytes, reason: str, received_ms: int
) -> DeadLetter:
    """Store one message that ingest rejected, and why."""
    letter = DeadLetter(
        received_ms=received_ms,
        topic=topic,
        payload=bytes(payload[:MAX_PAYLOAD_BYTES]),
        payload_size=len(payload),
        reason=reason[:MAX_REASON_CHARS],
    )
    session.add(letter)
    session.flush()
    return letter


def list_dead_letters(
    session: Session, *, limit: int = 100, before_id: int | None = None
) -> list[DeadLetter]:
    """The newest dead letters first; page with ``before_id`` (the last id of a page)."""
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(DeadLetter.id < before_id)
    return list(session.scalars(query))


def count_dead_letters(session: Session, *, since_ms: int | None = None) -> int:
    query = select(func.count()).select_from(DeadLetter)
    if since_ms is not None:
        query = query.where(DeadLetter.received_ms >= since_ms)
    return session.scalar(query) or 0


def prune_dead_letters(session: Session, *, older_than_ms: int) -> int:
    """Delete dead letters received before ``older_than_ms``; return how many."""
    result = session.execute(delete(DeadLetter).where(DeadLetter.received_ms < older_than_ms))
    return cast(CursorResult[Any], result).rowcount
