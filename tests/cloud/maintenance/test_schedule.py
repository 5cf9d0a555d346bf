"""Due-date arithmetic of calendar plans (pure)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cloud.maintenance.schedule import due_occurrences, occurrence_at

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
DAY = 86_400_000


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def test_window_is_in_site_local_time() -> None:
    occ = occurrence_at(dt.date(2025, 7, 1), 15, 2, SHANGHAI, 0, 360)
    assert occ.date == dt.date(2025, 7, 31)
    assert occ.start_ms == _ms("2025-07-30T16:00:00+00:00")  # 00:00 in Shanghai
    assert occ.end_ms == _ms("2025-07-30T22:00:00+00:00")
    assert occ.key_ms == occ.start_ms


def test_daylight_saving_keeps_the_local_window() -> None:
    # 2025-03-30 is the spring-forward day in Berlin: the window still opens at 09:00 local
    occ = occurrence_at(dt.date(2025, 3, 29), 1, 1, BERLIN, 9 * 60, 60)
    assert occ.start_ms == _ms("2025-03-30T09:00:00+02:00")


@pytest.mark.parametrize(
    ("now", "after", "expected"),
    [
        ("2025-06-27T00:00:00+08:00", None, [0]),  # 3 days before the 06-30 window
        ("2025-06-26T23:59:00+08:00", None, []),
        ("2025-07-12T00:00:00+08:00", 0, [1]),  # 07-15 is 3 days away
        ("2025-08-20T00:00:00+08:00", 0, [1, 2, 3]),  # a backlog after downtime
        ("2025-08-20T00:00:00+08:00", 3, []),
    ],
)
def test_due_occurrences(now: str, after: int | None, expected: list[int]) -> None:
    found = due_occurrences(anchor=dt.date(2025, 6, 30), interval_days=15, lead_days=3,
                            tz=SHANGHAI, now_ms=_ms(now), after_index=after,
                            not_before_ms=_ms("2025-06-01T00:00:00+08:00"),
                            window_start_min=0, window_minutes=360)
    assert [o.index for o in found] == expected


def test_no_backlog_before_the_plan_began() -> None:
    found = due_occurrences(anchor=dt.date(2025, 1, 1), interval_days=15, lead_days=0,
                            tz=SHANGHAI, now_ms=_ms("2025-06-01T12:00:00+08:00"),
                            after_index=None, not_before_ms=_ms("2025-06-01T00:00:00+08:00"),
                            window_start_min=0, window_minutes=1440)
    # 2025-05-31 is occurrence 10 (its window closed before the plan began)
    assert [o.date for o in found] == []
    with pytest.raises(ValueError, match="interval"):
        due_occurrences(anchor=dt.date(2025, 1, 1), interval_days=0, lead_days=0, tz=SHANGHAI,
                        now_ms=0, after_index=None, not_before_ms=0, window_start_min=0,
                        window_minutes=60)
