"""Two workers raising the same alarm at the same moment on PostgreSQL: exactly one open
alarm, and the loser of the insert race attaches to the winner's row."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cloud.alarms import AlarmService
from cloud.alarms.tables import Alarm
from cloud.db import Database
from tests.cloud.alarms.support import T0, RecordingNotifier, seed_site, spec

pytestmark = pytest.mark.integration


def test_the_insert_race_attaches_to_the_winner(pg: Database) -> None:
    with pg.transaction() as session:
        seed_site(session)
    service = AlarmService(notifier=RecordingNotifier())
    inserted, release = threading.Event(), threading.Event()

    def winner() -> int:
        with pg.transaction() as session:
            alarm = service.raise_(session, spec(), T0)
            inserted.set()
            release.wait(10)  # hold the uncommitted row while the loser inserts
            return alarm.id

    def loser() -> int:
        inserted.wait(10)
        timer = threading.Timer(0.5, release.set)  # commit the winner while the loser waits
        timer.start()
        with pg.transaction() as session:
            return service.raise_(session, spec(), T0 + 1).id

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(winner), pool.submit(loser)
        assert first.result(20) == second.result(20)
    with pg.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 1


def test_a_burst_from_two_threads_never_opens_two_alarms(pg: Database) -> None:
    with pg.transaction() as session:
        seed_site(session)
    service = AlarmService(notifier=RecordingNotifier())
    names = [f"alarm_{n}" for n in range(40)]
    start = threading.Barrier(2)

    def worker(offset: int) -> None:
        start.wait(10)
        for round_ in range(3):
            for name in (names if (round_ + offset) % 2 else list(reversed(names))):
                with pg.transaction() as session:
                    service.raise_(session, spec(name), T0 + round_)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(worker, 0), pool.submit(worker, 2)]:
            future.result(60)
    with pg.transaction() as session:
        rows = session.execute(select(Alarm.name, func.count()).where(Alarm.closed_ms.is_(None))
                               .group_by(Alarm.name)).all()
    assert sorted(rows) == sorted((name, 1) for name in names)
