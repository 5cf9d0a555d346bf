"""Recording taps (one, or an offline batch) and incidents, idempotently.

Each scan carries a client-chosen ``scan_id``: a retried upload gets the stored answer back
(``repeated``) and records nothing twice. The batch's ``sent_ms`` (the phone's clock when
it sent the batch) against the server's clock measures the phone's clock offset; beyond
``patrols.skew_tolerance`` the batch raises one ``clock_skew`` exception and its scans are
placed at device time corrected by the offset. Within tolerance, device times are kept as
they are, however late the batch arrives.

A scan is processed in device-time order: the tag is identified and verified
(:mod:`cloud.patrols.tags`), then joined to its round (:func:`~cloud.patrols.tours.match_tour`)
and judged there (:func:`~cloud.patrols.rules.assess_visit`). A round whose every stop is
visited closes by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.patrols.errors import PatrolInvalid, ReplayedTap, TapRejected
from cloud.patrols.findings import Subject, raise_exception
from cloud.patrols.model import ExceptionKind, ScanResult, Severity, TourStatus
from cloud.patrols.rules import Visit, assess_visit, is_complete
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.tables import (
    PatrolCheckpoint,
    PatrolException,
    PatrolIncident,
    PatrolScan,
    PatrolTour,
)
from cloud.patrols.tags import Tap, assurance_of, identify
from cloud.patrols.tours import (
    close_tour,
    get_tour,
    load_plan,
    match_tour,
    reconcile,
    start_tour,
    visits,
)

__all__ = ["IncidentIn", "ScanIn", "ScanOutcome", "record_incident", "record_scans"]

FUTURE_SLACK_MS: Final = 60_000
"""A device time may be this far ahead of the batch's own send time."""


@dataclass(frozen=True, slots=True)
class ScanIn:
    scan_id: str
    tap: Tap
    device_ms: int
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    tour_id: int | None = None


@dataclass
class ScanOutcome:
    scan_id: str
    result: ScanResult
    checkpoint: str | None
    tour_id: int | None
    event_ms: int
    skew_ms: int | None
    assurance: str | None
    exceptions: list[str] = field(default_factory=list)
    repeated: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentIn:
    incident_id: str
    text: str
    severity: Severity
    device_ms: int
    photo_ref: str | None = None
    checkpoint: str | None = None
    tour_id: int | None = None
    lat: float | None = None
    lon: float | None = None


def _stored(session: Session, row: PatrolScan) -> ScanOutcome:
    checkpoint = session.get(PatrolCheckpoint, row.checkpoint_id) if row.checkpoint_id else None
    return ScanOutcome(row.scan_id, ScanResult(row.result), checkpoint.code if checkpoint else None,
                       row.tour_id, row.event_ms, row.skew_ms, row.assurance, repeated=True,
                       reason=row.raw.get("reason"))


def _check_times(scans: list[ScanIn], sent_ms: int, now_ms: int, max_age_ms: int) -> None:
    for index, scan in enumerate(scans):
        if scan.device_ms > sent_ms + FUTURE_SLACK_MS:
            raise PatrolInvalid(f"scans[{index}].device_time",
                                "is after the batch was sent (sent_at)")
        if scan.device_ms < now_ms - max_age_ms - abs(now_ms - sent_ms):
            raise PatrolInvalid(f"scans[{index}].device_time",
                                "is older than patrols.max_offline_age")


