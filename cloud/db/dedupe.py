"""Exactly-once acceptance of messages by ``(gateway, boot_id, seq)``, and counted gaps.

:func:`claim_messages` inserts the keys of a batch into ``seen_messages`` with
``INSERT … ON CONFLICT DO NOTHING … RETURNING``: the keys that come back are this caller's
to process; the others were accepted before (or by another worker). On PostgreSQL a
second transaction inserting a key that a first one inserted but has not committed waits
for it: if the first commits, the second skips the key; if it rolls back, the second gets
it. So of several workers racing on overlapping batches, each message is accepted once.

A claim decides what is processed once; whatever must survive the worker dying after the
claim commits belongs in the claim's transaction. Ingest (:mod:`cloud.ingest.pipeline`)
commits the claim beside the time-series write: samples are idempotent, so writing a
redelivered message's samples again changes nothing, and a failed write releases the
claims; events are written to ``pending_events`` in the claim's transaction and handed to
the alarm service from there (replayed if the worker dies first). Make one
:func:`claim_messages` and one :func:`record_seq_gaps` call per transaction (in that
order): that lock order (seen keys, then streams) is what keeps workers deadlock-free.

:func:`record_seq_gaps` keeps per-(gateway, boot) counters of the accepted sequence
numbers (see :class:`~cloud.db.models.SeqStream`). With several workers, messages of one
gateway are processed out of order; a gap that a late message fills is counted in
``gaps`` and ``late`` but no longer in ``missing``, which is the figure to alarm on.

Seen keys are kept for a horizon (:func:`prune_seen`): a redelivery older than that would
be accepted again, so prune well beyond the longest outage a gateway's outbox can bridge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, select, tuple_, update
from sqlalchemy.orm import Session

from cloud.db.models import SeenMessage, SeqStream
from cloud.db.upsert import upsert
from towerwatch.contract import check_boot_id, check_identifier

__all__ = [
    "MessageKey",
    "SeqGap",
    "claim_messages",
    "gateway_key",
    "prune_seen",
    "prune_seq_streams",
    "record_seq_gaps",
    "seq_streams",
]

_SEEN: Table = SeenMessage.__table__  # type: ignore[assignment]
_STREAMS: Table = SeqStream.__table__  # type: ignore[assignment]
_STREAM_KEY = ["gateway_key", "boot_id"]
_COUNTERS = ("high_water", "messages", "gaps", "missing", "late")


def gateway_key(site: str, gateway: str) -> str:
    """``{site}/{gateway}``: one string naming a gateway (identifiers never hold ``/``)."""
    return f"{check_identifier(site, 'site id')}/{check_identifier(gateway, 'gateway id')}"


@dataclass(frozen=True, order=True)
class MessageKey:
    """The identity of a telemetry or event message."""

    gateway: str
    """:func:`gateway_key` of the sender."""
    boot_id: str
    seq: int

    def __post_init__(self) -> None:
        check_boot_id(self.boot_id)
        if self.seq < 0:
            raise ValueError(f"seq must be >= 0, got {self.seq}")

    @classmethod
    def of(cls, site: str, gateway: str, boot_id: str, seq: int) -> MessageKey:
        return cls(gateway_key(site, gateway), boot_id, seq)


@dataclass(frozen=True)
class SeqGap:
    """Sequence numbers ``after_seq + 1 … next_seq - 1`` of a boot were not received (yet)."""

    gateway: str
    boot_id: str
    after_seq: int
    next_seq: int

    @property
    def missing(self) -> int:
        return self.next_seq - self.after_seq - 1


def claim_messages(session: Session, keys: Iterable[MessageKey], *, now_ms: int) -> set[MessageKey]:
    """Record ``keys`` as seen; return those not seen before (each accepted exactly once).

    A key repeated within ``keys`` counts once. Keys are inserted in sorted order, so
    concurrent claims lock in the same order and do not deadlock.
    """
    batch = sorted(set(keys))
    rows = [
        {"gateway_key": k.gateway, "boot_id": k.boot_id, "seq": k.seq, "seen_ms": now_ms}
        for k in batch
    ]
    result = upsert(session, _SEEN, rows, keys=["gateway_key", "boot_id", "seq"], update=[],
                    returning=["gateway_key", "boot_id", "seq"])
    if result is None:
        return set()
    return {MessageKey(r[0], r[1], r[2]) for r in cast(Iterable[Any], result)}


def record_seq_gaps(
    session: Session, accepted: Iterable[MessageKey], *, now_ms: int, first_seq: int = 1
) -> list[SeqGap]:
    """Advance the per-boot counters with ``accepted`` keys; return the gaps they opened.

    Call it with what :func:`claim_messages` returned, in the same transaction. A boot
    seen for the first time is expected to start at ``first_seq`` (the edge counts from
    1), so messages lost before the cloud saw the boot are counted too. Streams are locked
    (``SELECT … FOR UPDATE`` on PostgreSQL) so concurrent workers do not lose counts.
    """
    groups: dict[tuple[str, str], set[int]] = defaultdict(set)
    for key in accepted:
        groups[(key.gateway, key.boot_id)].add(key.seq)
    if not groups:
        return []
    fresh = {"high_water": first_seq - 1, "messages": 0, "gaps": 0, "missing": 0, "late": 0}
    upsert(
        session,
        _STREAMS,
        [
            {"gateway_key": gw, "boot_id": boot, **fresh, "first_ms": now_ms, "last_ms": now_ms}
            for gw, boot in groups
        ],
        keys=_STREAM_KEY,
        update=[],
    )
    current = session.execute(
        select(_STREAMS)
        .where(tuple_(_STREAMS.c.gateway_key, _STREAMS.c.boot_id).in_(sorted(groups)))
        .order_by(_STREAMS.c.gateway_key, _STREAMS.c.boot_id)
        .with_for_update()
    ).mappings()
    gaps: list[SeqGap] = []
    changes: list[dict[str, Any]] = []
    for stream in current:
        stream_key = (stream["gateway_key"], stream["boot_id"])
        change, opened = _advance(stream, sorted(groups[stream_key]))
        gaps.extend(opened)
        values = {f"v_{column}": value for column, value in change.items()}
        changes.append({"k_gateway": stream_key[0], "k_boot": stream_key[1], **values})
    session.execute(
        update(_STREAMS)
        .where(
            _STREAMS.c.gateway_key == bindparam("k_gateway"),
            _STREAMS.c.boot_id == bindparam("k_boot"),
        )
        .values({column: bindparam(f"v_{column}") for column in _COUNTERS} | {"last_ms": now_ms}),
        changes,
    )
    return gaps


def _advance(stream: Any, seqs: list[int]) -> tuple[dict[str, int], list[SeqGap]]:
    high = int(stream["high_water"])
    gaps, missing, late = int(stream["gaps"]), int(stream["missing"]), int(stream["late"])
    opened: list[SeqGap] = []
    for seq in seqs:
        if seq > high + 1:
            opened.append(SeqGap(stream["gateway_key"], stream["boot_id"], high, seq))
            gaps += 1
            missing += seq - high - 1
            high = seq
        elif seq == high + 1:
            high = seq
        else:
            late += 1
            missing = max(0, missing - 1)
    messages = int(stream["messages"]) + len(seqs)
    counters = {"high_water": high, "messages": messages, "gaps": gaps, "missing": missing}
    return counters | {"late": late}, opened


def seq_streams(session: Session, gateway: str | None = None) -> list[SeqStream]:
    """The sequence counters, of one gateway (:func:`gateway_key`) or of all."""
    query = select(SeqStream).order_by(SeqStream.gateway_key, SeqStream.first_ms)
    if gateway is not None:
        query = query.where(SeqStream.gateway_key == gateway)
    return list(session.scalars(query))


def prune_seen(session: Session, *, older_than_ms: int) -> int:
    """Forget seen keys recorded before ``older_than_ms``; return how many."""
    result = session.execute(delete(_SEEN).where(_SEEN.c.seen_ms < older_than_ms))
    return cast(CursorResult[Any], result).rowcount


def prune_seq_streams(session: Session, *, idle_before_ms: int) -> int:
    """Drop the counters of boots with no message since ``idle_before_ms``; return how many."""
    result = session.execute(delete(_STREAMS).where(_STREAMS.c.last_ms < idle_before_ms))
    return cast(CursorResult[Any], result).rowcount
