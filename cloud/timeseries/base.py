"""The time-series store interface and its value objects.

A sample is one value of one point at one time: ``Sample(series, ts_ms, value, quality)``,
where ``series`` is the :class:`SeriesKey` ``(site, gateway, device, point)``. Values are
``float``, ``int``, ``bool``, ``str`` or ``None`` (a point with no value, e.g. ``bad``).

Semantics shared by every backend (the contract tests in
``tests/cloud/timeseries/test_sqlite_store.py`` run against each one):

- Time is UTC epoch milliseconds, ``0 <= ts_ms <= MAX_TS_MS`` (InfluxDB's last
  nanosecond timestamp, in ms: year 2262). Ranges are half-open: ``start_ms <= ts < end_ms``;
  bounds outside the storable range are clamped, and an empty range returns nothing.
- ``(series, ts_ms)`` identifies a sample: writing it again replaces it (a redelivered
  sample overwrites, never duplicates; on InfluxDB a rewrite with a value of another
  type or another quality adds a sample instead, see :mod:`cloud.timeseries.influxql`).
- Numbers are stored as 64-bit floats: ``int`` values come back as ``int`` and are exact
  up to 2**53; ``bool`` values come back as ``bool`` and count as 0/1 in aggregates.
- ``raw`` returns samples in time order and raises :class:`QueryTooLarge` (rather than
  truncating) when more than ``limit`` samples lie in the range.
- ``downsampled`` returns only non-empty buckets, in time order. Buckets are aligned to
  multiples of ``bucket_ms`` since the epoch (so the first and last may be partial);
  ``mean``/``min``/``max`` cover numeric and bool values (``None`` when a bucket holds
  none), ``last`` is the value of the bucket's latest sample whatever its type, and
  ``count`` counts every sample in the bucket. More than :data:`MAX_BUCKETS` buckets in
  the range raises :class:`QueryTooLarge`.
- ``latest`` / ``latest_for_device`` return the sample with the greatest ``ts_ms`` per
  series; series with no samples are left out.
- ``apply_retention(older_than_ms)`` deletes samples with ``ts_ms < older_than_ms`` (the
  latest-value view forgets them too) and returns how many it deleted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

from cloud.timeseries.errors import QueryTooLarge

Value: TypeAlias = float | int | bool | str | None
Quality: TypeAlias = Literal["good", "stale", "bad"]
Kind: TypeAlias = Literal["f", "i", "b", "s", "n"]
"""How a value is stored: float, int, bool, str, none (both backends record it per sample)."""

QUALITIES: Final = frozenset({"good", "stale", "bad"})
MAX_TS_MS: Final = 9_223_372_036_853
"""The last storable timestamp: InfluxDB's last nanosecond time (2262-04-11), in ms."""
MAX_BUCKETS: Final = 100_000
"""A downsampled query over more buckets than this raises :class:`QueryTooLarge`."""
MAX_KEY_LENGTH: Final = 256
MAX_INT: Final = 2**64
"""Integer values must satisfy ``-MAX_INT < value < MAX_INT`` (u64/s64 registers fit)."""

# Key parts travel as InfluxDB tags and InfluxQL string literals: control characters
# (line breaks end a line-protocol line) and backslashes (InfluxDB 1.x keeps ``\\`` in
# tags literally and cannot end a tag with ``\``) are not representable everywhere.
_KEY_PART = re.compile(rf"[^\x00-\x1f\x7f\\]{{1,{MAX_KEY_LENGTH}}}")


