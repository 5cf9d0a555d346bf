"""Field types shared by the payload models: timestamps, sequence numbers, scalar values."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema

TS_MIN = 946_684_800_000
"""2000-01-01T00:00:00Z in epoch milliseconds."""
TS_MAX = 7_258_118_400_000
"""2200-01-01T00:00:00Z in epoch milliseconds."""

Quality = Literal["good", "stale", "bad"]
Severity = Literal["emergency", "high", "medium", "low"]
EventKind = Literal["alarm", "access", "state"]
CommandOp = Literal["write", "reload", "ping"]


def check_ts(value: int) -> int:
    """Return ``value`` if it is plausible UTC epoch milliseconds (2000-01-01 to 2200-01-01)."""
    if not TS_MIN <= value <= TS_MAX:
        hint = " (seconds, not milliseconds?)" if TS_MIN // 1000 <= value <= TS_MAX // 1000 else ""
        raise ValueError(
            f"{value} is not UTC epoch milliseconds between 2000-01-01 and 2200-01-01{hint}"
        )
    return value


def ts_from_datetime(moment: datetime) -> int:
    """UTC epoch milliseconds of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return int(moment.timestamp() * 1000)


def datetime_from_ts(ts: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ts / 1000, tz=UTC)


def check_scalar(value: Any) -> bool | int | float | str | None:
    """Accept a JSON scalar (boolean, integer, finite float, string) or null; reject the rest."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    raise ValueError(f"must be a number, boolean, string or null, not {type(value).__name__}")


def check_non_null_scalar(value: Any) -> bool | int | float | str:
    """Like :func:`check_scalar`, but null is rejected too."""
    checked = check_scalar(value)
    if checked is None:
        raise ValueError("must be a number, boolean or string, not null")
    return checked


_SCALAR_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "boolean"}, {"type": "number"}, {"type": "string"}, {"type": "null"}]}
)

Timestamp = Annotated[
    int,
    AfterValidator(check_ts),
    WithJsonSchema({"type": "integer", "minimum": TS_MIN, "maximum": TS_MAX}),
]
"""UTC epoch milliseconds from the edge clock."""

Seq = Annotated[int, Field(ge=0)]
"""Per-(gateway, boot_id) message counter."""

Value = Annotated[bool | int | float | str | None, PlainValidator(check_scalar), _SCALAR_SCHEMA]
"""A point value on the wire: boolean, integer, finite float, string, or null when unknown."""

Scalar = Annotated[
    bool | int | float | str,
    PlainValidator(check_non_null_scalar),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "number"}, {"type": "string"}]}),
]
"""A non-null scalar (event detail values)."""

Text = Annotated[str, Field(min_length=1, max_length=256)]
"""A short human-readable string (versions, reasons, names)."""