def record_scans(
    session: Session, rt: PatrolRuntime, *, site: str, guard: str, scans: list[ScanIn],
    sent_ms: int | None, batch_id: str | None, now_ms: int,
) -> list[ScanOutcome]:
    """Record ``scans`` (one tap or an offline batch) by ``guard``; one outcome per scan,
    in the order given."""
    if not scans:
        return []
    sent = sent_ms if sent_ms is not None else max(s.device_ms for s in scans)
    _check_times(scans, sent, now_ms, int(rt.settings.max_offline_age * 1000))
    skew = now_ms - sent
    flagged = abs(skew) > rt.skew_tolerance_ms
    ids = [s.scan_id for s in scans]
    done = {row.scan_id: row for row in session.scalars(select(PatrolScan).where(
        PatrolScan.site_id == site, PatrolScan.scan_id.in_(ids)))}
    outcomes: dict[str, ScanOutcome] = {}
    if flagged and any(s.scan_id not in done for s in scans):
        raise_exception(session, rt, site=site, kind=ExceptionKind.CLOCK_SKEW,
                        key=f"batch:{guard}:{batch_id or scans[0].scan_id}:skew",
                        now_ms=now_ms, occurred_ms=now_ms, subject=Subject(guard=guard),
                        detail={"skew_ms": skew, "tolerance_ms": rt.skew_tolerance_ms,
                                "scans": len(scans)})
    late: dict[int, PatrolTour] = {}
    for scan in sorted(scans, key=lambda s: s.device_ms):
        if scan.scan_id in done:
            outcomes[scan.scan_id] = _stored(session, done[scan.scan_id])
        elif scan.scan_id not in outcomes:
            event_ms = scan.device_ms + (skew if flagged else 0)
            outcomes[scan.scan_id] = _record_one(
                session, rt, site=site, guard=guard, scan=scan, event_ms=event_ms,
                skew_ms=skew, batch_id=batch_id, now_ms=now_ms, late=late)
    for tour in late.values():  # closed rounds that received late scans, once per batch
        reconcile(session, rt, tour, now_ms)
    return [outcomes[i] for i in ids]


def _record_one(session: Session, rt: PatrolRuntime, *, site: str, guard: str, scan: ScanIn,
                event_ms: int, skew_ms: int, batch_id: str | None, now_ms: int,
                late: dict[int, PatrolTour]) -> ScanOutcome:
    row = PatrolScan(site_id=site, scan_id=scan.scan_id, guard=guard, method=scan.tap.method.value,
                     device_ms=scan.device_ms, server_ms=now_ms, event_ms=event_ms,
                     skew_ms=skew_ms, batch_id=batch_id, lat=scan.lat, lon=scan.lon,
                     accuracy_m=scan.accuracy_m, raw=scan.tap.raw())
    try:
        with session.no_autoflush:  # earlier scans of the batch are written at the end
            checkpoint, reading = identify(session, rt, site, scan.tap)
    except TapRejected as exc:
        return _rejected(session, rt, row, exc, now_ms)
    row.checkpoint_id, row.assurance = checkpoint.id, assurance_of(checkpoint.tag_type).value
    row.result, row.tag_uid = ScanResult.ACCEPTED.value, checkpoint.tag_uid
    row.counter = reading.counter if reading is not None else None
    checkpoint.last_scan_ms = max(checkpoint.last_scan_ms or 0, event_ms)
    with session.no_autoflush:  # tours are judged on their objects' state (see match_tour)
        tour = (get_tour(session, site, scan.tour_id) if scan.tour_id is not None
                else match_tour(session, site, checkpoint.id, guard, event_ms))
    outcome = ScanOutcome(scan.scan_id, ScanResult.ACCEPTED, checkpoint.code, None, event_ms,
                          skew_ms, row.assurance)
    if tour is None or tour.status == TourStatus.ABANDONED:
        session.add(row)
        return outcome
    plan = load_plan(session, tour.route_id)
    if plan.stop_for(checkpoint.id) is None:
        session.add(row)
        outcome.reason = "the checkpoint is not on this round's route"
        row.raw = {**row.raw, "reason": outcome.reason}
        return outcome
    closed = tour.status not in (TourStatus.SCHEDULED, TourStatus.IN_PROGRESS)
    if tour.status == TourStatus.SCHEDULED:
        start_tour(session, rt, tour, guard=guard, at_ms=event_ms, now_ms=now_ms)
    elif closed and tour.started_ms is None:  # a missed round walked offline: it started now
        tour.started_ms, tour.guard = event_ms, tour.guard or guard
    earlier = visits(session, tour.id)
    assert tour.started_ms is not None
    findings = assess_visit(plan, tour.started_ms, earlier,
                            Visit(checkpoint.id, event_ms), max_speed=rt.settings.max_walk_speed)
    row.tour_id = outcome.tour_id = tour.id
    if any(f.kind is ExceptionKind.DUPLICATE_SCAN for f in findings):
        row.result = ScanResult.DUPLICATE.value
        outcome.result = ScanResult.DUPLICATE
    session.add(row)
    session.flush()
    for finding in findings:
        raise_exception(session, rt, site=site, kind=finding.kind,
                        key=f"scan:{row.id}:{finding.kind.value}", now_ms=now_ms,
                        occurred_ms=event_ms, detail=finding.detail,
                        subject=Subject(tour=tour, checkpoint=checkpoint, scan_id=row.id,
                                        guard=guard))
        outcome.exceptions.append(finding.kind.value)
    if closed:
        late[tour.id] = tour
    elif is_complete(plan, {v.checkpoint_id for v in earlier} | {checkpoint.id}):
        close_tour(session, rt, tour, now_ms=now_ms, finished_ms=event_ms)
    return outcome


