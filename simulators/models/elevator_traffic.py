"""Passenger traffic for the elevator model: journeys arriving by the local time of day.

A journey is a hall call at one landing, then a car call to another. They arrive at a
rate that follows the local hour: up-peak from the lobby and car park in the morning,
down-peak in the evening, a lunchtime bump, almost nothing at night. Randomness comes
only from the ``rng`` passed in, in a fixed order, so a seeded model replays exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

MAX_QUEUE: Final = 6  # journeys waiting; more callers take another car

#: journeys per hour answered by one car, by local hour
RATE: Final = (2, 1, 1, 1, 1, 2, 8, 45, 60, 35, 20, 25, 35, 30, 20, 20, 22, 45, 50, 30, 20,
               15, 10, 5)


@dataclass
class Journey:
    origin: int  # landing index
    dest: int
    people: int
    aboard: bool = False


def journey_arrives(rng: random.Random, hour: float, h: float) -> bool:
    """Whether a new journey starts within the next ``h`` seconds at local ``hour``."""
    return rng.random() < 1 - math.exp(-RATE[int(hour) % 24] * h / 3600)


def new_journey(rng: random.Random, landings: int, home: int, hour: float) -> Journey:
    """A passenger's journey; ``home`` is the lobby's landing index (those below: car park)."""
    n = landings
    entry = [home] * 3 + list(range(home))  # lobby, and the car park below
    upper = list(range(home + 1, n)) or [i for i in range(n) if i != home]
    if 7 <= hour < 9.5 and rng.random() < 0.8:
        origin, dest = rng.choice(entry), rng.choice(upper)
    elif 17 <= hour < 19.5 and rng.random() < 0.8:
        origin, dest = rng.choice(upper), rng.choice(entry)
    else:
        origin, dest = rng.sample(range(n), 2)
    if origin == dest:
        dest = (origin + 1) % n
    peak = 7 <= hour < 9.5 or 17 <= hour < 19.5 or 11.5 <= hour < 13.5
    return Journey(origin, dest, rng.randint(1, 8 if peak else 3))


def forced_journey(rng: random.Random, landings: int, level: int, overspeed: bool) -> Journey:
    """A run long enough for a pending fault to strike on the way."""
    far = 0 if level > (landings - 1) / 2 else landings - 1
    if overspeed:  # an empty car answering a far hall call
        return Journey(far, level, rng.randint(1, 3))
    return Journey(level, far, rng.randint(1, 3))
