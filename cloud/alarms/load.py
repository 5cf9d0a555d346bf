"""Alarm-load figures of a site over a period (EEMUA 191 / ISA-18.2), from the history table.

An *annunciation* is an alarm going active: a ``raised`` or ``reactivated`` history entry.
Over ``[start_ms, end_ms)``:

- ``per_10min``: annunciations per 10 minutes per operator (mean, and the busiest window of
  the aligned 10-minute windows); EEMUA: ~1 acceptable, 2 manageable.
- ``floods``: aligned 10-minute windows with more than ``flood_threshold`` (10) annunciations
  per operator, and the share of the period spent in flood.
- ``chattering``: alarms (site, gateway, device, name) that went active ``chatter_count`` (3)
  or more times within ``chatter_window_ms`` (1 minute).
- ``stale``: alarms open and active for more than 24 hours at ``end_ms``.
- ``bad_actors``: the ten alarms with the most annunciations, with their share.
- ``priority_split``: annunciations per priority and their shares (EEMUA suggests about
  5 % / 15 % / 80 % from highest to lowest).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms.tables import PRIORITIES, SITE_LEVEL, Alarm, AlarmHistory, Change

__all__ = ["AlarmLoad", "alarm_load"]

WINDOW_MS: Final = 600_000
STALE_MS: Final = 24 * 3600_000
_ACTIVATIONS: Final = (Change.RAISED.value, Change.REACTIVATED.value)

Key = tuple[str, str, str]
"""(gateway, device, name) within the site."""


@dataclass(frozen=True)
class LoadFigures:
    site: str
    start_ms: int
    end_ms: int
    operators: int
    annunciations: int
    per_10min_mean: float
    per_10min_max: int
    flood_windows: list[tuple[int, int]] = field(default_factory=list)
    """(window start ms, annunciations per operator) of each window in flood."""
    flood_share: float = 0.0
    chattering: list[tuple[Key, int]] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    """Ids of stale alarms."""
    bad_actors: list[tuple[Key, int, float]] = field(default_factory=list)
    priority_split: dict[str, tuple[int, float]] = field(default_factory=dict)


AlarmLoad = LoadFigures


def _key(alarm: Alarm) -> Key:
    return (alarm.gateway_id, alarm.device_id, alarm.name)


def _max_in_window(times: list[int], window_ms: int) -> int:
    best, first = 0, 0
    for last, ts in enumerate(times):
        while ts - times[first] >= window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


def alarm_load(session: Session, site: str, start_ms: int, end_ms: int, *, operators: int = 1,
               flood_threshold: int = 10, chatter_count: int = 3,
               chatter_window_ms: int = 60_000) -> LoadFigures:
    """The figures of the module docstring for ``site`` over ``[start_ms, end_ms)``."""
    if end_ms <= start_ms:
        raise ValueError("the period must end after it starts")
    if operators < 1:
        raise ValueError("operators must be at least 1")
    rows = session.execute(
        select(AlarmHistory.ts_ms, Alarm).join(Alarm, Alarm.id == AlarmHistory.alarm_id)
        .where(AlarmHistory.site_id == site, AlarmHistory.ts_ms >= start_ms,
               AlarmHistory.ts_ms < end_ms, AlarmHistory.kind.in_(_ACTIVATIONS))
        .order_by(AlarmHistory.ts_ms)).all()
    total = len(rows)
    windows: Counter[int] = Counter(ts // WINDOW_MS * WINDOW_MS for ts, _ in rows)
    per_key: dict[Key, list[int]] = defaultdict(list)
    priorities: Counter[str] = Counter()
    for ts, alarm in rows:
        per_key[_key(alarm)].append(ts)
        priorities[alarm.priority] += 1
    n_windows = max(1, -(-(end_ms - start_ms) // WINDOW_MS))
    floods = sorted((start, count // operators) for start, count in windows.items()
                    if count / operators > flood_threshold)
    chattering = sorted(((key, best) for key, times in per_key.items()
                         if (best := _max_in_window(times, chatter_window_ms)) >= chatter_count),
                        key=lambda kv: (-kv[1], kv[0]))
    actors = sorted(per_key.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    stale = session.scalars(select(Alarm.id).where(
        Alarm.site_id == site, Alarm.closed_ms.is_(None), Alarm.active.is_(True),
        Alarm.last_active_ms <= end_ms - STALE_MS).order_by(Alarm.id))
    return LoadFigures(
        site=site, start_ms=start_ms, end_ms=end_ms, operators=operators, annunciations=total,
        per_10min_mean=round(total / operators / n_windows, 3),
        per_10min_max=max(windows.values(), default=0) // operators,
        flood_windows=floods, flood_share=round(len(floods) / n_windows, 4),
        chattering=chattering, stale=list(stale),
        bad_actors=[(key, len(times), round(len(times) / total, 4)) for key, times in actors],
        priority_split={p.value: (priorities[p.value],
                                  round(priorities[p.value] / total, 4) if total else 0.0)
                        for p in PRIORITIES},
    )


def display_key(key: Key) -> dict[str, str | None]:
    gateway, device, name = key
    return {"gateway": None if gateway == SITE_LEVEL else gateway,
            "device": None if device == SITE_LEVEL else device, "name": name}
