"""Taking a transition: the state machine of :mod:`cloud.workorders.states` applied to a
stored work order, with its SLA bookkeeping (milestones, pauses, late milestones), the
open key, the history and the audit log."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.alarms.commits import forget
from cloud.workorders.breaches import (
    deadlines_of,
    milestones_of,
    record_late_milestones,
)
from cloud.workorders.errors import (
    Conflict,
    InvalidInput,
    NotPermitted,
    TransitionRefused,
)
from cloud.workorders.history import record_event
from cloud.workorders.policies import site_terms
from cloud.workorders.service import COVERAGE, check_assignee, get_work_order, open_key_for
from cloud.workorders.sla import deadlines, shift, terms_for
from cloud.workorders.states import TRANSITIONS, Actor, Source, State, WorkAction, next_state
from cloud.workorders.tables import WorkOrder

__all__ = ["transition"]

_MINUTE_MS = 60_000


def _apply(session: Session, order: WorkOrder, action: WorkAction, target: State,
           now_ms: int, comment: str | None) -> None:
    """Milestones, pauses and keys that go with reaching ``target``."""
    if action is WorkAction.ACCEPT and order.responded_ms is None:
        order.responded_ms = now_ms
    elif action is WorkAction.ARRIVE and order.arrived_ms is None:
        order.arrived_ms = now_ms
    elif action is WorkAction.START:
        order.responded_ms = order.responded_ms or now_ms
        order.arrived_ms = order.arrived_ms or now_ms
    elif action is WorkAction.HOLD:
        order.held_from = order.state
        order.hold_since_ms = now_ms
        order.hold_reason = comment
    elif action in (WorkAction.RESUME, WorkAction.CANCEL) and order.hold_since_ms is not None:
        paused = max(0, now_ms - order.hold_since_ms)
        due = shift(deadlines_of(order), milestones_of(order), paused)
        order.respond_due_ms, order.arrive_due_ms, order.resolve_due_ms = (
            due.respond, due.arrive, due.resolve)
        order.paused_ms += paused
        order.hold_since_ms = None
        order.held_from = None
        order.hold_reason = None
    if action is WorkAction.RESOLVE:
        order.resolved_ms = now_ms
        order.open_key = None
        if order.source != Source.PM:
            order.follow_up_due_ms = now_ms + order.follow_up_minutes * _MINUTE_MS
    elif action is WorkAction.CLOSE:
        order.closed_ms = now_ms
    elif action is WorkAction.CANCEL:
        order.open_key = None
        order.closed_ms = now_ms
    elif action is WorkAction.REOPEN:
        _reopen(session, order, now_ms)


def _reopen(session: Session, order: WorkOrder, now_ms: int) -> None:
    """Back to work: the resolution clock restarts, the follow-up is due again."""
    terms = terms_for(order.category, order.priority, site_terms(session, order.site_id))
    order.resolve_due_ms = deadlines(now_ms, terms).resolve
    order.resolved_ms = None
    order.closed_ms = None
    order.follow_up_due_ms = order.follow_up_ms = None
    order.follow_up_by = order.follow_up_outcome = order.follow_up_note = None
    if order.alarm_key is not None:
        order.open_key = open_key_for(order.site_id, order.asset_id, order.gateway_id,
                                      order.device_id, order.alarm_key)


def transition(
    session: Session, work_order_id: int, action: WorkAction | str, *, actor: Actor,
    now_ms: int, site: str | None = None, comment: str | None = None,
    assignee: str | None = None,
) -> WorkOrder:
    """Take ``action`` on the work order for ``actor`` and record it.

    ``assign`` needs ``assignee`` (a user who may work on the site); ``hold``, ``resolve``,
    ``cancel`` and ``reopen`` need a ``comment`` (the reason or what was done); ``close``
    needs the follow-up of a repair to be on record. Raises :class:`NotFound`,
    :class:`NotPermitted`, :class:`TransitionRefused`, :class:`InvalidInput` or
    :class:`Conflict` (reopening while another open work order holds the alarm key).
    """
    try:
        action = WorkAction(action)
    except ValueError:
        known = ", ".join(a.value for a in WorkAction)
        raise InvalidInput("action", f"unknown action {action!r}; one of: {known}") from None
    order = get_work_order(session, work_order_id, site=site, lock=True)
    comment = comment.strip() if comment else None
    state = State(order.state)
    try:
        target = next_state(state, action, actor, assignee=order.assignee,
                            held_from=State(order.held_from) if order.held_from else None)
    except PermissionError as exc:
        raise NotPermitted(str(exc)) from None
    except ValueError as exc:
        raise TransitionRefused(str(exc), details={"state": state.value,
                                                   "action": action.value}) from None
    if TRANSITIONS[action].needs_comment and not comment:
        raise InvalidInput("comment", f"{action.value} needs a comment (the reason or what "
                                      "was done)")
    if action is WorkAction.ASSIGN:
        if not assignee:
            raise InvalidInput("assignee", "assign needs an assignee")
        order.assignee = check_assignee(session, order.site_id, assignee)
    if (action is WorkAction.CLOSE and order.follow_up_due_ms is not None
            and order.follow_up_ms is None):
        raise Conflict("record the follow-up (回访) before closing",
                       details={"follow_up_due": order.follow_up_due_ms})
    _apply(session, order, action, target, now_ms, comment)
    order.state = target.value
    forget(session, COVERAGE)  # maintenance coverage may have begun or ended
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict("another open work order exists for this asset and alarm",
                       details={"open_key": order.open_key}) from exc
    record_late_milestones(session, order, now_ms)
    record_event(session, order, action.value, user=actor.username, now_ms=now_ms,
                 from_state=state.value, to_state=target.value, comment=comment,
                 detail={"assignee": order.assignee} if action is WorkAction.ASSIGN else None)
    session.flush()
    return order
