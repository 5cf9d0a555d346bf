"""Due-date arithmetic of calendar plans (pure): occurrences, windows in site-local time.

A calendar plan is due on ``anchor + k × interval_days`` (k = 0, 1, …), each a site-local
date. On a due date the work is done inside the plan's window, ``window_start_min``
minutes after local midnight for ``window_minutes`` (elevators: from 00:00, when residents
are not stranded). An occurrence is identified by the epoch ms of its local midnight; it
becomes due for generation ``lead_days`` before its window opens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = ["Occurrence", "due_occurrences", "local_date", "occurrence_at"]

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Occurrence:
    index: int
    """``k``: the occurrence is due on ``anchor + k × interval``."""
    date: dt.date
    key_ms: int
    """Epoch ms of the date's local midnight (stored as ``pm_occurrence``)."""
    start_ms: int
    end_ms: int


def _epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def local_date(ts_ms: int, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz).date()


def occurrence_at(anchor: dt.date, interval_days: int, index: int, tz: ZoneInfo,
                  window_start_min: int, window_minutes: int) -> Occurrence:
    day = anchor + dt.timedelta(days=index * interval_days)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    start = midnight + dt.timedelta(minutes=window_start_min)
    end = start + dt.timedelta(minutes=window_minutes)
    return Occurrence(index, day, _epoch_ms(midnight), _epoch_ms(start), _epoch_ms(end))


def due_occurrences(
    *, anchor: dt.date, interval_days: int, lead_days: int, tz: ZoneInfo, now_ms: int,
    after_index: int | None, not_before_ms: int, window_start_min: int, window_minutes: int,
    limit: int = 50,
) -> list[Occurrence]:
    """Occurrences to generate at ``now_ms``: after ``after_index`` (the last one made),
    whose window has not closed before ``not_before_ms`` (when the plan began: no backlog
    for dates before it), and whose window opens within ``lead_days`` of ``now_ms``."""
    if interval_days <= 0:
        raise ValueError(f"interval_days must be positive, got {interval_days}")
    horizon = local_date(now_ms, tz) + dt.timedelta(days=lead_days + 1)
    if horizon < anchor:
        return []
    first = 0 if after_index is None else after_index + 1
    start_date = local_date(not_before_ms, tz) - _DAY
    if start_date > anchor:
        first = max(first, (start_date - anchor).days // interval_days)
    last = (horizon - anchor).days // interval_days
    out = []
    for index in range(first, last + 1):
        occurrence = occurrence_at(anchor, interval_days, index, tz, window_start_min,
                                   window_minutes)
        if occurrence.end_ms <= not_before_ms:
            continue
        if occurrence.start_ms - lead_days * 86_400_000 > now_ms:
            break
        out.append(occurrence)
        if len(out) >= limit:
            break
    return out
