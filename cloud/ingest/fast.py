"""The ingest hot path: telemetry payloads decoded and turned into samples cheaply.

Telemetry is nearly all traffic. :func:`fast_telemetry` decodes the common payload with
``json`` and the contract's own rules, and declines (``None``) anything it cannot vouch
for, which then goes through the contract's decoder (the only place errors are
described). :func:`telemetry_samples` builds the samples of a validated payload with
cached series keys, checking only what the contract does not (integers beyond what the
store keeps).
"""

from __future__ import annotations

import json
import math
import re

from cloud.timeseries.base import MAX_INT, Sample, SeriesKey, trusted_sample
from towerwatch.contract import TS_MAX, TS_MIN, Telemetry
from towerwatch.contract.ids import BOOT_ID_PATTERN, IDENTIFIER_MAX, IDENTIFIER_PATTERN

__all__ = ["DeviceKeys", "fast_telemetry", "telemetry_samples"]

DeviceKeys = dict[tuple[str, str, str], dict[str, SeriesKey]]
"""Series keys by device, then point: one tuple hashed per message, not per point."""


def telemetry_samples(site: str, gateway: str, device: str, telemetry: Telemetry,
                      keys: DeviceKeys | None = None) -> list[Sample]:
    """The samples of a validated telemetry payload.

    The contract has checked what :class:`Sample` would (identifiers, a storable
    timestamp, finite floats, a known quality); only integers beyond ``±2**64``, which
    the contract lets through, raise ``ValueError`` here.
    """
    cache = {} if keys is None else keys
    points = cache.get((site, gateway, device))
    if points is None:
        points = cache[(site, gateway, device)] = {}
    ts = telemetry.ts
    quality = telemetry.quality.get
    out: list[Sample] = []
    append = out.append
    for point, value in telemetry.values.items():
        if value.__class__ is int and not -MAX_INT < value < MAX_INT:
            raise ValueError(f"integer value out of range (|v| < 2**64): {value}")
        series = points.get(point)
        if series is None:
            series = points[point] = SeriesKey(site, gateway, device, point)
        append(trusted_sample(series, ts, value, quality(point, "good")))
    return out


# -- decoding -----------------------------------------------------------------------
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_BOOT_ID = re.compile(BOOT_ID_PATTERN)
_QUALITIES = frozenset({"good", "stale", "bad"})
_TELEMETRY_FIELDS = frozenset({"seq", "boot_id", "ts", "values", "quality"})
_KNOWN_IDS: set[str] = set()
_KNOWN_IDS_MAX = 100_000
_json_loads = json.loads
_isfinite = math.isfinite


def _identifier(key: str) -> bool:
    """Whether ``key`` (a JSON object key, so a str) is an identifier."""
    if key in _KNOWN_IDS:
        return True
    if len(key) <= IDENTIFIER_MAX and _IDENTIFIER.fullmatch(key) is not None:
        if len(_KNOWN_IDS) > _KNOWN_IDS_MAX:
            _KNOWN_IDS.clear()
        _KNOWN_IDS.add(key)
        return True
    return False


def fast_telemetry(raw: bytes) -> Telemetry | None:
    """A telemetry payload the contract would accept, decoded without pydantic; ``None``
    for anything this cannot vouch for, which then goes through the contract's decoder
    (the only place errors are described).

    Accepts a subset of what :class:`~towerwatch.contract.Telemetry` accepts, and gives
    the same values: exactly the five fields; ``seq`` an int >= 0; a boot id; ``ts`` an
    int in the contract's range; point ids that are identifiers; values null, bool, int,
    finite float or ASCII string (other strings take the slow path); qualities ``good``,
    ``stale`` or ``bad``; no null value of good quality. Strict like the model: a JSON
    ``1.0`` is no ``seq`` and ``true`` no number.
    """
    try:
        data = _json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if data.__class__ is not dict or data.keys() != _TELEMETRY_FIELDS:
        return None
    seq, boot_id, ts = data["seq"], data["boot_id"], data["ts"]
    values, quality = data["values"], data["quality"]
    if (seq.__class__ is not int or seq < 0
            or ts.__class__ is not int or not TS_MIN <= ts <= TS_MAX
            or boot_id.__class__ is not str or _BOOT_ID.fullmatch(boot_id) is None
            or values.__class__ is not dict or quality.__class__ is not dict):
        return None
    try:  # every quality known (a set operation, not a loop: the edge sends one a point)
        if not _QUALITIES.issuperset(quality.values()):
            return None
    except TypeError:  # an unhashable quality (a list, an object)
        return None
    for point in quality.keys() - values.keys():  # the others are checked with the values
        if not _identifier(point):
            return None
    known = _KNOWN_IDS
    for point, value in values.items():
        if point not in known and not _identifier(point):
            return None
        cls = value.__class__
        if cls is float:
            if not _isfinite(value):
                return None
        elif value is None:
            if quality.get(point, "good") == "good":
                return None
        elif cls is str:
            if not value.isascii():
                return None
        elif cls is not int and cls is not bool:
            return None
    return Telemetry.model_construct(seq=seq, boot_id=boot_id, ts=ts, values=values,
                                     quality=quality)
