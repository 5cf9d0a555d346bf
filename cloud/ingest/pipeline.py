"""One ingest batch: validate, dedupe, store time series, keep state, hand events on.

A batch is safe to retry: messages are claimed (deduplicated by ``(gateway, boot_id,
seq)``) in one transaction while their samples are written (idempotent per series and
timestamp); only when both succeed does the batch count as done. If the write fails
the claims are released so the retried batch is accepted again; if the claim fails the
samples already written are simply written again by the retry. Invalid messages are
dead-lettered with the reason and never stop the good ones.

The claim and the write run concurrently (the claim on a thread, the write in the
store): a sample's identity is its ``(series, ts)``, so writing the samples of a
message that the claim then finds to be a redelivery rewrites the same values and
changes nothing. Copies of one message within a batch are written once. What the
claim decides is everything else: the counts, the sequence gaps and the events, which
are handed on only for messages accepted for the first time.

Events are few and matter most ("passenger trapped"), and the claim commits before the
sink applies them: a worker that dies in between would see the redelivery dropped as a
copy. So the claim transaction also keeps every accepted event in ``pending_events``
(:mod:`cloud.ingest.pending`) until the sink has applied it; what is left there (a dead
worker, a failing sink) the replay job hands to the sink again (:mod:`cloud.ingest.replay`).
Telemetry adds nothing to that.

Hot path (telemetry, ~all traffic): :mod:`cloud.ingest.fast` decodes the common payload
and builds its samples; anything else goes through the contract's decoder (so errors
read the same). A worker's figures, with
Mosquitto, InfluxDB and a publisher on 2 cores: ``python -m bench.ingest``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import delete, tuple_
from sqlalchemy.orm import Session

from cloud.db import models
from cloud.db.commands import record_reply
from cloud.db.dead_letters import add_dead_letter
from cloud.db.dedupe import MessageKey, SeqGap, claim_messages, gateway_key, record_seq_gaps
from cloud.db.engine import Database, in_thread
from cloud.db.errors import UnknownCommand
from cloud.db.registry import PointSpec, learn_birth, learn_device_state, learn_will, touch_gateways
from cloud.ingest.fast import DeviceKeys, fast_telemetry, telemetry_samples
from cloud.ingest.pending import NewEvent, forget_pending, record_pending
from cloud.timeseries.base import Sample, TimeSeriesStore
from cloud.timeseries.writes import write_sliced
from towerwatch.contract import (
    Birth,
    CommandReply,
    ContractError,
    DeviceState,
    Event,
    Payload,
    Telemetry,
    Topic,
    TopicKind,
    Will,
    decode_for_topic,
    parse_topic,
)

log = logging.getLogger(__name__)

_KEY_CACHE_MAX = 20_000
"""Devices whose series keys a pipeline keeps; cleared when it grows beyond."""
_TOPIC_CACHE_MAX = 100_000
"""Parsed topics kept per pipeline; cleared when it grows beyond."""
_DECODE_SLICE = 200
"""Messages decoded between yields to the event loop (a few ms of CPU)."""
REPLAY_AFTER_MS = 60_000
"""Default time after its claim when an event not yet applied is replayed."""


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    received_ms: int
    delivery: int = 0
    """The worker's number for acknowledging this message once it is on record (0:
    nothing to acknowledge, e.g. QoS 0)."""


@dataclass(frozen=True)
class IngestedEvent:
    """An event accepted once, for the alarm service."""

    site: str
    gateway: str
    device: str
    event: Event
    received_ms: int
    pending: bool = False
    """Kept in ``pending_events`` until applied: a sink that applies it in a transaction
    takes its row there (:func:`~cloud.ingest.pending.take_pending`), and skips it if the
    row is gone (applied already)."""
    replayed: bool = False
    """Handed on again by the replay job, maybe long after it was received."""

    @property
    def key(self) -> MessageKey:
        return MessageKey.of(self.site, self.gateway, self.event.boot_id, self.event.seq)


class EventSink(Protocol):
    """Where accepted events go (the alarm lifecycle lives behind this)."""

    async def handle(self, events: Sequence[IngestedEvent]) -> Collection[IngestedEvent] | None:
        """Apply ``events``; return those not applied (they stay pending and are replayed
        later). ``None``: all applied (or of no use to this sink). Raising leaves all of
        them pending."""


class LogEventSink:
    """Logs events; the default until the alarm service takes them."""

    def __init__(self) -> None:
        self.count = 0

    async def handle(self, events: Sequence[IngestedEvent]) -> None:
        for item in events:
            self.count += 1
            e = item.event
            log.info("event %s/%s/%s %s %s=%s", item.site, item.gateway, item.device, e.kind,
                     e.name, e.state)


@dataclass
class IngestStats:
    received: int = 0
    samples: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    gaps: int = 0
    missing: int = 0
    events: int = 0
    skewed: int = 0
    batches: int = 0
    failed_batches: int = 0
    events_left: int = 0
    """Events the sink did not apply at once, left pending for the replay."""


@dataclass
class _Decoded:
    keyed: list[tuple[MessageKey, str, str, str, Telemetry | Event, int]] = field(
        default_factory=list)
    events: list[NewEvent] = field(default_factory=list)
    samples: dict[MessageKey, list[Sample]] = field(default_factory=dict)
    births: list[tuple[str, str, Birth, int]] = field(default_factory=list)
    wills: list[tuple[str, str, Will]] = field(default_factory=list)
    states: list[tuple[str, str, str, DeviceState]] = field(default_factory=list)
    replies: list[tuple[str, CommandReply, int]] = field(default_factory=list)
    dead: list[tuple[Incoming, str]] = field(default_factory=list)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)


class IngestPipeline:
    def __init__(self, db: Database, store: TimeSeriesStore, sink: EventSink, *,
                 profiles: Mapping[str, Sequence[PointSpec]] | None = None,
                 skew_tolerance_ms: int = 300_000,
                 replay_after_ms: int = REPLAY_AFTER_MS) -> None:
        self.db, self.store, self.sink = db, store, sink
        self.profiles = profiles or {}
        self.skew_tolerance_ms = skew_tolerance_ms
        self.replay_after_ms = replay_after_ms
        self.stats = IngestStats()
        self._keys: DeviceKeys = {}
        self._topics: dict[str, Topic] = {}
        self._claim_turn = asyncio.Event()
        self._claim_turn.set()

    def _samples(self, site: str, gateway: str, device: str,
                 telemetry: Telemetry) -> list[Sample]:
        if len(self._keys) > _KEY_CACHE_MAX:
            self._keys.clear()
        return telemetry_samples(site, gateway, device, telemetry, self._keys)

    async def process(self, batch: Sequence[Incoming]) -> None:
        """Ingest one batch; raises when storage fails (the caller retries the batch).

        Several calls may run at once (a worker pipelines its batches): they are as
        independent as two workers' batches.
        """
        # Claims are committed in the order the batches came in (one worker's sequence
        # counters see no reordering); everything else overlaps.
        previous, turn = self._claim_turn, asyncio.Event()
        self._claim_turn = turn
        try:
            decoded = _Decoded()
            for first in range(0, len(batch), _DECODE_SLICE):
                if first:
                    await asyncio.sleep(0)  # let I/O (the previous batch's writes) move on
                self._decode(batch[first:first + _DECODE_SLICE], decoded)
        except BaseException:
            turn.set()
            raise
        # Every distinct message's samples, written while the claim runs (see above).
        unique: list[Sample] = []
        for samples in decoded.samples.values():
            unique += samples

        async def claim() -> tuple[set[MessageKey], list[SeqGap]]:
            try:
                await previous.wait()
                return await in_thread(self._commit_state, decoded)
            finally:
                turn.set()

        try:
            claimed, written = await asyncio.gather(claim(), write_sliced(self.store, unique),
                                                    return_exceptions=True)
        finally:
            turn.set()  # also when cancelled before the claim started
        if isinstance(claimed, BaseException) or isinstance(written, BaseException):
            if not isinstance(claimed, BaseException):
                await in_thread(self._release, claimed[0],
                                {e[0] for e in decoded.events} & claimed[0])
            self.stats.failed_batches += 1
            failure = claimed if isinstance(claimed, BaseException) else written
            assert isinstance(failure, BaseException)
            raise failure
        accepted, gaps = claimed
        self.stats.gaps += len(gaps)
        self.stats.missing += sum(g.missing for g in gaps)
        stored = 0
        events: list[IngestedEvent] = []
        fresh = set(accepted)
        for key, site, gateway, device, payload, received in decoded.keyed:
            if key not in fresh:
                continue  # seen before, or a second copy within this batch
            fresh.discard(key)
            if isinstance(payload, Telemetry):
                stored += len(decoded.samples[key])
                if abs(payload.ts - received) > self.skew_tolerance_ms:
                    self.stats.skewed += 1
            else:
                events.append(IngestedEvent(site, gateway, device, payload, received,
                                            pending=True))
        self.stats.received += len(batch)
        self.stats.samples += stored
        self.stats.duplicates += len(decoded.keyed) - len(accepted)
        self.stats.dead_letters += len(decoded.dead)
        self.stats.batches += 1
        if events:
            self.stats.events += len(events)
            await self._hand_on(events)

    async def _hand_on(self, events: list[IngestedEvent]) -> None:
        """Give the sink the batch's events; forget the pending rows of those it took.

        The batch is on record whatever happens here (the events are pending), so a
        failure is logged, not raised: retrying the batch would find only copies."""
        try:
            left = await self.sink.handle(events)
        except Exception:
            log.exception("event sink failed on %d event(s); left for the replay", len(events))
            self.stats.events_left += len(events)
            return
        kept = {e.key for e in left or ()}
        if kept:
            self.stats.events_left += len(kept)
            log.warning("%d of %d event(s) not applied; left for the replay", len(kept),
                        len(events))
        done = {e.key for e in events} - kept
        if not done:
            return
        try:
            await in_thread(self._forget, done)
        except Exception as exc:  # harmless: the replay hands them on and the sink skips
            log.warning("could not forget %d applied event(s): %s", len(done), exc)

    def _forget(self, keys: set[MessageKey]) -> None:
        with self.db.transaction() as session:
            forget_pending(session, keys)

    def _decode(self, batch: Sequence[Incoming], out: _Decoded | None = None) -> _Decoded:
        out = _Decoded() if out is None else out
        topics = self._topics
        if len(topics) > _TOPIC_CACHE_MAX:
            topics.clear()
        for message in batch:
            try:
                cached = topics.get(message.topic)
                if cached is None:
                    cached = topics[message.topic] = parse_topic(message.topic)
                topic = cached
                payload: Payload | None = None
                if topic.kind is TopicKind.TELEMETRY:
                    payload = fast_telemetry(message.payload)
                if payload is None:
                    payload = decode_for_topic(topic, message.payload)
            except ContractError as exc:
                out.dead.append((message, str(exc)))
                continue
            site, gateway, received = topic.site, topic.gateway, message.received_ms
            seen_key = (site, gateway)
            if topic.kind is not TopicKind.STATUS:
                out.seen[seen_key] = max(out.seen.get(seen_key, 0), received)
            if isinstance(payload, Telemetry | Event):
                assert topic.device is not None
                key = MessageKey.of(site, gateway, payload.boot_id, payload.seq)
                if isinstance(payload, Telemetry):
                    try:
                        samples = self._samples(site, gateway, topic.device, payload)
                    except ValueError as exc:  # e.g. an int too large to store
                        out.dead.append((message, f"cannot store: {exc}"))
                        continue
                    out.samples.setdefault(key, samples)  # a copy is written once
                else:
                    out.events.append((key, site, gateway, topic.device, payload, received))
                out.keyed.append((key, site, gateway, topic.device, payload, received))
            elif isinstance(payload, Birth):
                out.births.append((site, gateway, payload, received))
            elif isinstance(payload, Will):
                out.wills.append((site, gateway, payload))
            elif isinstance(payload, DeviceState):
                assert topic.device is not None
                out.states.append((site, gateway, topic.device, payload))
            elif isinstance(payload, CommandReply):
                assert topic.request_id is not None
                out.replies.append((topic.request_id, payload, received))
            # Commands (cloud -> edge) on the bus are ours: nothing to ingest.
        return out

    def _commit_state(self, d: _Decoded) -> tuple[set[MessageKey], list[SeqGap]]:
        with self.db.transaction() as session:
            now_ms = max(d.seen.values(), default=0)
            accepted = claim_messages(session, [k[0] for k in d.keyed], now_ms=now_ms)
            gaps = record_seq_gaps(session, accepted, now_ms=now_ms)
            if d.events:  # one row per event accepted now (the first of any copies)
                fresh = {e[0]: e for e in reversed(d.events) if e[0] in accepted}
                record_pending(session, fresh.values(), claimed_ms=now_ms,
                               due_ms=now_ms + self.replay_after_ms)
            if d.seen:
                touch_gateways(session, d.seen)
            for site, gateway, birth, received in d.births:
                learn_birth(session, site, gateway, birth, received_ms=received,
                            profiles=self.profiles)
            for site, gateway, will in d.wills:
                learn_will(session, site, gateway, will)
            for site, gateway, device, state in d.states:
                learn_device_state(session, site, gateway, device, state)
            for request_id, reply, received in d.replies:
                _reply(session, request_id, reply, received)
            for message, reason in d.dead:
                add_dead_letter(session, topic=message.topic, payload=message.payload,
                                reason=reason, received_ms=message.received_ms)
        if d.dead:
            log.warning("dead-lettered %d message(s); first: %s: %s", len(d.dead),
                        d.dead[0][0].topic, d.dead[0][1])
        return accepted, gaps

    def _release(self, keys: set[MessageKey], events: set[MessageKey]) -> None:
        """Forget claims whose samples could not be stored, so a retry is accepted (and
        the pending rows of their events, which the retry writes again)."""
        if not keys:
            return
        with self.db.transaction() as session:
            forget_pending(session, events)
            seen = models.SeenMessage
            rows = [(k.gateway, k.boot_id, k.seq) for k in keys]
            session.execute(delete(seen).where(
                tuple_(seen.gateway_key, seen.boot_id, seen.seq).in_(rows)))


def _reply(session: Session, request_id: str, reply: CommandReply, received: int) -> None:
    try:
        with session.begin_nested():
            record_reply(session, request_id, reply, received_ms=received)
    except UnknownCommand:
        log.info("reply to unknown command %s (sent by another system?)", request_id)


__all__ = ["EventSink", "Incoming", "IngestPipeline", "IngestStats", "IngestedEvent",
           "LogEventSink", "fast_telemetry", "gateway_key"]
