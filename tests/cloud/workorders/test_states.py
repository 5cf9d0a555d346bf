"""The transition table, checked against roles (pure, table-driven)."""

from __future__ import annotations

import pytest

from cloud.workorders.states import TRANSITIONS, Actor, State, WorkAction, next_state

ENGINEER = Actor("eng", may_progress=True)
OTHER_ENGINEER = Actor("other", may_progress=True)
SUPERVISOR = Actor("boss", may_progress=True, may_manage=True)
VIEWER = Actor("viewer")
SYSTEM = Actor.system()

S = State
A = WorkAction

# (state, action, actor, expected next state or the exception type)
CASES: list[tuple[State, WorkAction, Actor, State | type[Exception]]] = [
    (S.NEW, A.ASSIGN, SUPERVISOR, S.ASSIGNED),
    (S.NEW, A.ASSIGN, ENGINEER, PermissionError),
    (S.NEW, A.ASSIGN, SYSTEM, S.ASSIGNED),
    (S.ASSIGNED, A.ASSIGN, SUPERVISOR, S.ASSIGNED),
    (S.REOPENED, A.ASSIGN, SUPERVISOR, S.ASSIGNED),
    (S.IN_PROGRESS, A.ASSIGN, SUPERVISOR, ValueError),
    (S.ASSIGNED, A.ACCEPT, ENGINEER, S.ACCEPTED),
    (S.ASSIGNED, A.ACCEPT, OTHER_ENGINEER, PermissionError),
    (S.ASSIGNED, A.ACCEPT, VIEWER, PermissionError),
    (S.ASSIGNED, A.ACCEPT, SUPERVISOR, S.ACCEPTED),
    (S.NEW, A.ACCEPT, ENGINEER, ValueError),
    (S.ACCEPTED, A.ARRIVE, ENGINEER, S.ON_SITE),
    (S.ASSIGNED, A.ARRIVE, ENGINEER, ValueError),
    (S.ON_SITE, A.START, ENGINEER, S.IN_PROGRESS),
    (S.ACCEPTED, A.START, ENGINEER, S.IN_PROGRESS),
    (S.IN_PROGRESS, A.HOLD, ENGINEER, S.ON_HOLD),
    (S.ON_SITE, A.HOLD, ENGINEER, S.ON_HOLD),
    (S.NEW, A.HOLD, SUPERVISOR, ValueError),
    (S.ON_HOLD, A.HOLD, ENGINEER, ValueError),
    (S.ON_HOLD, A.RESUME, ENGINEER, S.IN_PROGRESS),
    (S.ON_HOLD, A.RESUME, OTHER_ENGINEER, PermissionError),
    (S.IN_PROGRESS, A.RESOLVE, ENGINEER, S.RESOLVED),
    (S.ON_SITE, A.RESOLVE, ENGINEER, S.RESOLVED),
    (S.ACCEPTED, A.RESOLVE, ENGINEER, ValueError),
    (S.RESOLVED, A.CLOSE, ENGINEER, PermissionError),
    (S.RESOLVED, A.CLOSE, SUPERVISOR, S.CLOSED),
    (S.IN_PROGRESS, A.CLOSE, SUPERVISOR, ValueError),
    (S.IN_PROGRESS, A.CANCEL, SUPERVISOR, S.CANCELLED),
    (S.NEW, A.CANCEL, ENGINEER, PermissionError),
    (S.CLOSED, A.CANCEL, SUPERVISOR, ValueError),
    (S.RESOLVED, A.CANCEL, SUPERVISOR, ValueError),
    (S.CLOSED, A.REOPEN, SUPERVISOR, S.REOPENED),
    (S.RESOLVED, A.REOPEN, SUPERVISOR, S.REOPENED),
    (S.RESOLVED, A.REOPEN, ENGINEER, PermissionError),
    (S.CANCELLED, A.REOPEN, SUPERVISOR, ValueError),
    (S.CLOSED, A.ACCEPT, SUPERVISOR, ValueError),
]


@pytest.mark.parametrize(("state", "action", "actor", "expected"), CASES)
def test_transition(
    state: State, action: WorkAction, actor: Actor, expected: State | type[Exception]
) -> None:
    if isinstance(expected, State):
        assert next_state(state, action, actor, assignee="eng") is expected
    else:
        with pytest.raises(expected):
            next_state(state, action, actor, assignee="eng")


@pytest.mark.parametrize("held_from", [S.ACCEPTED, S.ON_SITE, S.IN_PROGRESS])
def test_resume_returns_to_where_it_was_held(held_from: State) -> None:
    assert next_state(S.ON_HOLD, A.RESUME, ENGINEER, assignee="eng",
                      held_from=held_from) is held_from


def test_unassigned_work_cannot_be_progressed_by_an_engineer() -> None:
    with pytest.raises(PermissionError):
        next_state(S.ACCEPTED, A.ARRIVE, ENGINEER, assignee=None)


def test_every_state_but_closed_ones_can_be_left() -> None:
    reachable_from = {s for rule in TRANSITIONS.values() for s in rule.sources}
    assert set(State) - reachable_from == {S.CANCELLED}
