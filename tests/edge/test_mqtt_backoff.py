"""Reconnect delays: doubling, capped at a few seconds, jittered, never below the floor."""

from __future__ import annotations

import random

from edge.mqtt import BACKOFF_MAX, BACKOFF_MIN, backoff_delay


def test_delays_double_up_to_the_cap_within_the_jitter() -> None:
    rng = random.Random(1)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (40, 5.0),
                          (10_000, 5.0)]:
        delays = [backoff_delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= max(BACKOFF_MIN, base * 0.8) - 1e-9, attempt
        assert max(delays) <= base * 1.2 + 1e-9, attempt
        assert max(delays) - min(delays) > base * 0.15, f"attempt {attempt} is not jittered"


def test_a_returning_broker_is_retried_within_six_seconds() -> None:
    assert BACKOFF_MAX * 1.2 <= 6.0
    assert BACKOFF_MIN > 0
