"""The ISA-18.2 state machine, input by input (table-driven), and the escalation ladder."""

from __future__ import annotations

import pytest

from cloud.alarms.lifecycle import acknowledge, condition, escalation_due, is_open
from cloud.alarms.tables import AlarmState

N, UA, AA, UR = (AlarmState.NORMAL, AlarmState.UNACK_ACTIVE, AlarmState.ACK_ACTIVE,
                 AlarmState.UNACK_RTN)


@pytest.mark.parametrize(("state", "active", "after", "changed"), [
    (N, True, UA, True), (N, False, N, False),
    (UA, True, UA, False), (UA, False, UR, True),
    (AA, True, AA, False), (AA, False, N, True),
    (UR, True, UA, True), (UR, False, UR, False),
])
def test_condition(state: AlarmState, active: bool, after: AlarmState, changed: bool) -> None:
    step = condition(state, active)
    assert (step.state, step.changed) == (after, changed)


@pytest.mark.parametrize(("state", "after"), [(N, None), (UA, AA), (AA, None), (UR, N)])
def test_acknowledge(state: AlarmState, after: AlarmState | None) -> None:
    step = acknowledge(state)
    assert (None if step is None else step.state) == after


def test_only_normal_is_closed() -> None:
    assert [s for s in AlarmState if not is_open(s)] == [N]


@pytest.mark.parametrize(("level", "due"), [(0, 1_300_000), (1, 1_900_000), (2, None)])
def test_escalation_ladder_is_cumulative_from_the_raise(level: int, due: int | None) -> None:
    assert escalation_due([300.0, 900.0], level, 1_000_000) == due
