"""The ISA-18.2 alarm state machine and its timers: pure functions, no database.

=============  ==============  ==============  ===============
state          condition on    condition off   acknowledge
=============  ==============  ==============  ===============
normal         unack_active    normal          (refused)
unack_active   unack_active    unack_rtn       ack_active
ack_active     ack_active      normal          (refused)
unack_rtn      unack_active    unack_rtn       normal
=============  ==============  ==============  ===============

An alarm instance is *open* while its state is not ``normal``. Re-alarm and escalation
apply to ``unack_active`` alarms that are neither shelved, suppressed nor out of service:
an unacknowledged alarm re-annunciates every ``realarm`` interval of its priority and
climbs one escalation level after each delay of its priority's escalation ladder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cloud.alarms.tables import AlarmState

__all__ = ["Step", "acknowledge", "condition", "escalation_due", "is_open"]

S = AlarmState

_ON: Final = {S.NORMAL: S.UNACK_ACTIVE, S.UNACK_ACTIVE: S.UNACK_ACTIVE,
              S.ACK_ACTIVE: S.ACK_ACTIVE, S.UNACK_RTN: S.UNACK_ACTIVE}
_OFF: Final = {S.NORMAL: S.NORMAL, S.UNACK_ACTIVE: S.UNACK_RTN,
               S.ACK_ACTIVE: S.NORMAL, S.UNACK_RTN: S.UNACK_RTN}
_ACK: Final = {S.UNACK_ACTIVE: S.ACK_ACTIVE, S.UNACK_RTN: S.NORMAL}


@dataclass(frozen=True)
class Step:
    """The state after an input, and whether the input changed anything."""

    state: AlarmState
    changed: bool


def condition(state: AlarmState, active: bool) -> Step:
    """The alarm condition is reported ``active`` (raise) or not (clear) in ``state``."""
    after = (_ON if active else _OFF)[state]
    return Step(after, after != state)


def acknowledge(state: AlarmState) -> Step | None:
    """The state after an acknowledgement; ``None`` when there is nothing to acknowledge."""
    after = _ACK.get(state)
    return None if after is None else Step(after, True)


def is_open(state: AlarmState) -> bool:
    return state is not S.NORMAL


def escalation_due(ladder: Sequence[float], level: int, since_ms: int) -> int | None:
    """When an alarm at escalation ``level``, unacknowledged since ``since_ms``, climbs to
    the next level: ``since_ms`` plus the ladder's delay (seconds, cumulative from the
    raise) for the next level; ``None`` at the top of the ladder."""
    if level >= len(ladder):
        return None
    return since_ms + int(ladder[level] * 1000)
