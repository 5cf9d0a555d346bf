"""Work-order states, the transition table and who may take each transition (pure).

=========  ===========================================  ==========  ===========  =========
action     from                                         to          who          needs
=========  ===========================================  ==========  ===========  =========
assign     new, assigned, accepted, reopened             assigned    manage       assignee
accept     assigned                                     accepted    assignee
arrive     accepted                                     on_site     assignee
start      accepted, on_site                            in_progress assignee
hold       accepted, on_site, in_progress               on_hold     assignee     comment
resume     on_hold                                      (held from) assignee
resolve    on_site, in_progress                         resolved    assignee     comment
close      resolved (after the follow-up)               closed      manage
cancel     new, assigned, accepted, on_site,            cancelled   manage       comment
           in_progress, on_hold, reopened
reopen     resolved, closed                             reopened    manage       comment
=========  ===========================================  ==========  ===========  =========

"assignee" means: the engineer the work order is assigned to (holding ``acknowledge`` on
the site), or anyone who may ``manage`` the site (supervisors act for their engineers).
The system itself (policies, plans, escalation) may do everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "BREACH_KINDS",
    "CLOSED_STATES",
    "OPEN_KEY_STATES",
    "PRIORITIES",
    "SOURCES",
    "STATES",
    "TRANSITIONS",
    "Actor",
    "Priority",
    "Source",
    "State",
    "Transition",
    "Who",
    "WorkAction",
    "next_state",
]


class State(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    ON_SITE = "on_site"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REOPENED = "reopened"


class Priority(StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"
    NORMAL = "normal"
    LOW = "low"


class Source(StrEnum):
    ALARM = "alarm"
    PATROL = "patrol"
    PM = "pm"
    MANUAL = "manual"


class WorkAction(StrEnum):
    ASSIGN = "assign"
    ACCEPT = "accept"
    ARRIVE = "arrive"
    START = "start"
    HOLD = "hold"
    RESUME = "resume"
    RESOLVE = "resolve"
    CLOSE = "close"
    CANCEL = "cancel"
    REOPEN = "reopen"


class Who(StrEnum):
    ASSIGNEE = "assignee"
    MANAGER = "manager"


STATES: Final = tuple(s.value for s in State)
PRIORITIES: Final = tuple(p.value for p in Priority)
SOURCES: Final = tuple(s.value for s in Source)
BREACH_KINDS: Final = ("respond", "arrive", "resolve", "follow_up")
CLOSED_STATES: Final = frozenset({State.CLOSED, State.CANCELLED})
OPEN_KEY_STATES: Final = frozenset(State) - CLOSED_STATES - {State.RESOLVED}
"""States in which a work order raised from an alarm takes that alarm's later occurrences."""
PRIORITY_RANK: Final = {p: n for n, p in enumerate(PRIORITIES)}


@dataclass(frozen=True)
class Transition:
    sources: frozenset[State]
    target: State | None
    """``None``: back to the state the work order was held from."""
    who: Who
    needs_comment: bool = False


_WORKING: Final = frozenset({State.ACCEPTED, State.ON_SITE, State.IN_PROGRESS})

TRANSITIONS: Final[Mapping[WorkAction, Transition]] = {
    WorkAction.ASSIGN: Transition(
        frozenset({State.NEW, State.ASSIGNED, State.ACCEPTED, State.REOPENED}),
        State.ASSIGNED, Who.MANAGER),
    WorkAction.ACCEPT: Transition(frozenset({State.ASSIGNED}), State.ACCEPTED, Who.ASSIGNEE),
    WorkAction.ARRIVE: Transition(frozenset({State.ACCEPTED}), State.ON_SITE, Who.ASSIGNEE),
    WorkAction.START: Transition(
        frozenset({State.ACCEPTED, State.ON_SITE}), State.IN_PROGRESS, Who.ASSIGNEE),
    WorkAction.HOLD: Transition(_WORKING, State.ON_HOLD, Who.ASSIGNEE, needs_comment=True),
    WorkAction.RESUME: Transition(frozenset({State.ON_HOLD}), None, Who.ASSIGNEE),
    WorkAction.RESOLVE: Transition(
        frozenset({State.ON_SITE, State.IN_PROGRESS}), State.RESOLVED, Who.ASSIGNEE,
        needs_comment=True),
    WorkAction.CLOSE: Transition(frozenset({State.RESOLVED}), State.CLOSED, Who.MANAGER),
    WorkAction.CANCEL: Transition(
        frozenset(State) - CLOSED_STATES - {State.RESOLVED}, State.CANCELLED, Who.MANAGER,
        needs_comment=True),
    WorkAction.REOPEN: Transition(
        frozenset({State.RESOLVED, State.CLOSED}), State.REOPENED, Who.MANAGER,
        needs_comment=True),
}


@dataclass(frozen=True)
class Actor:
    """Who acts, with the rights that matter here (from :mod:`cloud.db.roles` on the site).

    ``username=None`` is the system itself (policies, plans, escalation).
    """

    username: str | None
    may_progress: bool = False
    """Holds ``acknowledge`` on the site: may progress work assigned to them."""
    may_manage: bool = False
    """Holds ``manage`` on the site: assigns, closes, cancels, reopens, acts for anyone."""

    @classmethod
    def system(cls) -> Actor:
        return cls(None, may_progress=True, may_manage=True)

    def allowed(self, who: Who, assignee: str | None) -> bool:
        if self.may_manage:
            return True
        if who is Who.MANAGER:
            return False
        return self.may_progress and assignee is not None and assignee == self.username


def next_state(
    state: State, action: WorkAction, actor: Actor, *, assignee: str | None,
    held_from: State | None = None,
) -> State:
    """The state ``action`` leads to from ``state`` for ``actor``.

    Raises ``PermissionError`` when the actor may not take it, ``ValueError`` when the
    action does not apply in ``state`` (both with a message for people).
    """
    rule = TRANSITIONS[action]
    if state not in rule.sources:
        allowed = ", ".join(sorted(s.value for s in rule.sources))
        raise ValueError(f"cannot {action.value} a work order that is {state.value} "
                         f"(only from: {allowed})")
    if not actor.allowed(rule.who, assignee):
        if rule.who is Who.MANAGER:
            raise PermissionError(f"only a supervisor may {action.value} work orders")
        raise PermissionError(f"only the assignee or a supervisor may {action.value} "
                              "this work order")
    if rule.target is not None:
        return rule.target
    return held_from if held_from is not None else State.IN_PROGRESS
