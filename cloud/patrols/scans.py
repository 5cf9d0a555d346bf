"""Recording taps (one, or an offline batch) and incidents, idempotently.

Each scan carries a client-chosen ``scan_id``: a retried upload gets the stored answer back
(``repeated``) and records nothing twice. The batch's ``sent_ms`` (the phone's clock when
it sent the batch) against the server's clock measures the phone's clock offset; beyond
``patrols.skew_tolerance`` the batch raises one ``clock_skew`` exception and its scans are
placed at device time corrected by the offset. Within tolerance, device times are kept as
they are, however late the batch arrives.

A scan is processed in device-time order: the tag is identified and verified
(:mod:`cloud.patrols.tags`), then joined to its round (:mod:`cloud.patrols.matching`) and
judged there (:func:`~cloud.patrols.rules.assess_visit`). A round whose every stop is
visited closes by itself.

A batch reads the store a fixed number of times, not per scan: the scans already recorded
(by ``scan_id``), the checkpoints it names (locked), the rounds its time span could join with
their routes and visits. Its scan rows are written together when the transaction ends
(sooner only for a scan that raises an exception, which names the scan's row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from cloud.patrols.errors import PatrolInvalid, ReplayedTap, TapRejected
from cloud.patrols.findings import Subject, raise_exception
from cloud.patrols.matching import RoundIndex
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
from cloud.patrols.tags import TagIndex, Tap, assurance_of, identify
from cloud.patrols.tours import close_tour, get_tour, reconcile, start_tour

__all__ = ["IncidentIn", "ScanIn", "ScanOutcome", "record_incident", "record_scans"]

FUTURE_SLACK_MS: Final = 60_000
"""A device time may be this far ahead of the batch's own send time."""
_SCANS: Table = PatrolScan.__table__  # type: ignore[assignment]
"""Plain rows are inserted with Core (no ORM objects): a batch's rows in one statement."""


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


