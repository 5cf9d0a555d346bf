"""Creating work orders and everything done to them besides transitions: attaching alarm
occurrences, comments, follow-ups (回访). Other modules call :func:`create_work_order`
(alarm policy, patrol findings, maintenance plans, the API).

Deadlines are computed at creation from the SLA terms for ``(category, priority)`` at the
site (:mod:`cloud.workorders.policies`); a maintenance work order with a scheduled window
has only a resolution deadline: the end of its window. Nothing here reads a clock.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms.lookups import insert_unless_taken, memoized
from cloud.db.errors import UnknownSite, UnknownUser
from cloud.db.models import Site
from cloud.db.roles import Action
from cloud.db.users import can, get_user
from cloud.workorders.errors import Conflict, InvalidInput, NotFound, TransitionRefused
from cloud.workorders.history import record_event
from cloud.workorders.policies import check_category, check_priority, site_terms
from cloud.workorders.sla import Deadlines, deadlines, terms_for
from cloud.workorders.states import SOURCES, Source, State
from cloud.workorders.tables import Asset, WorkOrder, WorkOrderAlarm

__all__ = [
    "FOLLOW_UP_OUTCOMES",
    "add_comment",
    "attach_alarm",
    "check_assignee",
    "create_work_order",
    "get_work_order",
    "open_key_for",
    "record_follow_up",
]

TITLE_MAX: Final = 300
COVERAGE, ASSET_SITE = "covered", "asset_site"
"""Memo key kinds: maintenance coverage (:mod:`cloud.workorders.from_alarms`), an asset's
site."""
FOLLOW_UP_OUTCOMES: Final = ("satisfied", "unsatisfied", "unreachable")


def open_key_for(site: str, asset_id: int | None, gateway: str | None, device: str | None,
                 alarm_key: str) -> str:
    """The key that allows one open work order per (asset, alarm), or per (device, alarm)
    when no asset is linked."""
    if asset_id is not None:
        return f"asset:{asset_id}|{alarm_key}"
    return f"device:{site}/{gateway or '-'}/{device or '-'}|{alarm_key}"


def get_work_order(session: Session, work_order_id: int, *, site: str | None = None,
                   lock: bool = False) -> WorkOrder:
    """The work order (of ``site`` when given); :class:`NotFound` otherwise."""
    query = select(WorkOrder).where(WorkOrder.id == work_order_id)
    if lock:
        query = query.with_for_update()
    order = session.scalars(query).one_or_none()
    if order is None or (site is not None and order.site_id != site):
        raise NotFound("work_order", work_order_id)
    return order


def check_assignee(session: Session, site: str, username: str) -> str:
    """``username`` normalised, if that user may progress work on ``site``."""
    try:
        user = get_user(session, username)
    except UnknownUser:
        raise InvalidInput("assignee", f"no user {username!r}") from None
    if not can(user, Action.ACKNOWLEDGE, site):
        raise InvalidInput("assignee", f"{user.username!r} may not work on site {site!r}")
    return user.username


def _check_asset(session: Session, site: str, asset_id: int | None) -> None:
    if asset_id is None:
        return

    def load() -> str | None:
        asset = session.get(Asset, asset_id)
        return None if asset is None else asset.site_id

    if memoized(session, (ASSET_SITE, asset_id), load) != site:
        raise NotFound("asset", asset_id)


def create_work_order(
    session: Session, *, site: str, category: str, priority: str, title: str,
    description: str = "", source: str, now_ms: int, actor: str | None,
    asset_id: int | None = None, alarm_id: int | None = None, alarm_key: str | None = None,
    gateway: str | None = None, device: str | None = None, reference: str | None = None,
    assignee: str | None = None, pm_plan_id: int | None = None,
    pm_occurrence: int | None = None, scheduled_start_ms: int | None = None,
    scheduled_end_ms: int | None = None,
) -> WorkOrder:
    """A new work order (``new``, or ``assigned`` when ``assignee`` is given).

    ``actor`` is the username of whoever creates it (``None``: the system). With
    ``alarm_key`` the work order takes the open key of ``(asset, alarm_key)`` (or
    ``(device, alarm_key)``): a second open one for that key raises :class:`Conflict`
    (:func:`cloud.workorders.from_alarms` attaches to the open one instead).
    Raises :class:`InvalidInput` naming the field that is wrong.
    """
    if not memoized(session, ("site_exists", site), lambda: session.get(Site, site) is not None):
        raise UnknownSite(site)
    check_category(category)
    check_priority(priority)
    if source not in SOURCES:
        raise InvalidInput("source", f"unknown source {source!r}; one of: {', '.join(SOURCES)}")
    title = title.strip()
    if not title or len(title) > TITLE_MAX:
        raise InvalidInput("title", f"a title needs 1 to {TITLE_MAX} characters")
    if (scheduled_start_ms is None) != (scheduled_end_ms is None) or (
            scheduled_start_ms is not None and scheduled_end_ms is not None
            and scheduled_end_ms <= scheduled_start_ms):
        raise InvalidInput("scheduled_end", "a schedule needs a start and a later end")
    _check_asset(session, site, asset_id)
    if assignee is not None:
        assignee = check_assignee(session, site, assignee)
    terms = terms_for(category, priority, site_terms(session, site))
    due = deadlines(now_ms, terms)
    if source == Source.PM and scheduled_end_ms is not None:
        due = Deadlines(None, None, scheduled_end_ms)
    order = WorkOrder(
        site_id=site, category=category, priority=priority, source=source, title=title,
        description=description, state=State.ASSIGNED if assignee else State.NEW,
        asset_id=asset_id, gateway_id=gateway, device_id=device, alarm_id=alarm_id,
        alarm_key=alarm_key,
        open_key=None if alarm_key is None else open_key_for(site, asset_id, gateway, device,
                                                             alarm_key),
        pm_plan_id=pm_plan_id, pm_occurrence=pm_occurrence, reference=reference,
        assignee=assignee, created_by=actor, created_ms=now_ms, updated_ms=now_ms,
        scheduled_start_ms=scheduled_start_ms, scheduled_end_ms=scheduled_end_ms,
        respond_due_ms=due.respond, arrive_due_ms=due.arrive, resolve_due_ms=due.resolve,
        paused_ms=0, follow_up_minutes=terms.follow_up_minutes, occurrences=1,
    )
    inserted = insert_unless_taken(session, order)
    if inserted is None:
        raise Conflict("an open work order already exists for this asset and alarm"
                       if alarm_key else "a work order for this plan and due date exists",
                       details={"open_key": order.open_key})
    order = inserted
    if alarm_id is not None:
        session.add(WorkOrderAlarm(work_order_id=order.id, alarm_id=alarm_id,
                                   attached_ms=now_ms))
    record_event(session, order, "create", user=actor, now_ms=now_ms, to_state=order.state,
                 detail={"source": source, "category": category, "priority": priority,
                         "asset_id": asset_id, "alarm_id": alarm_id, "assignee": assignee})
    session.flush()
    return order


def attach_alarm(session: Session, order: WorkOrder, alarm_id: int, *, now_ms: int) -> bool:
    """Attach a later occurrence (``alarm_id``) to ``order``; ``False`` if it already was
    (the occurrence count still goes up: a reactivation is an occurrence too)."""
    order.occurrences += 1
    existing = session.get(WorkOrderAlarm, (order.id, alarm_id))
    if existing is None:
        session.add(WorkOrderAlarm(work_order_id=order.id, alarm_id=alarm_id,
                                   attached_ms=now_ms))
    record_event(session, order, "occurrence", user=None, now_ms=now_ms,
                 detail={"alarm_id": alarm_id, "occurrences": order.occurrences})
    session.flush()
    return existing is None


def add_comment(session: Session, order: WorkOrder, comment: str, *, user: str | None,
                now_ms: int) -> None:
    comment = comment.strip()
    if not comment:
        raise InvalidInput("comment", "a comment cannot be empty")
    record_event(session, order, "comment", user=user, now_ms=now_ms, comment=comment)
    session.flush()


def record_follow_up(
    session: Session, order: WorkOrder, *, outcome: str, note: str | None, user: str | None,
    now_ms: int,
) -> None:
    """Record the 回访 of a resolved work order (needed before it can be closed)."""
    if order.state != State.RESOLVED:
        raise TransitionRefused(f"a follow-up is recorded after resolution; the work order "
                                f"is {order.state}")
    if order.follow_up_ms is not None:
        raise Conflict("the follow-up is already recorded")
    if outcome not in FOLLOW_UP_OUTCOMES:
        raise InvalidInput("outcome", f"one of: {', '.join(FOLLOW_UP_OUTCOMES)}")
    order.follow_up_ms = now_ms
    order.follow_up_by = user
    order.follow_up_outcome = outcome
    order.follow_up_note = note
    record_event(session, order, "follow_up", user=user, now_ms=now_ms, comment=note,
                 detail={"outcome": outcome, "due": order.follow_up_due_ms})
    session.flush()
