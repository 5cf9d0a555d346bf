"""Simulated time: a clock that runs at a chosen speed, or is stepped by hand in tests."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo


class SimClock:
    """Wall-clock time (UTC epoch seconds) that runs ``speed`` times faster than real time.

    ``start`` fixes the simulated time at creation (default: now). A clock with
    ``speed=0`` only moves when :meth:`advance` is called, which tests use to run a
    night of building life in milliseconds.
    """

    def __init__(self, *, start: float | None = None, speed: float = 1.0,
                 timezone: str = "UTC") -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.speed = speed
        self.tz = ZoneInfo(timezone)
        self._origin_real = time.monotonic()
        self._origin_sim = time.time() if start is None else start
        self._manual = 0.0

    def now(self) -> float:
        elapsed = (time.monotonic() - self._origin_real) * self.speed
        return self._origin_sim + elapsed + self._manual

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (on top of any running time)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._manual += seconds

    def local(self, at: float | None = None) -> datetime:
        """Simulated time in the site's time zone."""
        return datetime.fromtimestamp(self.now() if at is None else at, self.tz)

    def local_hour(self, at: float | None = None) -> float:
        """Fractional hour of the day in the site's time zone (0.0-24.0)."""
        moment = self.local(at)
        return moment.hour + moment.minute / 60 + moment.second / 3600