@dataclass
class _Batch:
    """What the scans of one batch share."""

    site: str
    guard: str
    batch_id: str | None
    now_ms: int
    skew_ms: int
    tags: TagIndex
    rounds: RoundIndex
    late: dict[int, PatrolTour] = field(default_factory=dict)
    """Closed rounds that received late scans (reconciled once, at the end)."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """Scan rows nothing refers to yet: written together by :meth:`write`."""

    def write(self, session: Session) -> None:
        """Insert the pending rows (one statement); before anything reads scans back or a
        row is flushed on its own, so row ids follow the order scans were processed in."""
        if self.pending:
            session.execute(insert(_SCANS), self.pending)
            self.pending.clear()

    def flush_row(self, session: Session, values: dict[str, Any]) -> PatrolScan:
        """A scan row written now (an exception is about to name it)."""
        self.write(session)
        row = PatrolScan(**values)
        session.add(row)
        session.flush()
        return row


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
    # The checkpoints first: their locks make a concurrent upload of the same taps wait,
    # then find its scans done (a retry) or its counters used (a replay).
    tags = TagIndex.load(session, site, (s.tap for s in scans))
    done = {row.scan_id: row for row in session.scalars(select(PatrolScan).where(
        PatrolScan.site_id == site, PatrolScan.scan_id.in_(ids)))}
    outcomes: dict[str, ScanOutcome] = {}
    fresh = [s for s in scans if s.scan_id not in done]
    if flagged and fresh:
        raise_exception(session, rt, site=site, kind=ExceptionKind.CLOCK_SKEW,
                        key=f"batch:{guard}:{batch_id or scans[0].scan_id}:skew",
                        now_ms=now_ms, occurred_ms=now_ms, subject=Subject(guard=guard),
                        detail={"skew_ms": skew, "tolerance_ms": rt.skew_tolerance_ms,
                                "scans": len(scans)})
    shift = skew if flagged else 0
    times = [s.device_ms + shift for s in fresh] or [now_ms]
    batch = _Batch(site, guard, batch_id, now_ms, skew, tags,
                   RoundIndex(session, site, min(times), max(times)))
    for scan in sorted(scans, key=lambda s: s.device_ms):
        if scan.scan_id in done:
            outcomes[scan.scan_id] = _stored(session, done[scan.scan_id])
        elif scan.scan_id not in outcomes:
            outcomes[scan.scan_id] = _record_one(session, rt, batch, scan,
                                                 scan.device_ms + shift)
    batch.write(session)
    for tour in batch.late.values():  # closed rounds that received late scans, once
        reconcile(session, rt, tour, now_ms)
    return [outcomes[i] for i in ids]


def _record_one(session: Session, rt: PatrolRuntime, batch: _Batch, scan: ScanIn,
                event_ms: int) -> ScanOutcome:
    row: dict[str, Any] = {
        "site_id": batch.site, "scan_id": scan.scan_id, "guard": batch.guard,
        "method": scan.tap.method.value, "device_ms": scan.device_ms, "server_ms": batch.now_ms,
        "event_ms": event_ms, "skew_ms": batch.skew_ms, "batch_id": batch.batch_id,
        "lat": scan.lat, "lon": scan.lon, "accuracy_m": scan.accuracy_m, "raw": scan.tap.raw(),
        "tour_id": None, "checkpoint_id": None, "assurance": None, "counter": None,
        "tag_uid": None, "result": ScanResult.ACCEPTED.value}
    try:
        checkpoint, reading = identify(batch.tags, rt, batch.site, scan.tap)
    except TapRejected as exc:
        return _rejected(session, rt, batch, row, exc)
    row["checkpoint_id"], row["tag_uid"] = checkpoint.id, checkpoint.tag_uid
    row["assurance"] = assurance_of(checkpoint.tag_type).value
    row["counter"] = reading.counter if reading is not None else None
    checkpoint.last_scan_ms = max(checkpoint.last_scan_ms or 0, event_ms)
    tour = (get_tour(session, batch.site, scan.tour_id) if scan.tour_id is not None
            else batch.rounds.match(checkpoint.id, batch.guard, event_ms))
    outcome = ScanOutcome(scan.scan_id, ScanResult.ACCEPTED, checkpoint.code, None, event_ms,
                          batch.skew_ms, row["assurance"])
    if tour is None or tour.status == TourStatus.ABANDONED:
        batch.pending.append(row)
        return outcome
    plan = batch.rounds.plan(tour.route_id)
    if plan.stop_for(checkpoint.id) is None:
        outcome.reason = "the checkpoint is not on this round's route"
        row["raw"] = {**row["raw"], "reason": outcome.reason}
        batch.pending.append(row)
        return outcome
    earlier = batch.rounds.visits(tour.id)
    closed = tour.status not in (TourStatus.SCHEDULED, TourStatus.IN_PROGRESS)
    if tour.status == TourStatus.SCHEDULED:
        start_tour(session, rt, tour, guard=batch.guard, at_ms=event_ms, now_ms=batch.now_ms)
    elif closed and tour.started_ms is None:  # a missed round walked offline: it started now
        tour.started_ms, tour.guard = event_ms, tour.guard or batch.guard
    assert tour.started_ms is not None
    visit = Visit(checkpoint.id, event_ms)
    findings = assess_visit(plan, tour.started_ms, earlier, visit,
                            max_speed=rt.settings.max_walk_speed)
    row["tour_id"] = outcome.tour_id = tour.id
    if any(f.kind is ExceptionKind.DUPLICATE_SCAN for f in findings):
        row["result"] = ScanResult.DUPLICATE.value
        outcome.result = ScanResult.DUPLICATE
    else:
        batch.rounds.add_visit(tour.id, visit)
    if findings:
        scan_row = batch.flush_row(session, row).id  # the exceptions name the scan's row
        for finding in findings:
            raise_exception(session, rt, site=batch.site, kind=finding.kind,
                            key=f"scan:{scan_row}:{finding.kind.value}", now_ms=batch.now_ms,
                            occurred_ms=event_ms, detail=finding.detail,
                            subject=Subject(tour=tour, checkpoint=checkpoint, scan_id=scan_row,
                                            guard=batch.guard))
            outcome.exceptions.append(finding.kind.value)
    else:
        batch.pending.append(row)
    if closed:
        batch.late[tour.id] = tour
    elif is_complete(plan, {v.checkpoint_id for v in earlier} | {checkpoint.id}):
        batch.write(session)  # closing reads the round's visits back
        close_tour(session, rt, tour, now_ms=batch.now_ms, finished_ms=event_ms)
    return outcome


def _rejected(session: Session, rt: PatrolRuntime, batch: _Batch, values: dict[str, Any],
              exc: TapRejected) -> ScanOutcome:
    kind = ExceptionKind(exc.kind)
    values["result"] = ScanResult(kind.value).value
    values["checkpoint_id"] = exc.checkpoint_id
    values["raw"] = {**values["raw"], "reason": str(exc)}
    if isinstance(exc, ReplayedTap):
        values["counter"] = exc.counter
    row = batch.flush_row(session, values)
    now_ms = batch.now_ms
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
