"""Completion and on-time figures of patrol rounds, per site, guard or site-local day.

Over rounds scheduled in ``[start, end)`` that are no longer open:

- ``due``: rounds counted (closed: completed, with exceptions, abandoned, missed);
- ``completed``: walked to the end (``completed`` + ``completed_with_exceptions``);
- ``on_time``: completed with no timing exception (late start or stop, early, out of
  order, too fast, overdue) that was not withdrawn;
- ``checkpoints_expected`` / ``checkpoints_visited``: required stops of those rounds, and
  those visited by an accepted scan;
- rates are ratios of ``due`` (``None`` when nothing was due).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.patrols.model import ExceptionKind, ExceptionStatus, ScanResult, TourStatus
from cloud.patrols.tables import PatrolException, PatrolRouteStop, PatrolScan, PatrolTour

__all__ = ["GroupBy", "TourStats", "tour_stats"]

GroupBy = Literal["site", "guard", "day"]
TIMING: Final = frozenset({ExceptionKind.LATE, ExceptionKind.EARLY, ExceptionKind.OUT_OF_ORDER,
                           ExceptionKind.TOO_FAST, ExceptionKind.TOUR_OVERDUE})
_DONE: Final = (TourStatus.COMPLETED.value, TourStatus.COMPLETED_WITH_EXCEPTIONS.value)


@dataclass
class TourStats:
    key: str
    due: int = 0
    completed: int = 0
    on_time: int = 0
    missed: int = 0
    abandoned: int = 0
    with_exceptions: int = 0
    checkpoints_expected: int = 0
    checkpoints_visited: int = 0

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    @property
    def completion_rate(self) -> float | None:
        return self._rate(self.completed, self.due)

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.on_time, self.due)

    @property
    def checkpoint_rate(self) -> float | None:
        return self._rate(self.checkpoints_visited, self.checkpoints_expected)


def tour_stats(session: Session, site: str, *, start_ms: int, end_ms: int, timezone: str,
               group_by: GroupBy = "site") -> list[TourStats]:
    tours = session.scalars(select(PatrolTour).where(
        PatrolTour.site_id == site, PatrolTour.scheduled_ms >= start_ms,
        PatrolTour.scheduled_ms < end_ms,
        PatrolTour.status.not_in([TourStatus.SCHEDULED.value, TourStatus.IN_PROGRESS.value])
    )).all()
    ids = [t.id for t in tours]
    timing_hit = set(session.scalars(select(PatrolException.tour_id).where(
        PatrolException.tour_id.in_(ids),
        PatrolException.kind.in_([k.value for k in TIMING]),
        PatrolException.status != ExceptionStatus.WITHDRAWN.value)))
    required = dict(session.execute(select(PatrolRouteStop.route_id, func.count()).where(
        PatrolRouteStop.required.is_(True)).group_by(PatrolRouteStop.route_id)).all())
    visited = dict(session.execute(
        select(PatrolScan.tour_id, func.count(func.distinct(PatrolScan.checkpoint_id)))
        .where(PatrolScan.tour_id.in_(ids), PatrolScan.result == ScanResult.ACCEPTED.value)
        .group_by(PatrolScan.tour_id)).all())
    tz = ZoneInfo(timezone)
    groups: dict[str, TourStats] = defaultdict(lambda: TourStats(""))
    for tour in tours:
        if group_by == "guard":
            key = tour.guard or "-"
        elif group_by == "day":
            key = datetime.fromtimestamp(tour.scheduled_ms / 1000, tz).date().isoformat()
        else:
            key = site
        row = groups[key]
        row.key = key
        row.due += 1
        done = tour.status in _DONE
        row.completed += done
        row.on_time += done and tour.id not in timing_hit
        row.missed += tour.status == TourStatus.MISSED
        row.abandoned += tour.status == TourStatus.ABANDONED
        row.with_exceptions += tour.status == TourStatus.COMPLETED_WITH_EXCEPTIONS
        row.checkpoints_expected += required.get(tour.route_id, 0)
        row.checkpoints_visited += min(visited.get(tour.id, 0), required.get(tour.route_id, 0))
    return [groups[k] for k in sorted(groups)]
