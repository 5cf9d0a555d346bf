"""The elevator car's alarm button and entrapment detection, as a monitoring unit sees them.

Entrapment is detected when the car has stood still outside a door zone with its doors
closed and someone inside for :data:`TRAP_DETECT_S`, or when the alarm button has been
held for :data:`ALARM_DETECT_S` with the doors closed; it stays detected until the
doors open. Trapped passengers hold the alarm button first (``hold`` s), then press it
again every minute or two; now and then someone presses it by mistake. Randomness comes
only from the ``rng`` passed in.
"""

from __future__ import annotations

import random
from typing import Final

TRAP_DETECT_S, ALARM_DETECT_S = 10.0, 15.0  # entrapment detection delays
NUISANCE_PER_S: Final = 0.02 / 3600  # short alarm-button presses (children, mistakes)


class Entrapment:
    """The alarm button (``pressed``) and whether a passenger is ``trapped``."""

    def __init__(self) -> None:
        self.hold = 60.0
        """How long a trapped passenger first holds the button (s)."""
        self.trapped = False
        self._press_s = self._stuck_s = self._held_s = 0.0
        self._next_press: float | None = None

    @property
    def pressed(self) -> bool:
        return self._press_s > 0

    def nuisance(self, rng: random.Random, h: float) -> None:
        """Someone may press the button briefly by mistake (never while stuck)."""
        if self._press_s <= 0 and self._stuck_s == 0 and rng.random() < NUISANCE_PER_S * h:
            self._press_s = rng.uniform(1.0, 3.0)

    def press(self, rng: random.Random, h: float) -> None:
        """The trapped passenger's presses: held at first, then again every 1-3 minutes."""
        self._press_s = max(0.0, self._press_s - h)
        if self._stuck_s < 5.0:
            self._next_press = None
        elif self._next_press is None:  # the first press: held down
            self._press_s, self._next_press = self.hold, rng.uniform(60, 180)
        elif self._press_s <= 0:
            self._next_press -= h
            if self._next_press <= 0:
                self._press_s, self._next_press = rng.uniform(3, 10), rng.uniform(60, 180)

    def detect(self, h: float, *, stuck: bool, closed: bool) -> None:
        """``stuck``: still, outside a door zone, doors closed, someone inside."""
        self._stuck_s = self._stuck_s + h if stuck else 0.0
        self._held_s = self._held_s + h if self._press_s > 0 and closed else 0.0
        if self._stuck_s >= TRAP_DETECT_S or self._held_s >= ALARM_DETECT_S:
            self.trapped = True
        if not closed:
            self.trapped = False

    def rescued(self) -> None:
        """The rescue started: nobody presses the button any more."""
        self._press_s, self._next_press, self._stuck_s = 0.0, None, 0.0
