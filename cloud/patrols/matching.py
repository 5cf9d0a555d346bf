"""Joining a batch of taps to rounds, with the store read once per batch.

:class:`RoundIndex` loads, in a handful of queries, the rounds a tap of the batch could join
(by the batch's time span), which of their routes pass which checkpoints, each route's plan
and each round's visits; :meth:`RoundIndex.match` then applies the matching rule in memory:

the guard's (then anyone's) round in progress over the checkpoint, else a scheduled round
whose start window holds the tap, else a closed round (missed, or closed with exceptions)
whose time span holds it; among several, the guard's own, then the nearest in time.

The rounds are the session's own objects: a round that one scan of the batch starts or
closes is seen so by the next. Visits recorded by the batch are added with
:meth:`RoundIndex.add_visit`. An index lives for one batch (one transaction).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.patrols.model import TourStatus
from cloud.patrols.rules import RoutePlan, Visit
from cloud.patrols.tables import PatrolRouteStop, PatrolTour
from cloud.patrols.tours import MATCHABLE_CLOSED, due_ms, load_plan, start_by_ms, visits

__all__ = ["LOOK_AHEAD_MS", "LOOK_BACK_MS", "RoundIndex"]

LOOK_AHEAD_MS: Final = 86_400_000
"""A tap may join a round scheduled up to a day after it (an early start window)."""
LOOK_BACK_MS: Final = 2 * 86_400_000
"""…or one scheduled up to two days before it (a long round, a late offline upload)."""
_MATCHABLE: Final = (TourStatus.IN_PROGRESS.value, TourStatus.SCHEDULED.value,
                     *MATCHABLE_CLOSED)


class RoundIndex:
    """The rounds of ``site`` a tap between ``first_ms`` and ``last_ms`` could join."""

    def __init__(self, session: Session, site: str, first_ms: int, last_ms: int) -> None:
        self._session = session
        self._tours = list(session.scalars(select(PatrolTour).where(
            PatrolTour.site_id == site, PatrolTour.status.in_(_MATCHABLE),
            PatrolTour.scheduled_ms <= last_ms + LOOK_AHEAD_MS,
            PatrolTour.scheduled_ms >= first_ms - LOOK_BACK_MS)))
        self._routes_of: dict[int, set[int]] = defaultdict(set)
        routes = {t.route_id for t in self._tours}
        if routes:
            for route_id, checkpoint_id in session.execute(
                    select(PatrolRouteStop.route_id, PatrolRouteStop.checkpoint_id)
                    .where(PatrolRouteStop.route_id.in_(routes))):
                self._routes_of[checkpoint_id].add(route_id)
        self._plans: dict[int, RoutePlan] = {}
        self._visits: dict[int, list[Visit]] = {}

    def match(self, checkpoint_id: int, guard: str, event_ms: int) -> PatrolTour | None:
        """The round a tap of ``checkpoint_id`` at ``event_ms`` by ``guard`` belongs to."""
        on_route = self._routes_of.get(checkpoint_id, set())
        tours = [t for t in self._tours if t.route_id in on_route
                 and event_ms - LOOK_BACK_MS <= t.scheduled_ms <= event_ms + LOOK_AHEAD_MS]
        if not tours:
            return None

        def rank(tour: PatrolTour) -> tuple[int, int]:
            return (0 if tour.guard == guard else 1, abs(tour.scheduled_ms - event_ms))

        running = [t for t in tours if t.status == TourStatus.IN_PROGRESS
                   and (t.started_ms or 0) <= event_ms]
        if running:
            return min(running, key=rank)
        scheduled = [t for t in tours if t.status == TourStatus.SCHEDULED
                     and t.scheduled_ms - t.window_ms <= event_ms <= start_by_ms(t)]
        if scheduled:
            return min(scheduled, key=rank)
        closed = [t for t in tours if t.status in MATCHABLE_CLOSED
                  and t.scheduled_ms - t.window_ms <= event_ms <= due_ms(t)]
        return min(closed, key=rank) if closed else None

    def plan(self, route_id: int) -> RoutePlan:
        found = self._plans.get(route_id)
        if found is None:
            found = self._plans[route_id] = load_plan(self._session, route_id)
        return found

    def visits(self, tour_id: int) -> list[Visit]:
        """The round's accepted visits in the order they happened (a copy)."""
        found = self._visits.get(tour_id)
        if found is None:
            found = self._visits[tour_id] = visits(self._session, tour_id)
        return list(found)

    def add_visit(self, tour_id: int, visit: Visit) -> None:
        """An accepted visit of this batch joined the round (kept in time order; a visit
        at the same time as an earlier one comes after it, as the row ids would put it).
        Called after :meth:`visits` of the same round, before the visit's row is flushed."""
        seen = self._visits[tour_id]
        seen.append(visit)
        seen.sort(key=lambda v: v.at_ms)
