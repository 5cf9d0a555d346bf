"""Time and bucket arguments of telemetry queries."""

from __future__ import annotations

import pytest

from cloud.api.timeparse import bucket_label, parse_bucket, parse_time, suggest_bucket

T0 = 1_749_996_000_000  # 2025-06-15T14:00:00Z


@pytest.mark.parametrize(("text", "ms"), [
    ("1749996000000", T0),
    ("0", 0),
    (" 1749996000000 ", T0),
    ("2025-06-15T14:00:00Z", T0),
    ("2025-06-15T14:00:00.250Z", T0 + 250),
    ("2025-06-15T22:00:00+08:00", T0),
    ("2025-06-15T22:00:00 08:00", T0),  # '+' lost in a query string
    ("2025-06-15T09:30:00-04:30", T0),
    ("2025-06-15 14:00:00+00:00", T0),
])
def test_times(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize(("text", "reason"), [
    ("2025-06-15T14:00:00", "no time zone"),
    ("2025-06-15", "no time zone"),
    ("yesterday", "neither epoch milliseconds nor"),
    ("-1000", "neither"),
    ("1e12", "neither"),
    ("1969-12-31T23:59:59Z", "before 1970"),
    ("", "neither"),
])
def test_bad_times(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_time(text)


@pytest.mark.parametrize(("text", "ms", "label"), [
    ("1s", 1000, "1s"), ("30s", 30_000, "30s"), ("60s", 60_000, "1m"), ("5m", 300_000, "5m"),
    ("90m", 5_400_000, "90m"), ("1h", 3_600_000, "1h"), ("24h", 86_400_000, "1d"),
    ("7d", 604_800_000, "7d"), ("366d", 366 * 86_400_000, "366d"),
])
def test_buckets(text: str, ms: int, label: str) -> None:
    assert parse_bucket(text) == ms
    assert bucket_label(ms) == label


@pytest.mark.parametrize(("text", "reason"), [
    ("0s", "out of range"), ("367d", "out of range"), ("500ms", "not a bucket"),
    ("1.5m", "not a bucket"), ("5 m", "not a bucket"), ("m", "not a bucket"),
    ("1w", "not a bucket"), ("-1m", "not a bucket"), ("", "not a bucket"),
])
def test_bad_buckets(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_bucket(text)


@pytest.mark.parametrize(("range_ms", "bucket"), [
    (1, "1s"), (1_000_000, "1s"), (1_000_001, "5s"), (3_600_000, "5s"),
    (86_400_000, "5m"), (30 * 86_400_000, "1h"), (400 * 86_400_000, "12h"),
    (10_000 * 86_400_000, "7d"),
])
def test_suggested_buckets(range_ms: int, bucket: str) -> None:
    assert suggest_bucket(range_ms) == bucket
