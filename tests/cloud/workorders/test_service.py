"""Work orders in the store (SQLite and PostgreSQL): creation with deadlines, the whole
life with a pause, follow-up before closing, history and audit, SLA breaches."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from cloud.db import Database, list_audit
from cloud.db.errors import UnknownSite
from cloud.workorders.breaches import LogEscalation, breaches_of, check_sla
from cloud.workorders.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotPermitted,
    TransitionRefused,
)
from cloud.workorders.history import events_of
from cloud.workorders.policies import set_site_terms
from cloud.workorders.service import add_comment, create_work_order, record_follow_up
from cloud.workorders.sla import SlaTerms
from cloud.workorders.states import Actor
from cloud.workorders.tables import SlaBreach, WorkOrder
from cloud.workorders.transitions import transition
from tests.cloud.api.support import T0_MS

M = 60_000
ENGINEER = Actor("engineer-a", may_progress=True)
SUPERVISOR = Actor("supervisor-a", may_progress=True, may_manage=True)
VIEWER = Actor("viewer-a")


def _new(db: Database, **overrides: object) -> WorkOrder:
    fields: dict[str, object] = {
        "site": "alpha", "category": "elevator", "priority": "emergency",
        "title": "Passenger trapped in lift 2", "source": "manual", "now_ms": T0_MS,
        "actor": "supervisor-a"}
    fields.update(overrides)
    with db.transaction() as session:
        return create_work_order(session, **fields)  # type: ignore[arg-type]


def _do(db: Database, order_id: int, action: str, actor: Actor, at_ms: int,
        **kwargs: str) -> WorkOrder:
    with db.transaction() as session:
        return transition(session, order_id, action, actor=actor, now_ms=at_ms, **kwargs)


def test_entrapment_gets_a_30_minute_arrival_deadline(seeded: Database) -> None:
    order = _new(seeded)
    assert order.state == "new"
    assert order.respond_due_ms == T0_MS + 5 * M
    assert order.arrive_due_ms == T0_MS + 30 * M
    assert order.resolve_due_ms == T0_MS + 240 * M


def test_fire_gets_3_minutes_and_site_overrides_apply(seeded: Database) -> None:
    assert _new(seeded, category="fire").arrive_due_ms == T0_MS + 3 * M
    with seeded.transaction() as session:
        set_site_terms(session, "alpha", "water", "urgent", SlaTerms(10, 20, 120, 60),
                       user="supervisor-a", now_ms=T0_MS)
    order = _new(seeded, category="water", priority="urgent")
    assert (order.respond_due_ms, order.arrive_due_ms, order.resolve_due_ms) == (
        T0_MS + 10 * M, T0_MS + 20 * M, T0_MS + 120 * M)
    assert order.follow_up_minutes == 60
    # the other site keeps the defaults
    beta = _new(seeded, site="beta", category="water", priority="urgent")
    assert beta.arrive_due_ms == T0_MS + 30 * M


@pytest.mark.parametrize(
    ("field", "value"),
    [("category", "plumbing"), ("priority", "asap"), ("source", "email"), ("title", "  "),
     ("assignee", "viewer-a"), ("assignee", "nobody")],
)
def test_bad_input_names_the_field(seeded: Database, field: str, value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _new(seeded, **{field: value})
    assert caught.value.field == field


def test_unknown_site_and_foreign_asset(seeded: Database) -> None:
    with pytest.raises(UnknownSite):
        _new(seeded, site="nowhere")
    with pytest.raises(NotFound, match="asset"):
        _new(seeded, asset_id=999)


def test_the_whole_life_with_a_pause(seeded: Database) -> None:
    order = _new(seeded)
    _do(seeded, order.id, "assign", SUPERVISOR, T0_MS + M, assignee="engineer-a")
    _do(seeded, order.id, "accept", ENGINEER, T0_MS + 2 * M)
    held = _do(seeded, order.id, "hold", ENGINEER, T0_MS + 10 * M,
               comment="waiting for the lift company's key")
    assert held.state == "on_hold" and held.hold_since_ms == T0_MS + 10 * M
    resumed = _do(seeded, order.id, "resume", ENGINEER, T0_MS + 50 * M)
    assert resumed.state == "accepted"
    # 40 minutes on hold: the unmet arrival and resolution deadlines moved 40 minutes
    assert resumed.arrive_due_ms == T0_MS + 70 * M
    assert resumed.resolve_due_ms == T0_MS + 280 * M
    assert resumed.respond_due_ms == T0_MS + 5 * M  # met before the hold
    assert resumed.paused_ms == 40 * M
    _do(seeded, order.id, "arrive", ENGINEER, T0_MS + 60 * M)
    _do(seeded, order.id, "start", ENGINEER, T0_MS + 61 * M)
    resolved = _do(seeded, order.id, "resolve", ENGINEER, T0_MS + 90 * M,
                   comment="car levelled, passenger released")
    assert resolved.follow_up_due_ms == T0_MS + 90 * M + 24 * 60 * M
    with pytest.raises(NotPermitted):
        _do(seeded, order.id, "close", ENGINEER, T0_MS + 95 * M)
    with pytest.raises(Conflict, match="follow-up"):
        _do(seeded, order.id, "close", SUPERVISOR, T0_MS + 95 * M)
    with seeded.transaction() as session:
        record_follow_up(session, session.get(WorkOrder, order.id) or resolved,
                         outcome="satisfied", note="called the resident", user="supervisor-a",
                         now_ms=T0_MS + 100 * M)
    closed = _do(seeded, order.id, "close", SUPERVISOR, T0_MS + 101 * M)
    assert closed.state == "closed" and closed.closed_ms == T0_MS + 101 * M
    with seeded.transaction() as session:
        events = [(e.action, e.username, e.to_state) for e in events_of(session, order.id)]
        audit = [a.action for a in list_audit(session, site="alpha")]
        assert check_sla(session, T0_MS + 2000 * M) == []
        assert breaches_of(session, order.id) == []
    assert events == [
        ("create", "supervisor-a", "new"), ("assign", "supervisor-a", "assigned"),
        ("accept", "engineer-a", "accepted"), ("hold", "engineer-a", "on_hold"),
        ("resume", "engineer-a", "accepted"), ("arrive", "engineer-a", "on_site"),
        ("start", "engineer-a", "in_progress"), ("resolve", "engineer-a", "resolved"),
        ("follow_up", "supervisor-a", None), ("close", "supervisor-a", "closed")]
    assert audit.count("workorder.hold") == 1 and "workorder.close" in audit


def test_refusals(seeded: Database) -> None:
    order = _new(seeded)
    with pytest.raises(NotPermitted):
        _do(seeded, order.id, "assign", ENGINEER, T0_MS, assignee="engineer-a")
    with pytest.raises(TransitionRefused):
        _do(seeded, order.id, "resolve", SUPERVISOR, T0_MS, comment="done")
    with pytest.raises(InvalidInput, match="comment"):
        _do(seeded, order.id, "cancel", SUPERVISOR, T0_MS)
    with pytest.raises(InvalidInput, match="action"):
        _do(seeded, order.id, "teleport", SUPERVISOR, T0_MS)
    with pytest.raises(NotFound):
        _do(seeded, order.id, "cancel", SUPERVISOR, T0_MS, comment="x", site="beta")
    _do(seeded, order.id, "assign", SUPERVISOR, T0_MS, assignee="engineer-a")
    with pytest.raises(NotPermitted):
        _do(seeded, order.id, "accept", VIEWER, T0_MS)
    with pytest.raises(InvalidInput, match="comment"), seeded.transaction() as session:
        add_comment(session, session.get(WorkOrder, order.id) or order, " ", user="x",
                    now_ms=T0_MS)


def test_check_sla_records_breaches_once_and_escalates(
    seeded: Database, caplog: pytest.LogCaptureFixture
) -> None:
    order = _new(seeded)
    other = _new(seeded, category="general", priority="low", title="Scuffed lobby wall")
    escalation = LogEscalation()
    with seeded.transaction() as session:
        assert check_sla(session, T0_MS + 5 * M, escalation) == []  # due, not yet past
    with caplog.at_level(logging.WARNING), seeded.transaction() as session:
        first = check_sla(session, T0_MS + 6 * M, escalation)
        assert [(b.work_order_id, b.kind) for b in first] == [(order.id, "respond")]
        assert first[0].escalated_via == "log" and first[0].escalated_ms == T0_MS + 6 * M
    assert "SLA BREACH" in caplog.text and "工单超时" in caplog.text
    with seeded.transaction() as session:
        assert check_sla(session, T0_MS + 7 * M, escalation) == []
        later = check_sla(session, T0_MS + 31 * M, escalation)
        assert [b.kind for b in later] == ["arrive"]
        audit = [a.action for a in list_audit(session, site="alpha")]
    assert audit.count("workorder.escalate") == 2 and escalation.count == 2
    with seeded.transaction() as session:
        kinds = {(b.work_order_id, b.kind) for b in session.scalars(select(SlaBreach))}
    assert kinds == {(order.id, "respond"), (order.id, "arrive")}
    assert other.id not in {k[0] for k in kinds}


def test_no_breach_while_on_hold_and_late_milestones_are_recorded(seeded: Database) -> None:
    order = _new(seeded, priority="urgent", category="water")  # 30 / 30 / 240 minutes
    _do(seeded, order.id, "assign", SUPERVISOR, T0_MS, assignee="engineer-a")
    _do(seeded, order.id, "accept", ENGINEER, T0_MS + M)
    _do(seeded, order.id, "hold", ENGINEER, T0_MS + 10 * M, comment="no spare part")
    with seeded.transaction() as session:
        assert check_sla(session, T0_MS + 600 * M) == []  # ten hours on hold: clock stopped
    _do(seeded, order.id, "resume", ENGINEER, T0_MS + 600 * M)
    late = _do(seeded, order.id, "arrive", ENGINEER, T0_MS + 640 * M)  # due at 620
    assert late.arrive_due_ms == T0_MS + 620 * M
    with seeded.transaction() as session:
        [breach] = breaches_of(session, order.id)
        assert (breach.kind, breach.due_ms, breach.met_ms) == (
            "arrive", T0_MS + 620 * M, T0_MS + 640 * M)


def _resolved_at_minute_2(db: Database, title: str) -> WorkOrder:
    """A normal work order, assigned, accepted, started and resolved in two minutes."""
    order = _new(db, priority="normal", category="general", title=title)
    _do(db, order.id, "assign", SUPERVISOR, T0_MS, assignee="engineer-a")
    _do(db, order.id, "accept", ENGINEER, T0_MS + M)
    _do(db, order.id, "start", ENGINEER, T0_MS + M)
    return _do(db, order.id, "resolve", ENGINEER, T0_MS + 2 * M, comment="fixed")


def test_follow_up_deadline_is_checked(seeded: Database) -> None:
    _resolved_at_minute_2(seeded, "Lobby light out")
    with seeded.transaction() as session:
        assert check_sla(session, T0_MS + 2 * M + 24 * 60 * M) == []
        [breach] = check_sla(session, T0_MS + 3 * M + 24 * 60 * M)
    assert breach.kind == "follow_up"


def test_reopen_restarts_the_resolution_clock(seeded: Database) -> None:
    order = _resolved_at_minute_2(seeded, "Door closer broken")
    reopened = _do(seeded, order.id, "reopen", SUPERVISOR, T0_MS + 100 * M,
                   comment="resident says it slams again")
    assert reopened.state == "reopened"
    assert reopened.resolve_due_ms == T0_MS + 100 * M + 24 * 60 * M
    assert reopened.resolved_ms is None and reopened.follow_up_due_ms is None
