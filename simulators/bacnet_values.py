"""What a simulated BACnet device serves for a profile point, as plain Python.

No bacpypes3 here (:mod:`simulators.bacnet_server` and :mod:`simulators.bacnet_objects`
import it): property names as bacpypes3 spells its attributes, the units, default
properties and state texts of point objects, a point's value before the model gives one,
and bacpypes3 primitives back as Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from device_profiles.codec import CodecError
from device_profiles.schema import BacnetPoint, EnumEntry, PointKind
from simulators.models.base import Value

PRESENT_VALUE = "presentValue"

UNITS: dict[str, str] = {
    "percent": "percent", "s": "seconds", "min": "minutes", "h": "hours", "m": "meters",
    "mm": "millimeters", "m/s": "metersPerSecond", "rpm": "revolutionsPerMinute",
    "Pa": "pascals", "kPa": "kilopascals", "bar": "bars", "L": "liters", "m3": "cubicMeters",
    "L/s": "litersPerSecond", "m3/h": "cubicMetersPerHour", "V": "volts", "A": "amperes",
    "W": "watts", "kW": "kilowatts", "kVA": "kilovoltAmperes",
    "kvar": "kilovoltAmperesReactive", "kWh": "kilowattHours",
    "kvarh": "kilovoltAmpereHoursReactive", "Hz": "hertz", "pf": "powerFactor",
    "degC": "degreesCelsius", "ohm": "ohms",
}
"""Profile unit -> BACnet engineering units (``noUnits`` when not listed)."""

DEFAULTS: dict[str, object] = {
    "outOfService": False, "eventState": "normal", "reliability": "noFaultDetected",
    "polarity": "normal", "activeText": "Active", "inactiveText": "Inactive",
}
"""Properties every point object gets, where its class has them."""


def attr_name(prop: str) -> str:
    """``present-value`` -> ``presentValue``, as bacpypes3 names object attributes."""
    head, *rest = prop.split("-")
    return head + "".join(word.capitalize() for word in rest)


def plain_value(raw: Any) -> Value:
    """A bacpypes3 primitive (Real, Unsigned, Enumerated, CharacterString...) as Python."""
    if isinstance(raw, float):
        return float(raw)
    if isinstance(raw, bool | int):
        return int(raw)
    if isinstance(raw, str):
        return str(raw)
    raise CodecError(f"cannot use the BACnet value {raw!r}")


def default_value(point: BacnetPoint, enums: Mapping[str, Sequence[EnumEntry]]) -> Value:
    """The value of a point the model's initial values do not give."""
    entries = enums.get(point.enum or "", [])
    if point.kind is PointKind.ENUM and entries:
        return entries[0].name
    return False if point.kind is PointKind.BOOL else "" if point.kind is PointKind.TEXT else 0


def neutral_value(object_type: str) -> Value:
    """The present value of an object whose points are all other properties."""
    return (1 if object_type.startswith("multi-state")
            else "" if object_type.startswith("character") else 0)


def state_texts(entries: Sequence[EnumEntry]) -> list[str]:
    """A multi-state object's state texts, state 1 first (``State <n>`` where none is given)."""
    texts = {e.value: e.en for e in entries}
    return [texts.get(n, f"State {n}") for n in range(1, max([*texts, 1]) + 1)]
