"""BACnet property values <-> engineering values; import them from :mod:`device_profiles.codec`.

Pure functions, no I/O, no bacpypes3: values are plain Python as the gateway's BACnet
adapter hands them over and the simulator serves them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from device_profiles.codec_common import (
    Decoded,
    Enums,
    bad,
    enum_decoded,
    enum_number,
    is_number,
)
from device_profiles.registers import CodecError, shortest_f32
from device_profiles.schema import BacnetPoint, PointKind

_ACTIVE = {"active": True, "inactive": False}


def decode_bacnet(point: BacnetPoint, value: object, *, enums: Enums) -> Decoded:
    """A BACnet property value (as the adapter hands it over) -> engineering value.

    Binary: ``"active"``/``"inactive"``, 1/0 or bool. Multi-state: the 1-based state
    number, mapped through the point's enum (``EnumEntry.value`` is the state). Analog
    values are REAL, read as their shortest float32 decimal. Bit strings (status flags)
    may be a sequence of bits, first = bit 0. None is a bad reading.
    """
    who = f"point {point.id!r}"
    kind = point.kind
    if value is None:
        return bad(None, "no value")
    if kind is PointKind.BOOL:
        if isinstance(value, bool | int) and value in (0, 1):
            return Decoded(value=bool(value), quality="good", raw=int(value))
        if isinstance(value, str) and value.strip().lower() in _ACTIVE:
            return Decoded(value=_ACTIVE[value.strip().lower()], quality="good", raw=value)
    elif kind is PointKind.ENUM and isinstance(value, int | str) and not isinstance(value, bool):
        assert point.enum is not None
        if isinstance(value, str):
            enum_number(point.enum, value, enums, who)  # raises when not a name
            return Decoded(value=value, quality="good", raw=value)
        return enum_decoded(point, value, value, enums)
    elif kind in (PointKind.NUMBER, PointKind.COUNTER) and is_number(value):
        assert isinstance(value, int | float)
        if isinstance(value, float) and not math.isfinite(value):
            return bad(value, "not a finite number")
        if isinstance(value, float) and point.object_type.startswith("analog-"):
            value = shortest_f32(value)
        return Decoded(value=value, quality="good", raw=value)
    elif kind is PointKind.BITFIELD:
        if is_number(value) and isinstance(value, int):
            return Decoded(value=value, quality="good", raw=value)
        if isinstance(value, Sequence) and not isinstance(value, str) and all(
                isinstance(b, bool | int) and b in (0, 1) for b in value):
            number = sum(int(b) << i for i, b in enumerate(value))
            return Decoded(value=number, quality="good", raw=number)
    elif kind is PointKind.TEXT and isinstance(value, str):
        return Decoded(value=value, quality="good", raw=value)
    raise CodecError(f"{who}: kind {kind} cannot read the BACnet value {value!r}")


def encode_bacnet(point: BacnetPoint, value: object, *, enums: Enums) -> object:
    """An engineering value -> the BACnet value to write (the inverse of decode_bacnet)."""
    who = f"point {point.id!r}"
    kind = point.kind
    if kind is PointKind.BOOL:
        if isinstance(value, bool | int) and value in (0, 1):
            return "active" if value else "inactive"
        if isinstance(value, str) and value in _ACTIVE:
            return value
    elif kind is PointKind.ENUM:
        assert point.enum is not None
        return enum_number(point.enum, value, enums, who)
    elif kind in (PointKind.NUMBER, PointKind.COUNTER) and is_number(value):
        assert isinstance(value, int | float)
        return float(value) if point.object_type.startswith("analog-") else value
    elif (kind is PointKind.BITFIELD and is_number(value) and isinstance(value, int)
          and value >= 0) or (kind is PointKind.TEXT and isinstance(value, str)):
        return value
    raise CodecError(f"{who}: kind {kind} cannot write {value!r}")
