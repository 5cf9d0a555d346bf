"""What the API takes and gives for work orders, SLA policies and breaches (pydantic), and
how a :class:`~cloud.workorders.errors.WorkOrderError` becomes an API error answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from cloud.db.roles import Action
from cloud.workorders.errors import WorkOrderError
from cloud.workorders.queries import effective_deadlines, status_of
from cloud.workorders.sla import SlaStatus
from cloud.workorders.states import Actor, Priority, Source, State, WorkAction
from cloud.workorders.tables import SlaBreach, WorkOrder, WorkOrderEvent, WorkOrderPhoto

if TYPE_CHECKING:  # the API package imports this module's users at start-up
    from cloud.api.context import ApiContext
    from cloud.api.deps import SiteAccess
    from cloud.api.errors import ApiError

__all__ = [
    "BreachOut",
    "CommentIn",
    "EventOut",
    "FollowUpIn",
    "PhotoOut",
    "SlaPolicyIn",
    "SlaPolicyOut",
    "TransitionIn",
    "WorkOrderDetail",
    "WorkOrderIn",
    "WorkOrderOut",
    "actor_of",
    "api_error",
    "run",
    "work_order_out",
]

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Minutes = Annotated[int, Field(ge=1, le=525_600)]


T = TypeVar("T")


def api_error(exc: WorkOrderError) -> ApiError:
    from cloud.api.errors import ApiError

    return ApiError(exc.status, exc.code, exc.message, details=exc.details)


async def run(ctx: ApiContext, work: Callable[[Session], T]) -> T:
    """``ctx.run(work)`` with work-order errors answered as API errors."""
    try:
        return await ctx.run(work)
    except WorkOrderError as exc:
        raise api_error(exc) from None


def actor_of(access: SiteAccess) -> Actor:
    """The current user as an :class:`Actor` on the site of the request."""
    user = access.user
    return Actor(user.username, may_progress=user.can(Action.ACKNOWLEDGE, access.site),
                 may_manage=user.can(Action.MANAGE, access.site))


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkOrderIn(_In):
    """A work order created by hand."""

    category: str = Field(description="Trade: elevator, fire, water, electrical, access, "
                                      "hvac, general.")
    priority: Priority
    title: Annotated[str, Field(min_length=1, max_length=300)]
    description: Annotated[str, Field(max_length=4000)] = ""
    asset_id: int | None = None
    gateway: str | None = None
    device: str | None = None
    assignee: str | None = Field(None, description="Assigning needs `manage` on the site.")
    reference: Annotated[str | None, Field(max_length=128)] = None


class TransitionIn(_In):
    action: WorkAction
    comment: Annotated[str | None, Field(max_length=4000)] = Field(
        None, description="Required for hold (the reason), resolve, cancel and reopen.")
    assignee: str | None = Field(None, description="For `assign`.")


class CommentIn(_In):
    comment: Text


class FollowUpIn(_In):
    outcome: Literal["satisfied", "unsatisfied", "unreachable"]
    note: Annotated[str | None, Field(max_length=4000)] = None


class WorkOrderOut(BaseModel):
    id: int
    site: str
    category: str
    priority: Priority
    source: Source
    state: State
    title: str
    description: str
    asset_id: int | None
    gateway: str | None
    device: str | None
    alarm_id: int | None = Field(description="The alarm that raised it.")
    pm_plan_id: int | None
    reference: str | None
    assignee: str | None
    created_by: str | None
    created: int
    updated: int
    scheduled_start: int | None
    scheduled_end: int | None
    respond_due: int | None = Field(description="Deadlines as they stand now (UTC epoch ms); "
                                                "they move along while on hold.")
    arrive_due: int | None
    resolve_due: int | None
    responded: int | None
    arrived: int | None
    resolved: int | None
    closed: int | None
    on_hold_since: int | None
    hold_reason: str | None
    paused_ms: int
    sla_status: SlaStatus
    follow_up_due: int | None
    follow_up: int | None
    follow_up_by: str | None
    follow_up_outcome: str | None
    occurrences: int


def work_order_out(order: WorkOrder, now_ms: int) -> WorkOrderOut:
    due = effective_deadlines(order, now_ms)
    return WorkOrderOut(
        id=order.id, site=order.site_id, category=order.category,
        priority=Priority(order.priority), source=Source(order.source),
        state=State(order.state), title=order.title, description=order.description,
        asset_id=order.asset_id, gateway=order.gateway_id, device=order.device_id,
        alarm_id=order.alarm_id, pm_plan_id=order.pm_plan_id, reference=order.reference,
        assignee=order.assignee, created_by=order.created_by, created=order.created_ms,
        updated=order.updated_ms, scheduled_start=order.scheduled_start_ms,
        scheduled_end=order.scheduled_end_ms, respond_due=due.respond, arrive_due=due.arrive,
        resolve_due=due.resolve, responded=order.responded_ms, arrived=order.arrived_ms,
        resolved=order.resolved_ms, closed=order.closed_ms, on_hold_since=order.hold_since_ms,
        hold_reason=order.hold_reason, paused_ms=order.paused_ms,
        sla_status=status_of(order, now_ms), follow_up_due=order.follow_up_due_ms,
        follow_up=order.follow_up_ms, follow_up_by=order.follow_up_by,
        follow_up_outcome=order.follow_up_outcome, occurrences=order.occurrences)


class EventOut(BaseModel):
    id: int
    ts: int
    user: str | None
    action: str
    from_state: str | None
    to_state: str | None
    comment: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, e: WorkOrderEvent) -> EventOut:
        return cls(id=e.id, ts=e.ts_ms, user=e.username, action=e.action,
                   from_state=e.from_state, to_state=e.to_state, comment=e.comment,
                   detail=dict(e.detail or {}))


class PhotoOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    user: str | None
    uploaded: int
    url: str

    @classmethod
    def of(cls, p: WorkOrderPhoto, site: str) -> PhotoOut:
        return cls(id=p.id, filename=p.filename, content_type=p.content_type, size=p.size,
                   sha256=p.sha256, user=p.username, uploaded=p.uploaded_ms,
                   url=f"/api/v1/sites/{site}/work-orders/{p.work_order_id}/photos/{p.id}")


class BreachOut(BaseModel):
    id: int
    work_order_id: int
    site: str
    kind: str
    due: int
    detected: int
    met: int | None
    escalated: int | None
    escalated_via: str | None

    @classmethod
    def of(cls, b: SlaBreach) -> BreachOut:
        return cls(id=b.id, work_order_id=b.work_order_id, site=b.site_id, kind=b.kind,
                   due=b.due_ms, detected=b.detected_ms, met=b.met_ms,
                   escalated=b.escalated_ms, escalated_via=b.escalated_via)


class WorkOrderDetail(WorkOrderOut):
    history: list[EventOut]
    alarms: list[int] = Field(description="Ids of the alarm occurrences attached.")
    photos: list[PhotoOut]
    breaches: list[BreachOut]
    asset: dict[str, Any] | None = Field(description="`{id, name, asset_class}` or null.")


class SlaPolicyIn(_In):
    respond_minutes: Minutes | None
    arrive_minutes: Minutes | None
    resolve_minutes: Minutes | None
    follow_up_minutes: Minutes = 24 * 60


class SlaPolicyOut(SlaPolicyIn):
    category: str
    priority: Priority
    origin: Literal["site", "default"]
