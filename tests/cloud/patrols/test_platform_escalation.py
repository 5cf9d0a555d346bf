"""Patrol exceptions through the real escalation (SQLite and PostgreSQL): the alarm service
and the work-order service of the cloud, as ``default_escalation`` wires them.

A replayed tap raises the site-level alarm the policy names; a second replay of the same
tag joins that open alarm; the alarm clears when the last exception behind it is closed
(with a comment). An incident becomes a work order whose priority follows the incident's
severity. A round marked missed raises ``tour_not_started``; a late offline upload that
shows it was walked withdraws the exception and clears its alarm.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import cloud.alarms
from cloud.alarms import SITE_LEVEL, Alarm, AlarmService, AlarmState
from cloud.db import Database
from cloud.patrols.errors import PatrolInvalid
from cloud.patrols.escalation import PlatformEscalation, default_escalation
from cloud.patrols.findings import close_exception
from cloud.patrols.model import ExceptionKind, ExceptionStatus, ScanResult, Severity
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.scans import IncidentIn, record_incident
from cloud.patrols.tables import PatrolException, PatrolRoute, PatrolTour
from cloud.patrols.tours import sweep
from cloud.workorders import WorkOrder
from tests.cloud.patrols import support
from tests.cloud.patrols.support import SITE, TZ, local_ms, record, runtime, site_with_tags


@pytest.fixture
def alarm_service() -> Iterator[AlarmService]:
    """A fresh alarm service for ``cloud.alarms.raise_alarm`` (the previous one restored)."""
    previous = cloud.alarms.current_service()
    service = AlarmService(clock=lambda: local_ms(21) / 1000)
    cloud.alarms.install(service)
    try:
        yield service
    finally:
        cloud.alarms.install(previous)


@pytest.fixture
def rt(tmp_path: Path, alarm_service: AlarmService) -> PatrolRuntime:
    escalation = default_escalation()
    assert isinstance(escalation, PlatformEscalation)
    return runtime(tmp_path, escalation)


def exceptions(db: Database, kind: ExceptionKind) -> list[PatrolException]:
    with db.transaction() as session:
        return list(session.scalars(select(PatrolException).where(
            PatrolException.kind == kind.value).order_by(PatrolException.id)))


def alarm(db: Database, name: str) -> Alarm:
    with db.transaction() as session:
        return session.scalars(select(Alarm).where(Alarm.name == name)).one()


def test_a_replay_raises_the_named_alarm_which_clears_when_closed_by_comment(
    db: Database, rt: PatrolRuntime,
) -> None:
    tag = site_with_tags(db, rt, SITE, TZ, 1)[0]
    now = local_ms(21)
    tap = tag.scan("first", now - 60_000)
    replays = [type(tap)(scan_id=f"again-{n}", device_ms=now - 50_000 + n, tap=tap.tap)
               for n in range(2)]
    assert [o.result for o in record(db, rt, SITE, [tap], now - 55_000)] == [ScanResult.ACCEPTED]
    assert [o.result for o in record(db, rt, SITE, replays[:1], now)] == [ScanResult.REPLAY]

    raised = alarm(db, "patrol.replay.cp-1")
    assert (raised.gateway_id, raised.device_id) == (SITE_LEVEL, SITE_LEVEL)
    assert (raised.source, raised.priority, raised.category) == ("patrol", "high", "general")
    assert raised.state == AlarmState.UNACK_ACTIVE and raised.active
    assert raised.text_en == "Patrol: a replayed tap of Checkpoint 1 (scan by guard-a)"
    assert raised.text_zh == "巡更：Checkpoint 1 的打卡数据被重放（guard-a 提交）"
    first = exceptions(db, ExceptionKind.REPLAY)[0]
    assert (first.escalation, first.escalation_ref) == ("alarm", str(raised.id))
    assert first.detail["reason"] and raised.detail["patrol_exception"] == first.id

    assert [o.result for o in record(db, rt, SITE, replays[1:], now + 1000)] == [
        ScanResult.REPLAY]
    second = exceptions(db, ExceptionKind.REPLAY)[1]
    assert second.escalation_ref == str(raised.id)  # one open alarm per checkpoint and kind

    with db.transaction() as session, pytest.raises(PatrolInvalid) as refused:
        close_exception(session, rt, SITE, first.id, comment="  ", user="supervisor-a",
                        now_ms=now + 2000)
    assert refused.value.field == "comment"
    with db.transaction() as session:
        closed = close_exception(session, rt, SITE, first.id, user="supervisor-a",
                                 comment="Tag copied by a phone app; guard briefed",
                                 now_ms=now + 2000)
        assert closed.status == ExceptionStatus.CLOSED and closed.closed_by == "supervisor-a"
    assert alarm(db, "patrol.replay.cp-1").active  # the second replay still stands behind it
    with db.transaction() as session:
        close_exception(session, rt, SITE, second.id, comment="Same copy, same phone",
                        user="supervisor-a", now_ms=now + 3000)
    cleared = alarm(db, "patrol.replay.cp-1")
    assert not cleared.active and cleared.state == AlarmState.UNACK_RTN
    assert cleared.cleared_ms == now + 3000


def test_an_incident_becomes_a_work_order_by_its_severity(db: Database,
                                                          rt: PatrolRuntime) -> None:
    site_with_tags(db, rt, SITE, TZ, 1)
    now = local_ms(22)
    with db.transaction() as session:
        row, ref = record_incident(session, rt, site=SITE, guard=support.GUARD, now_ms=now,
                                   incident=IncidentIn(
                                       incident_id="inc-1", severity=Severity.HIGH,
                                       text="Fire door 3F held open with a wedge",
                                       device_ms=now - 30_000, checkpoint="cp-1",
                                       photo_ref="photos/inc-1.jpg"))
    with db.transaction() as session:
        order = session.scalars(select(WorkOrder)).one()
        again, same = record_incident(session, rt, site=SITE, guard=support.GUARD,
                                      now_ms=now + 5000, incident=IncidentIn(
                                          incident_id="inc-1", severity=Severity.HIGH,
                                          text="Fire door 3F held open with a wedge",
                                          device_ms=now - 30_000))
    assert ref == str(order.id) and (again.id, same) == (row.id, ref)
    assert (order.source, order.priority, order.category) == ("patrol", "urgent", "general")
    assert "Fire door 3F held open" in order.title and order.created_by == support.GUARD
    assert order.site_id == SITE and order.state == "new"
    finding = exceptions(db, ExceptionKind.INCIDENT)[0]
    assert (finding.escalation, finding.escalation_ref) == ("work_order", str(order.id))
    with db.transaction() as session:
        close_exception(session, rt, SITE, finding.id, comment="Wedge removed on the spot",
                        user="supervisor-a", now_ms=now + 60_000)
        kept = session.get(WorkOrder, order.id)
        assert kept is not None and kept.state == "new"  # its own lifecycle
        assert session.scalars(select(Alarm)).all() == []


def test_a_missed_round_walked_offline_withdraws_its_alarm(db: Database,
                                                           rt: PatrolRuntime) -> None:
    tags = site_with_tags(db, rt, SITE, TZ, 2)
    support.route_with_schedule(db, SITE, tags, {"times": ["22:00"]}, local_ms(20))
    with db.transaction() as session:
        sweep(session, rt, SITE, local_ms(21))
        assert sweep(session, rt, SITE, local_ms(22, 40)).missed == 1
        route = session.scalars(select(PatrolRoute)).one()
    name = f"patrol.tour_not_started.route-{route.id}"
    assert alarm(db, name).active
    walked = [tags[0].scan("late-1", local_ms(22, 5)), tags[1].scan("late-2", local_ms(22, 9))]
    outcomes = record(db, rt, SITE, walked, local_ms(22, 50), batch_id="offline")
    assert [o.result for o in outcomes] == [ScanResult.ACCEPTED] * 2
    [missed] = exceptions(db, ExceptionKind.TOUR_NOT_STARTED)
    assert missed.status == ExceptionStatus.WITHDRAWN
    assert not alarm(db, name).active
    with db.transaction() as session:
        tour = session.scalars(select(PatrolTour)).one()
    assert tour.status == "completed" and tour.started_ms == local_ms(22, 5)
