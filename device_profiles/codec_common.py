"""What the Modbus and BACnet codecs share: a decoded reading and the enum lookups.

Pure functions, no I/O. :mod:`device_profiles.codec` (Modbus, counters, event logs) and
:mod:`device_profiles.codec_bacnet` build on it; import the codecs from
:mod:`device_profiles.codec`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from device_profiles.registers import CodecError
from device_profiles.schema import BacnetPoint, EnumEntry, ModbusPoint

Enums = Mapping[str, Sequence[EnumEntry]]
Value = bool | int | float | str
_UNKNOWN = re.compile(r"unknown_(-?[0-9]+)")


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded reading: a good value, or no value with the reason it is bad."""

    value: Value | None
    quality: Literal["good", "bad"]
    raw: int | float | str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.quality not in ("good", "bad"):
            raise ValueError(f"quality is 'good' or 'bad', not {self.quality!r}")
        if self.quality == "good" and self.value is None:
            raise ValueError("a good reading needs a value")
        if self.quality == "bad" and (self.value is not None or not self.reason):
            raise ValueError("a bad reading has no value and says why")


def bad(raw: int | float | str | None, reason: str) -> Decoded:
    return Decoded(value=None, quality="bad", raw=raw, reason=reason)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _enum_entries(name: str, enums: Enums, who: str) -> Sequence[EnumEntry]:
    try:
        return enums[name]
    except KeyError:
        raise CodecError(f"{who}: enum {name!r} is not defined in the profile") from None


def enum_name(name: str, number: int, enums: Enums, who: str) -> str | None:
    """The entry name for ``number``, or None when the enum does not list it."""
    return next((e.name for e in _enum_entries(name, enums, who) if e.value == number), None)


def enum_number(name: str, value: object, enums: Enums, who: str) -> int:
    """Entry name (or ``unknown_<n>`` as decoded) -> the number the device uses."""
    entries = _enum_entries(name, enums, who)
    if isinstance(value, str):
        for entry in entries:
            if entry.name == value:
                return entry.value
        if match := _UNKNOWN.fullmatch(value):
            return int(match[1])
    names = ", ".join(e.name for e in entries)
    raise CodecError(f"{who}: {value!r} is not a value of enum {name!r} (one of: {names})")


def enum_decoded(point: ModbusPoint | BacnetPoint, number: int, raw: int | float | str,
                 enums: Enums) -> Decoded:
    assert point.enum is not None  # kind enum; the schema requires it
    name = enum_name(point.enum, number, enums, f"point {point.id!r}")
    if name is None:
        return Decoded(value=f"unknown_{number}", quality="good", raw=raw,
                       reason="unknown enum value")
    return Decoded(value=name, quality="good", raw=raw)
