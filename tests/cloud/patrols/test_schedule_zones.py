"""Rounds planned by the service (schedules in the store, the sweep run every few hours as
the periodic job would) in site-local time, on SQLite and PostgreSQL:

- Europe/Berlin, spring forward (30 March 2025, 02:00 → 03:00): fixed times keep their wall
  clock; 02:30 does not exist that night and is skipped; the day has two rounds, not three.
- Europe/Berlin, fall back (26 October 2025, 03:00 → 02:00): hourly rounds; the repeated
  hour is planned once, at its first occurrence.
- America/New_York, spring forward (9 March 2025): hourly rounds skip 02:00, and are an hour
  apart in real time across the jump; fall back (2 November 2025): 01:30 is planned once.
- Asia/Shanghai (no daylight saving, UTC+8): the ``key_area`` preset gives eight rounds a
  local day; weekdays are judged by the local date, not the UTC one.

Expected times are written out in UTC, not computed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cloud.db import Database
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.stats import tour_stats
from cloud.patrols.tables import PatrolTour
from cloud.patrols.tours import sweep
from tests.cloud.patrols.support import route_with_schedule, runtime, site_with_tags

SITE = "tower"
HOUR_MS = 3_600_000


def at(zone: str, text: str) -> int:
    """``YYYY-MM-DD HH:MM`` wall-clock time in ``zone`` as UTC epoch ms."""
    local = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(zone))
    return int(local.timestamp() * 1000)


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def sweep_through(db: Database, rt: PatrolRuntime, start_ms: int, end_ms: int) -> int:
    """The sweep every three hours from ``start_ms`` to ``end_ms`` (as the periodic job);
    how many rounds it planned."""
    planned = 0
    for now_ms in range(start_ms, end_ms + 1, 3 * HOUR_MS):
        with db.transaction() as session:
            planned += sweep(session, rt, SITE, now_ms).planned
    return planned


def planned(db: Database, start_ms: int, end_ms: int) -> list[str]:
    with db.transaction() as session:
        return [utc(ms) for ms in session.scalars(
            select(PatrolTour.scheduled_ms).where(PatrolTour.scheduled_ms >= start_ms,
                                                  PatrolTour.scheduled_ms < end_ms)
            .order_by(PatrolTour.scheduled_ms))]


class Case(NamedTuple):
    zone: str
    recurrence: dict[str, object] | None
    """``None``: the ``key_area`` preset."""
    created: str
    first: str
    last: str
    expected: list[str]
    """Rounds scheduled from ``first`` to ``last`` (site-local), in UTC."""


CASES = {
    "berlin-spring-forward": Case(
        "Europe/Berlin", {"times": ["01:30", "02:30", "22:00"]},
        "2025-03-28 12:00", "2025-03-29 00:00", "2025-04-01 00:00",
        ["2025-03-29T00:30Z", "2025-03-29T01:30Z", "2025-03-29T21:00Z",   # CET, UTC+1
         "2025-03-30T00:30Z", "2025-03-30T20:00Z",                        # 02:30 skipped
         "2025-03-30T23:30Z", "2025-03-31T00:30Z", "2025-03-31T20:00Z"]),  # CEST, UTC+2
    "berlin-fall-back": Case(
        "Europe/Berlin", {"every_min": 60, "from": "00:00", "to": "04:00"},
        "2025-10-25 12:00", "2025-10-26 00:00", "2025-10-27 00:00",
        ["2025-10-25T22:00Z", "2025-10-25T23:00Z", "2025-10-26T00:00Z",   # 00, 01, 02 CEST
         "2025-10-26T02:00Z"]),                                           # 03 CET
    "new-york-spring-forward": Case(
        "America/New_York", {"every_min": 60, "from": "00:00", "to": "05:00"},
        "2025-03-08 12:00", "2025-03-09 00:00", "2025-03-10 00:00",
        ["2025-03-09T05:00Z", "2025-03-09T06:00Z",                        # 00, 01 EST
         "2025-03-09T07:00Z", "2025-03-09T08:00Z"]),                      # 03, 04 EDT
    "new-york-fall-back": Case(
        "America/New_York", {"times": ["01:30"]},
        "2025-10-31 12:00", "2025-11-01 00:00", "2025-11-04 00:00",
        ["2025-11-01T05:30Z", "2025-11-02T05:30Z",                        # EDT, first 01:30
         "2025-11-03T06:30Z"]),                                           # EST
    "shanghai-key-area-preset": Case(
        "Asia/Shanghai", None,
        "2025-06-14 12:00", "2025-06-15 00:00", "2025-06-16 00:00",
        ["2025-06-14T16:00Z", "2025-06-14T19:00Z", "2025-06-14T22:00Z", "2025-06-15T01:00Z",
         "2025-06-15T04:00Z", "2025-06-15T07:00Z", "2025-06-15T10:00Z", "2025-06-15T13:00Z"]),
    "shanghai-mondays-by-local-date": Case(
        "Asia/Shanghai", {"times": ["01:00"], "days": [0]},
        "2025-06-12 12:00", "2025-06-13 00:00", "2025-06-24 00:00",
        ["2025-06-15T17:00Z", "2025-06-22T17:00Z"]),       # Monday 01:00 = Sunday 17:00 UTC
}


@pytest.mark.parametrize("case", list(CASES))
def test_rounds_follow_the_site_clock(db: Database, tmp_path: Path, case: str) -> None:
    zone, recurrence, created, first, last, expected = CASES[case]
    rt = runtime(tmp_path)
    tags = site_with_tags(db, rt, SITE, zone, 1)
    route_with_schedule(db, SITE, tags, recurrence, at(zone, created),
                        preset=None if recurrence else "key_area")
    assert sweep_through(db, rt, at(zone, created), at(zone, last)) >= len(expected)
    assert planned(db, at(zone, first), at(zone, last)) == expected
    # the job running again over the same span (a restart, a second worker) adds nothing
    assert sweep_through(db, rt, at(zone, created), at(zone, last)) == 0
    assert planned(db, at(zone, first), at(zone, last)) == expected


def test_a_short_day_is_reported_on_its_local_date(db: Database, tmp_path: Path) -> None:
    zone = "Europe/Berlin"
    rt = runtime(tmp_path)
    tags = site_with_tags(db, rt, SITE, zone, 1)
    route_with_schedule(db, SITE, tags, {"times": ["01:30", "02:30", "22:00"]},
                        at(zone, "2025-03-28 12:00"))
    sweep_through(db, rt, at(zone, "2025-03-28 12:00"), at(zone, "2025-04-01 03:00"))
    with db.transaction() as session:
        days = tour_stats(session, SITE, start_ms=at(zone, "2025-03-29 00:00"),
                          end_ms=at(zone, "2025-04-01 00:00"), timezone=zone, group_by="day")
    assert [(d.key, d.due, d.missed) for d in days] == [
        ("2025-03-29", 3, 3), ("2025-03-30", 2, 2), ("2025-03-31", 3, 3)]
