"""Durations in profiles and configs: ``500ms``, ``5s``, ``15m``, ``2h``, ``1d`` or seconds."""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import BeforeValidator

_PATTERN: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_FACTORS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Return seconds for a duration literal; raise ValueError naming the bad text."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5s' or '500ms', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return float(match.group(1)) * _FACTORS[match.group(2)]
    raise ValueError(f"expected a duration like '5s', '500ms', '15m' or '2h', got {value!r}")


#: A duration in seconds, parsed from a literal.
Duration = Annotated[float, BeforeValidator(parse_duration)]
