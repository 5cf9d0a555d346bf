"""The alarm service on SQLite and PostgreSQL: raise, clear, acknowledge, shelve, timers,
observers, notifications after commit, and the public raise_alarm/clear_alarm."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cloud.alarms import (
    SITE_LEVEL,
    AlarmService,
    AlarmSettings,
    InvalidAlarm,
    InvalidTransition,
    ShelveRefused,
    UnknownAlarm,
    alarm_history,
    clear_alarm,
    install,
    raise_alarm,
    run_timers,
)
from cloud.alarms.tables import Alarm, Change
from cloud.db import Database, list_audit
from tests.cloud.alarms.support import (
    MIN,
    T0,
    RecordingNotifier,
    RecordingObserver,
    seed_site,
    spec,
)


@pytest.fixture
def parts(db: Database) -> tuple[Database, AlarmService, RecordingObserver, RecordingNotifier]:
    with db.transaction() as session:
        seed_site(session)
    observer, notifier = RecordingObserver(), RecordingNotifier()
    return db, AlarmService(observers=[observer], notifier=notifier), observer, notifier


Parts = tuple[Database, AlarmService, RecordingObserver, RecordingNotifier]


def test_raise_clear_acknowledge_closes_and_a_new_occurrence_opens_a_new_row(
        parts: Parts) -> None:
    db, service, observer, notifier = parts
    with db.transaction() as session:
        first = service.raise_(session, spec(), T0)
        again = service.raise_(session, spec(), T0 + 1000)  # a redelivery: no change
        assert again.id == first.id and again.occurrences == 1
        assert notifier.sent == []  # not before the commit
    assert [n.kind for n in notifier.sent] == ["raised"]
    assert notifier.sent[0].alarm["text_zh"] == "pump1_tripped（中文）"
    with db.transaction() as session:
        cleared = service.clear(session, "alpha", "gw1", "pump-1", "pump1_tripped", T0 + MIN)
        assert cleared is not None and cleared.state == "unack_rtn" and cleared.is_open
        acked = service.acknowledge(session, first.id, site="alpha", user="eng", comment="reset",
                                    now_ms=T0 + 2 * MIN)
        assert acked.state == "normal" and acked.closed_ms == T0 + 2 * MIN
        second = service.raise_(session, spec(), T0 + 3 * MIN)
        assert second.id != first.id
        _, history = alarm_history(session, "alpha", first.id)
    assert [h.kind for h in history] == ["raised", "cleared", "acknowledged", "closed"]
    assert history[2].username == "eng" and history[2].comment == "reset"
    assert [c[1] for c in observer.changes] == [
        Change.RAISED, Change.CLEARED, Change.ACKNOWLEDGED, Change.CLOSED, Change.RAISED]


def test_reactivation_counts_occurrences_and_ack_then_clear_closes(parts: Parts) -> None:
    db, service, _, _ = parts
    with db.transaction() as session:
        alarm = service.raise_(session, spec(), T0)
        service.clear(session, "alpha", "gw1", "pump-1", "pump1_tripped", T0 + 1000)
        service.raise_(session, spec(), T0 + 2000)
        assert (alarm.state, alarm.occurrences, alarm.last_active_ms) == (
            "unack_active", 2, T0 + 2000)
        service.acknowledge(session, alarm.id, site="alpha", user="eng", comment=None,
                            now_ms=T0 + 3000)
        assert alarm.state == "ack_active" and alarm.is_open
        with pytest.raises(InvalidTransition):
            service.acknowledge(session, alarm.id, site="alpha", user="eng", comment=None,
                                now_ms=T0 + 3500)
        service.clear(session, "alpha", "gw1", "pump-1", "pump1_tripped", T0 + 4000)
        assert alarm.state == "normal" and alarm.closed_ms == T0 + 4000
        with pytest.raises(UnknownAlarm):
            service.acknowledge(session, alarm.id, site="beta", user="eng", comment=None,
                                now_ms=T0)
        assert service.clear(session, "alpha", "gw1", "pump-1", "nothing", T0) is None


def test_shelve_needs_a_reason_is_bounded_audited_and_expires(parts: Parts) -> None:
    db, service, _, _ = parts
    with db.transaction() as session:
        alarm = service.raise_(session, spec(priority="emergency"), T0)
        with pytest.raises(ShelveRefused, match="reason") as refused:
            service.shelve(session, alarm.id, site="alpha", user="sup", reason="  ",
                           until_ms=T0 + MIN, now_ms=T0)
        assert refused.value.field == "reason"
        with pytest.raises(ShelveRefused, match="at most 480 min"):
            service.shelve(session, alarm.id, site="alpha", user="sup", reason="repair",
                           until_ms=T0 + 9 * 60 * MIN, now_ms=T0)
        service.shelve(session, alarm.id, site="alpha", user="sup", reason="sensor repair",
                       until_ms=T0 + 30 * MIN, now_ms=T0)
        assert (alarm.shelved, alarm.next_escalation_ms) == (True, None)
        assert run_timers(service, session, T0 + 29 * MIN).expired == 0
        report = run_timers(service, session, T0 + 30 * MIN)
        assert report.expired == 1 and alarm.shelved_until_ms is None
        # the escalation clock starts again from the expiry
        assert alarm.next_escalation_ms == T0 + 35 * MIN
        actions = [(e.action, e.username) for e in list_audit(session, site="alpha")]
    assert actions == [("alarm.shelve_expired", None), ("alarm.shelve", "sup")]


def test_unacknowledged_emergency_realarms_and_escalates_on_time(parts: Parts) -> None:
    db, service, _, notifier = parts
    with db.transaction() as session:
        alarm = service.raise_(session, spec("passenger_trapped", device="lift-1",
                                             priority="emergency", category="elevator"), T0)
    assert (alarm.next_realarm_ms, alarm.next_escalation_ms) == (T0 + 5 * MIN, T0 + 5 * MIN)
    with db.transaction() as session:
        assert run_timers(service, session, T0 + 5 * MIN - 1).escalated == 0
    with db.transaction() as session:
        report = run_timers(service, session, T0 + 5 * MIN)
    assert (report.realarmed, report.escalated) == (1, 1)
    with db.transaction() as session:  # 15 min after the raise: level 2
        report = run_timers(service, session, T0 + 15 * MIN)
        row = session.get(Alarm, alarm.id)
        assert row is not None and row.escalation_level == 2
        assert row.next_escalation_ms == T0 + 30 * MIN
        service.acknowledge(session, alarm.id, site="alpha", user="eng", comment="on my way",
                            now_ms=T0 + 16 * MIN)
        assert run_timers(service, session, T0 + 60 * MIN) == type(report)(0, 0, 0)
    kinds = [(n.kind, n.level) for n in notifier.sent]
    assert kinds == [("raised", 0), ("realarmed", 0), ("escalated", 1), ("realarmed", 1),
                     ("escalated", 2)]
    assert "已升级至第2级" in notifier.sent[-1].text("zh")


def test_notifications_of_a_rolled_back_transaction_are_dropped(parts: Parts) -> None:
    db, service, _, notifier = parts

    def fail_after_raising() -> None:
        with db.transaction() as session:
            service.raise_(session, spec(), T0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_after_raising()
    assert notifier.sent == []
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0


def test_site_policy_overrides_the_settings(parts: Parts) -> None:
    from cloud.alarms.tables import AlarmPolicyRow

    db, _, _, _ = parts
    service = AlarmService(AlarmSettings(max_shelve=3600))
    with db.transaction() as session:
        session.add(AlarmPolicyRow(site_id="alpha", policy={"max_shelve": "2h",
                                                            "escalation": {"high": ["1m"]}},
                                   updated_ms=T0))
        session.flush()
        settings = service.settings_for(session, "alpha")
        assert settings.max_shelve == 7200 and settings.ladder("high") == [60.0]
        alarm = service.raise_(session, spec(), T0)
        assert alarm.next_escalation_ms == T0 + MIN
        service.shelve(session, alarm.id, site="alpha", user="sup", reason="r",
                       until_ms=T0 + 100 * MIN, now_ms=T0)


def test_public_functions_raise_site_level_alarms_with_the_installed_service(
        parts: Parts) -> None:
    db, service, observer, _ = parts
    install(service)
    with db.transaction() as session:
        alarm = raise_alarm(session, site="alpha", gateway=None, device=None,
                            name="patrol_missed:route-1", source="patrol", priority="medium",
                            category="general", text_en="Checkpoint missed",
                            text_zh="漏巡检查点", now_ms=T0, detail={"route": "route-1"})
        assert (alarm.gateway_id, alarm.device_id) == (SITE_LEVEL, SITE_LEVEL)
        assert alarm.target == "patrol_missed:route-1"
        with pytest.raises(InvalidAlarm, match="priority"):
            raise_alarm(session, site="alpha", gateway=None, device=None, name="x",
                        source="patrol", priority="urgent", category="general", text_en="x",
                        text_zh="x", now_ms=T0)
        cleared = clear_alarm(session, site="alpha", gateway=None, device=None,
                              name="patrol_missed:route-1", now_ms=T0 + MIN)
        assert cleared is not None and cleared.id == alarm.id and cleared.state == "unack_rtn"
    assert observer.changes[0][:2] == (alarm.id, Change.RAISED)
