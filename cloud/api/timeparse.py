"""Parsing the time arguments of telemetry queries (pure functions).

- A time is UTC epoch milliseconds (``1700000000000``) or ISO-8601 with a zone
  (``2024-05-01T08:00:00Z``, ``2024-05-01T16:00:00+08:00``); a time without a zone is
  refused rather than guessed. A ``+`` that arrived as a space (an unencoded ``+`` in a
  query string) is put back.
- A bucket is ``<n><unit>`` with unit ``s``, ``m``, ``h`` or ``d`` (``30s``, ``1m``,
  ``5m``, ``1h``, ``1d``), from :data:`MIN_BUCKET_MS` to :data:`MAX_BUCKET_MS`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "MAX_BUCKET_MS",
    "MIN_BUCKET_MS",
    "NICE_BUCKETS",
    "bucket_label",
    "parse_bucket",
    "parse_time",
    "suggest_bucket",
]

MIN_BUCKET_MS: Final = 1000
MAX_BUCKET_MS: Final = 366 * 86_400_000
_UNITS: Final = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_BUCKET = re.compile(r"(\d{1,9})(s|m|h|d)")
_EPOCH_MS = re.compile(r"\d{1,16}")
_LOST_PLUS = re.compile(r"(?<=\d) (\d{2}(?::?\d{2})?)$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

NICE_BUCKETS: Final = (
    "1s", "5s", "10s", "30s", "1m", "5m", "10m", "15m", "30m", "1h", "3h", "6h", "12h", "1d",
    "7d",
)
"""Buckets :func:`suggest_bucket` chooses from."""


def parse_time(text: str) -> int:
    """Epoch milliseconds of ``text``; ``ValueError`` with the reason otherwise."""
    text = text.strip()
    if _EPOCH_MS.fullmatch(text):
        return int(text)
    if "T" in text:
        text = _LOST_PLUS.sub(r"+\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither epoch milliseconds nor an ISO-8601 time "
            "(e.g. 2024-05-01T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add 'Z' or an offset like +08:00")
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    if ms < 0:
        raise ValueError(f"{text!r} is before 1970")
    return ms


def parse_bucket(text: str) -> int:
    """Milliseconds of a bucket like ``5m``; ``ValueError`` with the reason otherwise."""
    match = _BUCKET.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a bucket: use e.g. 30s, 1m, 5m, 1h or 1d")
    ms = int(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_BUCKET_MS <= ms <= MAX_BUCKET_MS:
        raise ValueError(f"bucket {text!r} is out of range (1s to 366d)")
    return ms


def bucket_label(ms: int) -> str:
    """``300000`` → ``5m``: the largest whole unit."""
    for unit in ("d", "h", "m", "s"):
        if ms % _UNITS[unit] == 0:
            return f"{ms // _UNITS[unit]}{unit}"
    return f"{ms}ms"


def suggest_bucket(range_ms: int, *, target: int = 1000) -> str:
    """The smallest of :data:`NICE_BUCKETS` that splits ``range_ms`` into at most
    ``target`` buckets (the largest one if none does)."""
    for label in NICE_BUCKETS:
        if -(-range_ms // parse_bucket(label)) <= target:
            return label
    return NICE_BUCKETS[-1]
