"""Work after commit and the in-process wake of alarm streams, on SQLite and PostgreSQL:
notifications and wakes come with the outermost commit (not with a savepoint's release),
none on rollback; a commit in a worker thread wakes a stream waiting on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.alarms import AlarmService
from cloud.alarms.broadcast import ChangeBroadcaster
from cloud.alarms.stream import alarm_events
from cloud.alarms.tables import Alarm
from cloud.db import Database
from tests.cloud.alarms.support import T0, RecordingNotifier, seed_site, spec

T = TypeVar("T")


def runner(db: Database) -> Callable[[Callable[[Session], T]], Awaitable[T]]:
    async def run(work: Callable[[Session], T]) -> T:
        def transaction() -> T:
            with db.transaction() as session:
                return work(session)
        return await asyncio.to_thread(transaction)

    return run


async def forever() -> bool:
    return True


@pytest.fixture
def seeded(db: Database) -> Database:
    with db.transaction() as session:
        seed_site(session)
    return db


def test_notes_and_wakes_wait_for_the_outer_commit_not_a_savepoint(seeded: Database) -> None:
    notifier, changes = RecordingNotifier(), ChangeBroadcaster()
    service = AlarmService(notifier=notifier, broadcaster=changes)
    with seeded.transaction() as session:
        service.raise_(session, spec("pump1_tripped", priority="emergency"), T0)
        # the next raise inserts in a savepoint: its release is not the commit
        service.raise_(session, spec("pump2_tripped", priority="emergency"), T0)
        assert (notifier.sent, changes.wakes) == ([], 0)
    assert [n.alarm["name"] for n in notifier.sent] == ["pump1_tripped", "pump2_tripped"]
    assert changes.wakes == 1  # one wake per transaction, however many changes


def test_a_rollback_drops_notes_and_wakes_but_a_failed_savepoint_does_not(
        seeded: Database) -> None:
    notifier, changes = RecordingNotifier(), ChangeBroadcaster()
    service = AlarmService(notifier=notifier, broadcaster=changes)

    def failing_batch() -> None:
        with seeded.transaction() as session:
            service.raise_(session, spec("pump1_tripped", priority="emergency"), T0)
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert (notifier.sent, changes.wakes) == ([], 0)
    with seeded.transaction() as session:
        service.raise_(session, spec("pump1_tripped", priority="emergency"), T0)
        taken = insert(Alarm).values(  # a savepoint that fails: the open alarm's key
            site_id="alpha", gateway_id="gw1", device_id="pump-1", name="pump1_tripped",
            source="edge", category="water", priority="high", rank=1, state="unack_active",
            active=True, text_en="x", text_zh="x", detail={}, raised_ms=T0,
            last_active_ms=T0, changed_ms=T0, occurrences=1, out_of_service=False,
            escalation_level=0)
        with pytest.raises(IntegrityError), session.begin_nested():
            session.execute(taken)
    assert [n.alarm["name"] for n in notifier.sent] == ["pump1_tripped"]
    assert changes.wakes == 1


async def test_a_commit_in_a_thread_wakes_a_stream_long_before_its_poll(
        seeded: Database) -> None:
    """The stream polls once a minute here: only the wake can deliver the raise in time."""
    changes = ChangeBroadcaster()
    service = AlarmService(broadcaster=changes)

    stream = alarm_events(runner(seeded), ["alpha"], last_event_id=None, poll=60, heartbeat=60,
                          alive=forever, clock=time.monotonic, changes=changes)
    assert (await anext(stream)).startswith("retry:")
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)  # the stream has read once and waits
    committed = threading.Event()

    def raise_it() -> None:
        with seeded.transaction() as session:
            service.raise_(session, spec("pump1_tripped"), T0)
        committed.set()

    started = time.monotonic()
    await asyncio.to_thread(raise_it)
    text = await asyncio.wait_for(first, 20)
    assert time.monotonic() - started < 20 < 60
    assert committed.is_set() and '"change":"raised"' in text and "pump1_tripped" in text
    await stream.aclose()


async def test_a_change_no_wake_announces_is_found_by_the_poll(seeded: Database) -> None:
    """Another process's commit (a broadcaster the stream does not listen to)."""
    elsewhere = AlarmService(broadcaster=ChangeBroadcaster())

    stream = alarm_events(runner(seeded), None, last_event_id=None, poll=0.2, heartbeat=60,
                          alive=forever, clock=time.monotonic, changes=ChangeBroadcaster())
    await anext(stream)
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.3)
    with seeded.transaction() as session:
        elsewhere.raise_(session, spec("pump1_tripped"), T0)
    assert "pump1_tripped" in await asyncio.wait_for(first, 20)
    await stream.aclose()


def test_a_subscriber_whose_loop_closed_is_dropped() -> None:
    changes = ChangeBroadcaster()

    async def forgotten() -> None:
        changes.subscribe()  # never closed; its loop ends with asyncio.run

    async def live() -> bool:
        with changes.subscribe() as sub:
            changes.changed()
            woken = await sub.wait(5)
            assert len(changes._subscribers) == 1
        return woken

    asyncio.run(forgotten())
    assert asyncio.run(live())
    assert changes._subscribers == []
