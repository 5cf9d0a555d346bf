"""The elevator car's doors: opening, dwell, closing, and the passenger who blocks them.

Now and then a passenger blocks the closing doors and they reopen; after two reopenings
they close slowly by nudging. Randomness comes only from the ``rng`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable

DOOR_MOVE_S, NUDGE_S, DWELL_S = 2.5, 6.0, 4.0  # s: doors opening or closing, nudging, dwell


class Doors:
    """The doors' state (``closed``, ``opening``, ``open``, ``closing``, ``nudging``).

    ``cycles`` counts the openings (the door-cycles counter).
    """

    def __init__(self, cycles: int) -> None:
        self.state, self.cycles = "closed", cycles
        self._t, self._reversals = 0.0, 0
        self._reverse_at: float | None = None

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def open(self) -> None:
        self.state, self._t, self._reversals = "opening", DOOR_MOVE_S, 0
        self.cycles += 1

    def tick(self, h: float, rng: random.Random, *, locked: bool,
             exchange: Callable[[], float]) -> None:
        """Move on by ``h`` s. ``exchange`` runs once the doors are open and returns the
        extra dwell the passengers need; ``locked`` doors (the lock fault) stay open."""
        self._t -= h
        if self.state == "opening":
            if self._t <= 0:
                self.state, self._t = "open", DWELL_S + exchange()
        elif self.state == "open":
            if self._t <= 0 and not locked:
                self._start_close(rng)
        elif self._reverse_at is not None and self._t <= self._reverse_at:
            self._reverse_at, self._reversals = None, self._reversals + 1
            self.state, self._t = "opening", DOOR_MOVE_S - self._t
        elif self._t <= 0:
            self.state = "closed"

    def _start_close(self, rng: random.Random) -> None:
        if self._reversals >= 2:  # someone keeps blocking the doors: close slowly, buzzing
            self.state, self._t, self._reverse_at = "nudging", NUDGE_S, None
            return
        self.state, self._t = "closing", DOOR_MOVE_S
        self._reverse_at = rng.uniform(0.3, 2.0) if rng.random() < 0.05 else None