def _check_part(name: str, value: object) -> None:
    if not isinstance(value, str) or _KEY_PART.fullmatch(value) is None:
        raise ValueError(
            f"series {name} must be 1-{MAX_KEY_LENGTH} characters without control"
            f" characters or backslashes, got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One point's time series: ``(site, gateway, device, point)``.

    Wire identifiers (``[a-z0-9][a-z0-9_-]*``) always fit; the store also takes other
    printable text (spaces, quotes, commas, ``=``) and escapes it, but no control
    characters or backslashes.
    """

    site: str
    gateway: str
    device: str
    point: str

    def __post_init__(self) -> None:
        _check_part("site", self.site)
        _check_part("gateway", self.gateway)
        _check_part("device", self.device)
        _check_part("point", self.point)


def check_value(value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is storable (see :data:`Value`)."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -MAX_INT < value < MAX_INT:
            raise ValueError(f"integer value out of range (|v| < 2**64): {value}")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value!r}")
        return
    raise ValueError(f"value must be float, int, bool, str or None, got {type(value).__name__}")


def check_ts(ts_ms: object) -> None:
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or not 0 <= ts_ms <= MAX_TS_MS:
        raise ValueError(f"ts_ms must be an int in [0, {MAX_TS_MS}], got {ts_ms!r}")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one series at ``ts_ms`` (UTC epoch ms), with its quality."""

    series: SeriesKey
    ts_ms: int
    value: Value
    quality: Quality

    def __post_init__(self) -> None:
        if not isinstance(self.series, SeriesKey):
            raise ValueError(f"series must be a SeriesKey, got {type(self.series).__name__}")
        check_ts(self.ts_ms)
        check_value(self.value)
        if self.quality not in QUALITIES:
            raise ValueError(f"quality must be good, stale or bad, got {self.quality!r}")


_new = object.__new__
_SAMPLE_SLOTS: Any = Sample.__dict__
_set_series = _SAMPLE_SLOTS["series"].__set__
_set_ts = _SAMPLE_SLOTS["ts_ms"].__set__
_set_value = _SAMPLE_SLOTS["value"].__set__
_set_quality = _SAMPLE_SLOTS["quality"].__set__


def trusted_sample(series: SeriesKey, ts_ms: int, value: Value, quality: Quality) -> Sample:
    """A :class:`Sample` of parts already checked (read back from a store, or decoded from
    a payload the contract validated), built without ``__post_init__``'s checks: reading
    a day of samples builds ~100k of them."""
    sample: Sample = _new(Sample)
    _set_series(sample, series)
    _set_ts(sample, ts_ms)
    _set_value(sample, value)
    _set_quality(sample, quality)
    return sample


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of one series over ``[start_ms, start_ms + bucket_ms)``."""

    start_ms: int
    mean: float | None
    min: float | None
    max: float | None
    last: Value
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a bucket holds at least one sample, got count={self.count}")


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Where telemetry samples are kept; see the module docstring for the semantics."""

    async def write(self, samples: Sequence[Sample]) -> None:
        """Store ``samples`` (batched by the caller); idempotent per ``(series, ts_ms)``."""

    async def raw(
        self, series: SeriesKey, start_ms: int, end_ms: int, *, limit: int
    ) -> list[Sample]:
        """Samples with ``start_ms <= ts < end_ms`` in time order; more than ``limit``
        raises :class:`QueryTooLarge`."""

    async def downsampled(
        self, series: SeriesKey, start_ms: int, end_ms: int, *, bucket_ms: int
    ) -> list[Bucket]:
        """Non-empty buckets of ``bucket_ms`` over ``[start_ms, end_ms)`` in time order."""

    async def latest(self, series: Sequence[SeriesKey]) -> dict[SeriesKey, Sample]:
        """The newest sample of each series that has one."""

    async def latest_for_device(self, site: str, gateway: str, device: str) -> dict[str, Sample]:
        """The newest sample of every point of one device, by point id."""

    async def apply_retention(self, older_than_ms: int) -> int:
        """Delete samples with ``ts < older_than_ms``; return how many were deleted."""

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""


# -- helpers shared by the backends ----------------------------------------------------
def encode_value(value: Value) -> tuple[Kind, float | None, str | None]:
    """``value`` → ``(kind, num, txt)``: bools and ints as numbers, strings as text."""
    if value is None:
        return "n", None, None
    if isinstance(value, bool):
        return "b", 1.0 if value else 0.0, None
    if isinstance(value, int):
        return "i", float(value), None
    if isinstance(value, float):
        return "f", value, None
    return "s", None, value


def decode_value(kind: str, num: float | None, txt: str | None) -> Value:
    """The inverse of :func:`encode_value`; an unknown kind is a corrupt store."""
    if kind == "f":
        return None if num is None else float(num)
    if kind == "i":
        return None if num is None else int(num)
    if kind == "b":
        return None if num is None else bool(num)
    if kind == "s":
        return txt
    if kind == "n":
        return None
    raise ValueError(f"unknown value kind {kind!r}")


def check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")


def clamp_range(start_ms: int, end_ms: int) -> tuple[int, int] | None:
    """``[start_ms, end_ms)`` clipped to the storable times; ``None`` when empty."""
    start, end = max(start_ms, 0), min(end_ms, MAX_TS_MS + 1)
    return (start, end) if start < end else None


def check_buckets(start_ms: int, end_ms: int, bucket_ms: int) -> None:
    """Raise unless ``bucket_ms`` is positive and the (clamped) range spans at most
    :data:`MAX_BUCKETS` aligned buckets."""
    if isinstance(bucket_ms, bool) or not isinstance(bucket_ms, int) or bucket_ms < 1:
        raise ValueError(f"bucket_ms must be a positive int, got {bucket_ms!r}")
    window = clamp_range(start_ms, end_ms)
    if window is None:
        return
    start, end = window
    buckets = (end - 1) // bucket_ms - start // bucket_ms + 1
    if buckets > MAX_BUCKETS:
        raise QueryTooLarge(
            f"{buckets} buckets of {bucket_ms} ms requested (at most {MAX_BUCKETS})",
            bound=MAX_BUCKETS,
        )


def too_many(limit: int, series: SeriesKey) -> QueryTooLarge:
    return QueryTooLarge(
        f"more than {limit} samples of {series} in the range; narrow it or raise the limit",
        bound=limit,
    )
