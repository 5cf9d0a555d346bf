"""No accepted edge event is lost between the claim and the alarm service (SQLite and
PostgreSQL): the claim keeps each event in ``pending_events`` until the alarm sink has
applied it; a worker that dies in between (the sink raises, or the batch is cancelled),
or a sink that fails, leaves the row for the replay job, which raises the alarm once
although the redelivery was dropped as a copy. Replays never apply an event twice, nor
turn an alarm back to an older state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from cloud.alarms import AlarmEventSink, AlarmService
from cloud.alarms.tables import Alarm, AlarmHistory, Change
from cloud.db import Database
from cloud.db.models import PendingEvent
from cloud.ingest.pending import claim_due
from cloud.ingest.pipeline import Incoming, IngestedEvent, IngestPipeline
from cloud.ingest.replay import EventReplayer
from cloud.timeseries import SqliteStore
from tests.cloud.alarms.support import T0, RecordingNotifier, seed_site
from tests.cloud.alarms.test_sink import CATALOGUE
from tests.cloud.db.conftest import db, pg, pg_store_url
from towerwatch.contract import Event, encode

__all__ = ["db", "pg", "pg_store_url"]

GRACE = 60_000
SEC = 1000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "ts.db") as ts:
        yield ts


def alarm_sink(db: Database) -> AlarmEventSink:
    return AlarmEventSink(db, AlarmService(notifier=RecordingNotifier()), CATALOGUE)


@pytest.fixture
def sink(db: Database) -> AlarmEventSink:
    with db.transaction() as session:
        seed_site(session)
    return alarm_sink(db)


class DyingSink:
    """The worker dies once the claim has committed: the hand-over raises."""

    async def handle(self, events: Sequence[IngestedEvent]) -> None:
        raise RuntimeError("worker died")


class StuckSink:
    """A hand-over that never ends (the batch is cancelled while in it)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def handle(self, events: Sequence[IngestedEvent]) -> None:
        self.entered.set()
        await asyncio.Event().wait()


def message(name: str = "pump1_tripped", state: str = "active", *, seq: int = 1,
            device: str = "pump-1", at: int = T0, kind: str = "alarm") -> Incoming:
    event = Event(seq=seq, boot_id="boot-0001", ts=at - 50, event_id=f"e-{seq}",
                  kind=kind, name=name, state=state, severity="high")  # type: ignore[arg-type]
    return Incoming(f"tw/v1/alpha/gw1/event/{device}", encode(event), at, seq)


def pending(db: Database) -> list[PendingEvent]:
    with db.transaction() as session:
        return list(session.scalars(select(PendingEvent).order_by(PendingEvent.received_ms)))


def history(db: Database, change: Change) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AlarmHistory)
                                  .where(AlarmHistory.kind == change.value)) or 0)


def alarms(db: Database) -> list[Alarm]:
    with db.transaction() as session:
        return list(session.scalars(select(Alarm).order_by(Alarm.id)))


async def test_the_happy_path_leaves_nothing_pending(
        db: Database, store: SqliteStore, sink: AlarmEventSink) -> None:
    pipeline = IngestPipeline(db, store, sink)
    await pipeline.process([message(seq=1),
                            message("card", "granted", seq=2, device="lift-1", kind="access"),
                            message("pump1_tripped", "cleared", seq=3, at=T0 + 5 * SEC)])
    (alarm,) = alarms(db)  # the access event is of no use to alarms: forgotten too
    assert (alarm.name, alarm.state) == ("pump1_tripped", "unack_rtn")
    assert pending(db) == [] and pipeline.stats.events_left == 0


