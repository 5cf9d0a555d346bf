"""Patrol exceptions in the store: raise once (by dedupe key) and escalate by policy, close
with a comment, withdraw when later data disproves them, list. Closing or withdrawing the
last open exception behind an alarm resolves the escalation (the alarm clears).

Dedupe keys name what the exception is about, so a sweep that runs again, or a retried
upload, raises nothing new: ``tour:<id>:not_started``, ``tour:<id>:missed:<checkpoint>``,
``scan:<id>:<kind>``, ``batch:<guard>:<batch>:skew``, ``incident:<id>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.patrols.errors import PatrolConflict, PatrolInvalid, PatrolNotFound
from cloud.patrols.escalation import EscalationRequest, Resolution, Target
from cloud.patrols.model import ExceptionKind, ExceptionStatus, Severity
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.tables import PatrolCheckpoint, PatrolException, PatrolRoute, PatrolTour
from cloud.patrols.texts import texts

__all__ = ["Subject", "close_exception", "list_exceptions", "raise_exception", "withdraw"]

MAX_COMMENT = 2000


@dataclass(frozen=True, slots=True)
class Subject:
    """What an exception is about (any of them may be unknown)."""

    tour: PatrolTour | None = None
    checkpoint: PatrolCheckpoint | None = None
    scan_id: int | None = None
    incident_id: int | None = None
    guard: str | None = None


def _minutes(kind: ExceptionKind, detail: dict[str, Any]) -> int:
    seconds = detail.get("deviation_s", detail.get("skew_ms", 0) / 1000)
    return round(abs(float(seconds)) / 60)


def _text_fields(session: Session, subject: Subject, kind: ExceptionKind,
                 detail: dict[str, Any]) -> dict[str, object]:
    route = session.get(PatrolRoute, subject.tour.route_id) if subject.tour else None
    return {
        "route": route.name if route else "-",
        "checkpoint": subject.checkpoint.name if subject.checkpoint else "-",
        "guard": subject.guard or "-",
        "minutes": _minutes(kind, detail),
        "detail": str(detail.get("text", "")),
    }


def _code(subject: Subject) -> str:
    """What an escalation is about: the checkpoint's code, else the round's route."""
    if subject.checkpoint is not None:
        return subject.checkpoint.code
    return f"route-{subject.tour.route_id}" if subject.tour is not None else "-"


def raise_exception(
    session: Session, rt: PatrolRuntime, *, site: str, kind: ExceptionKind, key: str,
    now_ms: int, occurred_ms: int, subject: Subject, detail: dict[str, Any] | None = None,
    severity: Severity | None = None,
) -> PatrolException | None:
    """Record the exception unless one with ``key`` exists on ``site``; escalate it."""
    existing = session.scalar(select(PatrolException.id).where(
        PatrolException.site_id == site, PatrolException.dedupe_key == key))
    if existing is not None:
        return None
    detail = dict(detail or {})
    row = PatrolException(
        site_id=site, kind=kind.value, status=ExceptionStatus.OPEN.value, dedupe_key=key,
        tour_id=subject.tour.id if subject.tour else None,
        checkpoint_id=subject.checkpoint.id if subject.checkpoint else None,
        scan_id=subject.scan_id, incident_id=subject.incident_id, guard=subject.guard,
        occurred_ms=occurred_ms, detected_ms=now_ms, detail=detail)
    session.add(row)
    session.flush()
    rule = rt.policy.rule(kind, severity)
    if rule.target != "none":
        text_en, text_zh = texts(kind, **_text_fields(session, subject, kind, detail))
        ref = rt.escalation.escalate(session, EscalationRequest(
            target=rule.target, site=site, subject=_code(subject), kind=kind,
            priority=rule.priority,
            text_en=text_en, text_zh=text_zh, now_ms=now_ms, actor=subject.guard,
            detail={"patrol_exception": row.id, **detail}))
        if ref is not None:
            row.escalation, row.escalation_ref = rule.target, ref
    return row


def _get(session: Session, site: str, exception_id: int) -> PatrolException:
    row = session.get(PatrolException, exception_id)
    if row is None or row.site_id != site:
        raise PatrolNotFound("patrol exception", exception_id)
    return row


def close_exception(session: Session, rt: PatrolRuntime, site: str, exception_id: int, *,
                    comment: str, user: str, now_ms: int) -> PatrolException:
    """Close an open exception; a comment is required."""
    comment = comment.strip()
    if not comment:
        raise PatrolInvalid("comment", "a comment is needed to close an exception")
    if len(comment) > MAX_COMMENT:
        raise PatrolInvalid("comment", f"at most {MAX_COMMENT} characters")
    row = _get(session, site, exception_id)
    if row.status != ExceptionStatus.OPEN:
        raise PatrolConflict(f"patrol exception {exception_id} is {row.status}, not open")
    row.status, row.comment = ExceptionStatus.CLOSED.value, comment
    row.closed_by, row.closed_ms = user, now_ms
    _resolve(session, rt, row, now_ms)
    return row


def withdraw(session: Session, rt: PatrolRuntime, row: PatrolException, reason: str,
             now_ms: int) -> None:
    """Withdraw an open exception that later data disproved (the system closes it)."""
    if row.status == ExceptionStatus.OPEN:
        row.status, row.comment = ExceptionStatus.WITHDRAWN.value, reason
        row.closed_by, row.closed_ms = None, now_ms
        _resolve(session, rt, row, now_ms)


def _resolve(session: Session, rt: PatrolRuntime, row: PatrolException, now_ms: int) -> None:
    """Resolve ``row``'s escalation unless another open exception is behind it too."""
    if row.escalation not in ("alarm", "work_order") or row.escalation_ref is None:
        return
    others = session.scalar(select(PatrolException.id).where(
        PatrolException.site_id == row.site_id, PatrolException.id != row.id,
        PatrolException.escalation == row.escalation,
        PatrolException.escalation_ref == row.escalation_ref,
        PatrolException.status == ExceptionStatus.OPEN.value).limit(1))
    if others is not None:
        return
    subject = Subject(
        tour=session.get(PatrolTour, row.tour_id) if row.tour_id is not None else None,
        checkpoint=(session.get(PatrolCheckpoint, row.checkpoint_id)
                    if row.checkpoint_id is not None else None))
    target: Target = "alarm" if row.escalation == "alarm" else "work_order"
    rt.escalation.resolve(session, Resolution(
        target=target, site=row.site_id, subject=_code(subject), kind=ExceptionKind(row.kind),
        ref=row.escalation_ref, now_ms=now_ms))


def list_exceptions(
    session: Session, site: str, *, status: ExceptionStatus | None = None,
    kind: ExceptionKind | None = None, tour_id: int | None = None,
    start_ms: int | None = None, end_ms: int | None = None, limit: int = 500,
) -> list[PatrolException]:
    """The site's exceptions, newest first."""
    query = select(PatrolException).where(PatrolException.site_id == site)
    if status is not None:
        query = query.where(PatrolException.status == status.value)
    if kind is not None:
        query = query.where(PatrolException.kind == kind.value)
    if tour_id is not None:
        query = query.where(PatrolException.tour_id == tour_id)
    if start_ms is not None:
        query = query.where(PatrolException.occurred_ms >= start_ms)
    if end_ms is not None:
        query = query.where(PatrolException.occurred_ms < end_ms)
    query = query.order_by(PatrolException.detected_ms.desc(), PatrolException.id.desc())
    return list(session.scalars(query.limit(limit)))