def _rejected(session: Session, rt: PatrolRuntime, row: PatrolScan, exc: TapRejected,
              now_ms: int) -> ScanOutcome:
    kind = ExceptionKind(exc.kind)
    row.result = ScanResult(kind.value).value
    row.checkpoint_id = exc.checkpoint_id
    row.raw = {**row.raw, "reason": str(exc)}
    if isinstance(exc, ReplayedTap):
        row.counter = exc.counter
    session.add(row)
    session.flush()
    checkpoint = session.get(PatrolCheckpoint, exc.checkpoint_id) if exc.checkpoint_id else None
    raise_exception(session, rt, site=row.site_id, kind=kind, key=f"scan:{row.id}:{kind.value}",
                    now_ms=now_ms, occurred_ms=row.event_ms,
                    subject=Subject(checkpoint=checkpoint, scan_id=row.id, guard=row.guard),
                    detail={"reason": str(exc), "scan_id": row.scan_id})
    return ScanOutcome(row.scan_id, ScanResult(row.result), checkpoint.code if checkpoint else None,
                       None, row.event_ms, row.skew_ms, None, [kind.value], reason=str(exc))


def record_incident(session: Session, rt: PatrolRuntime, *, site: str, guard: str,
                    incident: IncidentIn, now_ms: int) -> tuple[PatrolIncident, str | None]:
    """Record a finding (idempotent by ``incident_id``); it becomes a work order by policy.
    Returns the incident and the escalation reference."""
    existing = session.scalar(select(PatrolIncident).where(
        PatrolIncident.site_id == site, PatrolIncident.incident_id == incident.incident_id))
    if existing is not None:
        return existing, _incident_ref(session, existing)
    checkpoint = None
    if incident.checkpoint is not None:
        checkpoint = session.scalar(select(PatrolCheckpoint).where(
            PatrolCheckpoint.site_id == site, PatrolCheckpoint.code == incident.checkpoint))
        if checkpoint is None:
            raise PatrolInvalid("checkpoint", f"no checkpoint {incident.checkpoint!r}")
    tour: PatrolTour | None = None
    if incident.tour_id is not None:
        tour = get_tour(session, site, incident.tour_id)
    row = PatrolIncident(site_id=site, incident_id=incident.incident_id,
                         tour_id=tour.id if tour else None,
                         checkpoint_id=checkpoint.id if checkpoint else None, guard=guard,
                         text=incident.text, photo_ref=incident.photo_ref,
                         severity=incident.severity.value, device_ms=incident.device_ms,
                         server_ms=now_ms, lat=incident.lat, lon=incident.lon)
    session.add(row)
    session.flush()
    exc = raise_exception(session, rt, site=site, kind=ExceptionKind.INCIDENT,
                          key=f"incident:{row.id}", now_ms=now_ms, occurred_ms=incident.device_ms,
                          subject=Subject(tour=tour, checkpoint=checkpoint, incident_id=row.id,
                                          guard=guard),
                          detail={"text": incident.text, "photo_ref": incident.photo_ref,
                                  "severity": incident.severity.value},
                          severity=incident.severity)
    return row, exc.escalation_ref if exc is not None else None


def _incident_ref(session: Session, row: PatrolIncident) -> str | None:
    return session.scalar(select(PatrolException.escalation_ref).where(
        PatrolException.incident_id == row.id))