@pytest.mark.parametrize("death", ["sink raises", "cancelled"])
async def test_an_event_whose_worker_died_after_the_claim_is_replayed_once(
        db: Database, store: SqliteStore, sink: AlarmEventSink, death: str) -> None:
    batch = [message("passenger_trapped", seq=7, device="lift-1")]
    if death == "sink raises":
        await IngestPipeline(db, store, DyingSink()).process(batch)
    else:
        stuck = StuckSink()
        task = asyncio.create_task(IngestPipeline(db, store, stuck).process(batch))
        await asyncio.wait_for(stuck.entered.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (row,) = pending(db)
    assert (row.site_id, row.device_id, row.name, row.seq, row.attempts) == (
        "alpha", "lift-1", "passenger_trapped", 7, 0)
    assert (row.claimed_ms, row.due_ms) == (T0, T0 + GRACE)

    # The broker redelivers; the claim drops the copy and hands nothing on.
    again = IngestPipeline(db, store, sink)
    await again.process(batch)
    assert again.stats.duplicates == 1 and again.stats.events == 0 and alarms(db) == []

    replayer = EventReplayer(db, sink, replay_after_ms=GRACE)
    assert await replayer.run(T0 + GRACE - 1) == 0  # still within the grace period
    assert await replayer.run(T0 + GRACE) == 1
    (alarm,) = alarms(db)
    assert (alarm.name, alarm.state, alarm.raised_ms, alarm.occurrences) == (
        "passenger_trapped", "unack_active", T0, 1)
    assert pending(db) == [] and history(db, Change.RAISED) == 1
    assert await replayer.run(T0 + 10 * GRACE) == 0
    assert len(alarms(db)) == 1 and history(db, Change.RAISED) == 1


async def test_a_failing_event_stays_pending_backs_off_and_is_applied_when_it_can(
        db: Database, store: SqliteStore, sink: AlarmEventSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    good = sink.apply

    def broken(session, item, values):  # type: ignore[no-untyped-def]
        if item.event.name == "pump2_tripped":
            raise RuntimeError("database trouble")
        good(session, item, values)

    monkeypatch.setattr(sink, "apply", broken)
    pipeline = IngestPipeline(db, store, sink)
    await pipeline.process([message("pump1_tripped", seq=1), message("pump2_tripped", seq=2)])
    assert [a.name for a in alarms(db)] == ["pump1_tripped"]
    (row,) = pending(db)
    assert row.name == "pump2_tripped" and pipeline.stats.events_left == 1

    replayer = EventReplayer(db, sink, replay_after_ms=GRACE)
    now = T0 + GRACE
    for attempt, wait in ((1, GRACE), (2, 2 * GRACE), (3, 4 * GRACE)):
        assert await replayer.run(now) == 0
        (row,) = pending(db)
        assert (row.attempts, row.due_ms) == (attempt, now + wait)
        assert await replayer.run(now + wait - 1) == 0  # backing off: not tried
        now += wait
    monkeypatch.setattr(sink, "apply", good)
    assert await replayer.run(now) == 1
    assert [a.name for a in alarms(db)] == ["pump1_tripped", "pump2_tripped"]
    assert pending(db) == [] and history(db, Change.RAISED) == 2


async def test_a_clear_waits_for_the_raise_still_pending_and_both_replay_in_order(
        db: Database, store: SqliteStore, sink: AlarmEventSink) -> None:
    await IngestPipeline(db, store, DyingSink()).process([message(seq=1)])
    pipeline = IngestPipeline(db, store, sink)
    await pipeline.process([message(state="cleared", seq=2, at=T0 + 5 * SEC)])
    assert alarms(db) == [] and [r.seq for r in pending(db)] == [1, 2]

    assert await EventReplayer(db, sink, replay_after_ms=GRACE).run(T0 + 6 * GRACE) == 2
    (alarm,) = alarms(db)
    assert (alarm.state, alarm.active, alarm.raised_ms, alarm.cleared_ms) == (
        "unack_rtn", False, T0, T0 + 5 * SEC)
    assert pending(db) == []


async def test_a_replayed_event_does_not_turn_its_alarm_back(
        db: Database, store: SqliteStore, sink: AlarmEventSink) -> None:
    """Raise (lost by a dying worker), clear, raise, clear applied; the old raise later."""
    await IngestPipeline(db, store, DyingSink()).process([message(seq=1)])
    pipeline = IngestPipeline(db, store, sink)
    await pipeline.process([message(state="cleared", seq=2, at=T0 + 1 * SEC)])
    await pipeline.process([message(seq=3, at=T0 + 2 * SEC)])
    await pipeline.process([message(state="cleared", seq=4, at=T0 + 3 * SEC)])
    # The first clear waited for the first raise; the second raise and clear went through.
    (alarm,) = alarms(db)
    assert (alarm.state, alarm.raised_ms, alarm.cleared_ms) == ("unack_rtn", T0 + 2 * SEC,
                                                                 T0 + 3 * SEC)
    assert await EventReplayer(db, sink, replay_after_ms=GRACE).run(T0 + GRACE + 1 * SEC) == 2
    (alarm,) = alarms(db)
    assert (alarm.state, alarm.active, alarm.occurrences) == ("unack_rtn", False, 1)
    assert history(db, Change.REACTIVATED) == 0 and pending(db) == []
    assert sink.skipped == 1  # the old raise; the old clear changes nothing by itself

    # Acknowledged and closed: a replayed raise from before does not open a new alarm.
    await IngestPipeline(db, store, DyingSink()).process([message(seq=5, at=T0 + 4 * SEC)])
    with db.transaction() as session:
        row = session.get(PendingEvent, ("alpha/gw1", "boot-0001", 5))
        assert row is not None
        row.received_ms = T0 + 2 * SEC + 500  # received before the clear at T0 + 3 s
        sink.service.acknowledge(session, alarm.id, site="alpha", user="op", comment=None,
                                 now_ms=T0 + 4 * SEC)
    assert await EventReplayer(db, sink, replay_after_ms=GRACE).run(T0 + 2 * GRACE) == 1
    assert [(a.state, a.closed_ms is not None) for a in alarms(db)] == [("normal", True)]


@pytest.mark.parametrize("together", [False, True])
async def test_handing_the_same_pending_events_over_twice_applies_them_once(
        db: Database, store: SqliteStore, sink: AlarmEventSink, together: bool) -> None:
    """Also a one-shot alarm, which a second application would raise and clear again."""
    backwards = Event(seq=9, boot_id="boot-0001", ts=T0, event_id="e-9", kind="state",
                      name="counter_backwards", state="backwards", value=120,
                      detail={"point": "volume_total", "previous": 5000})
    await IngestPipeline(db, store, DyingSink()).process(
        [*(message(f"fault_{n}", seq=n) for n in range(1, 6)),
         Incoming("tw/v1/alpha/gw1/event/meter-1", encode(backwards), T0 + 10, 9)])
    events = [IngestedEvent("alpha", "gw1", r.device_id, Event.model_validate_json(r.event),
                            r.received_ms, pending=True, replayed=True) for r in pending(db)]
    if together:
        left = list(await asyncio.gather(sink.handle(events), alarm_sink(db).handle(events)))
    else:
        left = [await sink.handle(events), await sink.handle(events)]
    assert left == [[], []]
    assert len(alarms(db)) == 6 and history(db, Change.RAISED) == 6 and pending(db) == []
    assert history(db, Change.REACTIVATED) == 0 and history(db, Change.CLEARED) == 1


@pytest.mark.integration
async def test_two_replayers_on_postgres_apply_each_event_once(
        pg: Database, store: SqliteStore) -> None:
    with pg.transaction() as session:
        seed_site(session)
    devices = ("pump-1", "lift-1", "meter-1")
    await IngestPipeline(pg, store, DyingSink()).process(
        [message(f"fault_{n}", seq=n, device=devices[n % 3], at=T0 + n) for n in range(1, 61)])
    assert len(pending(pg)) == 60

    # Rows one replayer is claiming are skipped by the other, not waited for.
    other = Database.from_url(pg.engine.url)
    try:
        with pg.transaction() as first:
            mine = claim_due(first, T0 + GRACE + 60, limit=10, retry_ms=lambda n: GRACE)
            with other.transaction() as second:
                theirs = claim_due(second, T0 + GRACE + 60, limit=10, retry_ms=lambda n: GRACE)
            assert {r.key.seq for r in mine} == set(range(1, 11))
            assert {r.key.seq for r in theirs} == set(range(11, 21))
        with other.transaction() as session:  # give the claimed rows back at once
            session.execute(update(PendingEvent).values(due_ms=0))

        replayers = [EventReplayer(database, alarm_sink(database), replay_after_ms=GRACE,
                                   batch=4) for database in (pg, other)]
        applied = await asyncio.gather(*(r.run(T0 + 2 * GRACE) for r in replayers))
    finally:
        other.dispose()
    assert sum(applied) == 60 and all(applied), applied
    assert len(alarms(pg)) == 60 and history(pg, Change.RAISED) == 60 and pending(pg) == []


class _Recorded:
    """A sink that only records what it is given (for the pipeline's bookkeeping)."""

    def __init__(self, refuse: Collection[int] = ()) -> None:
        self.refuse = set(refuse)
        self.seen: list[int] = []

    async def handle(self, events: Sequence[IngestedEvent]) -> list[IngestedEvent]:
        self.seen += [e.event.seq for e in events]
        return [e for e in events if e.event.seq in self.refuse]


async def test_copies_in_a_batch_keep_one_row_and_refused_events_stay(
        db: Database, store: SqliteStore, sink: AlarmEventSink) -> None:
    recorded = _Recorded(refuse={2})
    pipeline = IngestPipeline(db, store, recorded)
    await pipeline.process([message(seq=1), message(seq=1), message(seq=2)])
    assert recorded.seen == [1, 2]
    assert [r.seq for r in pending(db)] == [2]
