"""One ingest batch: validate, dedupe, store time series, keep state, hand events on.

The order makes a batch safe to retry: messages are claimed (deduplicated by
``(gateway, boot_id, seq)``) in one transaction, then their samples are written
(idempotent per series and timestamp); if that write fails the claims are released
so the retried batch is accepted again. Invalid messages are dead-lettered with the
reason and never stop the good ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import delete, tuple_
from sqlalchemy.orm import Session

from cloud.db import models
from cloud.db.commands import record_reply
from cloud.db.dead_letters import add_dead_letter
from cloud.db.dedupe import MessageKey, claim_messages, gateway_key, record_seq_gaps
from cloud.db.engine import Database
from cloud.db.errors import UnknownCommand
from cloud.db.registry import PointSpec, learn_birth, learn_device_state, learn_will, touch_gateways
from cloud.timeseries.base import Sample, SeriesKey, TimeSeriesStore
from towerwatch.contract import (
    Birth,
    CommandReply,
    ContractError,
    DeviceState,
    Event,
    Telemetry,
    TopicKind,
    Will,
    decode_for_topic,
    parse_topic,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True)
class IngestedEvent:
    """An event accepted once, for the alarm service."""

    site: str
    gateway: str
    device: str
    event: Event
    received_ms: int


class EventSink(Protocol):
    """Where accepted events go (the alarm lifecycle lives behind this)."""

    async def handle(self, events: Sequence[IngestedEvent]) -> None: ...


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


@dataclass
class _Decoded:
    keyed: list[tuple[MessageKey, str, str, str, Telemetry | Event, int]] = field(
        default_factory=list)
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
                 skew_tolerance_ms: int = 300_000) -> None:
        self.db, self.store, self.sink = db, store, sink
        self.profiles = profiles or {}
        self.skew_tolerance_ms = skew_tolerance_ms
        self.stats = IngestStats()

    async def process(self, batch: Sequence[Incoming]) -> None:
        """Ingest one batch; raises when storage fails (the caller retries the batch)."""
        decoded = self._decode(batch)
        accepted = await asyncio.to_thread(self._commit_state, decoded)
        samples: list[Sample] = []
        events: list[IngestedEvent] = []
        fresh = set(accepted)
        for key, site, gateway, device, payload, received in decoded.keyed:
            if key not in fresh:
                continue  # seen before, or a second copy within this batch
            fresh.discard(key)
            if isinstance(payload, Telemetry):
                samples += decoded.samples[key]
                if abs(payload.ts - received) > self.skew_tolerance_ms:
                    self.stats.skewed += 1
            else:
                events.append(IngestedEvent(site, gateway, device, payload, received))
        try:
            if samples:
                await self.store.write(samples)
        except Exception:
            await asyncio.to_thread(self._release, accepted)
            self.stats.failed_batches += 1
            raise
        self.stats.received += len(batch)
        self.stats.samples += len(samples)
        self.stats.duplicates += len(decoded.keyed) - len(accepted)
        self.stats.dead_letters += len(decoded.dead)
        self.stats.batches += 1
        if events:
            self.stats.events += len(events)
            await self.sink.handle(events)

    def _decode(self, batch: Sequence[Incoming]) -> _Decoded:
        out = _Decoded()
        for message in batch:
            try:
                topic = parse_topic(message.topic)
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
                        out.samples[key] = _samples(site, gateway, topic.device, payload)
                    except ValueError as exc:  # e.g. an int too large to store
                        out.dead.append((message, f"cannot store: {exc}"))
                        continue
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

    def _commit_state(self, d: _Decoded) -> set[MessageKey]:
        with self.db.transaction() as session:
            accepted = claim_messages(session, [k[0] for k in d.keyed],
                                      now_ms=max(d.seen.values(), default=0))
            gaps = record_seq_gaps(session, accepted, now_ms=max(d.seen.values(), default=0))
            self.stats.gaps += len(gaps)
            self.stats.missing += sum(g.missing for g in gaps)
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
        return accepted

    def _release(self, keys: set[MessageKey]) -> None:
        """Forget claims whose samples could not be stored, so a retry is accepted."""
        if not keys:
            return
        with self.db.transaction() as session:
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


def _samples(site: str, gateway: str, device: str, telemetry: Telemetry) -> list[Sample]:
    quality = telemetry.quality
    return [Sample(SeriesKey(site, gateway, device, point), telemetry.ts, value,
                   quality.get(point, "good"))
            for point, value in telemetry.values.items()]


__all__ = ["EventSink", "Incoming", "IngestPipeline", "IngestStats", "IngestedEvent",
           "LogEventSink", "gateway_key"]
