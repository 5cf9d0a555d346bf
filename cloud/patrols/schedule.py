"""Patrol schedules: recurrence in site-local time expanded to tour start times (pure).

A recurrence is either fixed times of day or an interval within daily hours::

    {"times": ["08:00", "14:00", "20:00"]}                  ordinary areas, 3 rounds a day
    {"every_min": 180, "from": "00:00", "to": "24:00"}      key areas, every 3 hours
    … plus optional "days": [0, 1, 2, 3, 4] (Monday = 0)

Times are wall-clock times in the site's time zone, so a 22:00 round stays at 22:00
across daylight-saving changes (a time that does not exist that day is skipped; an
ambiguous one is taken once, at its first occurrence).

:data:`PRESETS` are the shipped defaults from the industry's norms: key areas (car parks,
plant rooms, perimeter) every 2–4 hours, ordinary areas 2–3 times a day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

__all__ = ["PRESETS", "Preset", "check_recurrence", "slots"]

_HHMM: Final = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_MINUTE_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class Preset:
    recurrence: Mapping[str, Any]
    window_min: int
    grace_min: int
    duration_min: int


PRESETS: Final[Mapping[str, Preset]] = {
    "key_area": Preset({"every_min": 180, "from": "00:00", "to": "24:00"},
                       window_min=15, grace_min=15, duration_min=30),
    "ordinary": Preset({"times": ["08:00", "14:00", "20:00"]},
                       window_min=30, grace_min=15, duration_min=45),
}


def _minutes(text: Any, field: str) -> int:
    match = _HHMM.match(text) if isinstance(text, str) else None
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"{field}: {text!r} is not a time of day HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def check_recurrence(recurrence: Mapping[str, Any]) -> dict[str, Any]:
    """The recurrence, normalised; ``ValueError`` naming the field when it is invalid."""
    unknown = set(recurrence) - {"times", "every_min", "from", "to", "days"}
    if unknown:
        raise ValueError(f"recurrence: unknown field(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if ("times" in recurrence) == ("every_min" in recurrence):
        raise ValueError("recurrence: give either 'times' or 'every_min'")
    if "times" in recurrence:
        times = recurrence["times"]
        if not isinstance(times, list) or not times:
            raise ValueError("recurrence.times: a non-empty list of HH:MM")
        minutes = sorted({_minutes(t, f"recurrence.times[{i}]") for i, t in enumerate(times)})
        if minutes[-1] >= 24 * 60:
            raise ValueError("recurrence.times: 24:00 is the next day's 00:00")
        out["times"] = [f"{m // 60:02d}:{m % 60:02d}" for m in minutes]
    else:
        every = recurrence["every_min"]
        if not isinstance(every, int) or not 10 <= every <= 24 * 60:
            raise ValueError("recurrence.every_min: whole minutes between 10 and 1440")
        start = _minutes(recurrence.get("from", "00:00"), "recurrence.from")
        end = _minutes(recurrence.get("to", "24:00"), "recurrence.to")
        if end <= start:
            raise ValueError("recurrence.to must be after recurrence.from")
        out.update(every_min=every, **{"from": f"{start // 60:02d}:{start % 60:02d}",
                                       "to": f"{end // 60:02d}:{end % 60:02d}"})
    days = recurrence.get("days", list(range(7)))
    if (not isinstance(days, list) or not days
            or any(not isinstance(d, int) or not 0 <= d <= 6 for d in days)):
        raise ValueError("recurrence.days: a non-empty list of weekdays 0..6 (Monday = 0)")
    out["days"] = sorted(set(days))
    return out


def _day_minutes(recurrence: Mapping[str, Any]) -> list[int]:
    if "times" in recurrence:
        return [_minutes(t, "times") for t in recurrence["times"]]
    start = _minutes(recurrence.get("from", "00:00"), "from")
    end = _minutes(recurrence.get("to", "24:00"), "to")
    return list(range(start, end, int(recurrence["every_min"])))


def _local_ms(day: date, minute: int, tz: ZoneInfo) -> int | None:
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    utc = local.astimezone(ZoneInfo("UTC"))
    if utc.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None  # skipped by a daylight-saving jump
    return int(utc.timestamp() * 1000)


def slots(recurrence: Mapping[str, Any], timezone: str, start_ms: int, end_ms: int) -> list[int]:
    """Scheduled start times (UTC epoch ms) in ``[start_ms, end_ms)``, ascending."""
    tz = ZoneInfo(timezone)
    days = set(recurrence.get("days", range(7)))
    minutes = _day_minutes(recurrence)
    first = datetime.fromtimestamp(start_ms / 1000, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end_ms / 1000, tz).date() + timedelta(days=1)
    found: list[int] = []
    day = first
    while day <= last:
        if day.weekday() in days:
            for minute in minutes:
                at = _local_ms(day, minute, tz)
                if at is not None and start_ms <= at < end_ms:
                    found.append(at)
        day += timedelta(days=1)
    return sorted(set(found))
