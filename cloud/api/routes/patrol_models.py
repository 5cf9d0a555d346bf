"""Request and answer bodies of the patrol API, and how stored rows become answers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.api.deps import IDENTIFIER_REGEX
from cloud.patrols.model import Severity, TagType, TourStatus
from cloud.patrols.scans import ScanOutcome
from cloud.patrols.tables import PatrolException, PatrolRoute, PatrolTour
from cloud.patrols.tours import due_ms, load_plan, start_by_ms, visits

__all__ = [
    "Code",
    "ExceptionOut",
    "IncidentBody",
    "ScanBatch",
    "ScanBody",
    "ScanResultOut",
    "StopProgress",
    "TourOut",
    "exception_out",
    "scan_result_out",
    "tour_out",
]

Code = Annotated[str, Field(pattern=IDENTIFIER_REGEX, max_length=64)]
Hex = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]*$", max_length=512)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScanBody(_In):
    """One tap. SUN: `checkpoint` + `picc_data` + `cmac` (+ `enc`); UID: `uid`; QR: `qr`."""

    scan_id: Code = Field(description="Chosen by the phone; a retry returns the first answer.")
    device_time: int = Field(description="When the tap happened, the phone's clock, UTC ms.")
    method: TagType
    checkpoint: Code | None = None
    picc_data: Hex | None = None
    cmac: Hex | None = None
    enc: Hex | None = None
    uid: Hex | None = None
    qr: Annotated[str | None, Field(max_length=128)] = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None
    accuracy_m: Annotated[float | None, Field(ge=0)] = None
    tour_id: int | None = None


class ScanBatch(_In):
    """One tap or an offline batch."""

    batch_id: Code | None = None
    sent_at: int | None = Field(
        None, description="The phone's clock when it sent this request (UTC ms): measures "
        "its offset. Omitted: the newest device_time stands in.")
    scans: Annotated[list[ScanBody], Field(min_length=1)]


class ScanResultOut(BaseModel):
    scan_id: str
    result: str = Field(description="`accepted`, `duplicate`, `unknown_tag`, `bad_mac`, "
                        "`replay`.")
    checkpoint: str | None
    tour_id: int | None
    time: int = Field(description="When the tap counts as having happened (UTC ms).")
    skew_ms: int | None
    assurance: str | None = Field(description="`strong` (SUN) or `weak` (UID, QR).")
    exceptions: list[str]
    repeated: bool
    reason: str | None


def scan_result_out(outcome: ScanOutcome) -> ScanResultOut:
    return ScanResultOut(
        scan_id=outcome.scan_id, result=outcome.result.value, checkpoint=outcome.checkpoint,
        tour_id=outcome.tour_id, time=outcome.event_ms, skew_ms=outcome.skew_ms,
        assurance=outcome.assurance, exceptions=outcome.exceptions, repeated=outcome.repeated,
        reason=outcome.reason)


class IncidentBody(_In):
    incident_id: Code
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    severity: Severity = Severity.MEDIUM
    device_time: int
    photo_ref: Annotated[str | None, Field(max_length=500)] = None
    checkpoint: Code | None = None
    tour_id: int | None = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None


class StopProgress(BaseModel):
    position: int
    checkpoint: str
    required: bool
    visited: int | None = Field(description="When it was visited (UTC ms), or null.")


class TourOut(BaseModel):
    id: int
    route: str
    route_name: str
    status: TourStatus
    guard: str | None
    scheduled: int
    start_by: int
    due: int
    started: int | None
    finished: int | None
    abandon_reason: str | None
    visited: int
    stops: list[StopProgress]
    open_exceptions: int


def tour_out(session: Session, tour: PatrolTour) -> TourOut:
    route = session.get(PatrolRoute, tour.route_id)
    assert route is not None
    plan = load_plan(session, tour.route_id)
    first: dict[int, int] = {}
    for visit in visits(session, tour.id):
        first.setdefault(visit.checkpoint_id, visit.at_ms)
    open_count = len(session.scalars(select(PatrolException.id).where(
        PatrolException.tour_id == tour.id, PatrolException.status == "open")).all())
    return TourOut(
        id=tour.id, route=route.code, route_name=route.name, status=TourStatus(tour.status),
        guard=tour.guard, scheduled=tour.scheduled_ms, start_by=start_by_ms(tour),
        due=due_ms(tour), started=tour.started_ms, finished=tour.finished_ms,
        abandon_reason=tour.abandon_reason, visited=len(first),
        stops=[StopProgress(position=s.position, checkpoint=s.code, required=s.required,
                            visited=first.get(s.checkpoint_id)) for s in plan.stops],
        open_exceptions=open_count)


class ExceptionOut(BaseModel):
    id: int
    kind: str
    status: str
    tour_id: int | None
    checkpoint_id: int | None
    scan_id: int | None
    guard: str | None
    occurred: int
    detected: int
    detail: dict[str, Any]
    escalation: str | None
    escalation_ref: str | None
    comment: str | None
    closed_by: str | None
    closed: int | None


def exception_out(row: PatrolException) -> ExceptionOut:
    return ExceptionOut(
        id=row.id, kind=row.kind, status=row.status, tour_id=row.tour_id,
        checkpoint_id=row.checkpoint_id, scan_id=row.scan_id, guard=row.guard,
        occurred=row.occurred_ms, detected=row.detected_ms, detail=row.detail,
        escalation=row.escalation, escalation_ref=row.escalation_ref, comment=row.comment,
        closed_by=row.closed_by, closed=row.closed_ms)
