"""Counter points since boot: their increase across wraps, the wraps, backward jumps.

A counter keeps its decoded value in the point table; this tracks what it did since the
gateway started. A decrease that would mean an increase of more than
:data:`MAX_COUNTER_JUMP` of the modulus is a meter swap or reset ("backwards") and is
not counted; a smaller one is a wrap. Pure code, used by :class:`edge.points.PointTable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from device_profiles.codec import (
    CodecError,
    counter_delta,
    counter_modulus,
    counter_went_backwards,
)
from device_profiles.schema import BacnetPoint, ModbusPoint
from edge.decoding import Scalar, exact_add

__all__ = ["MAX_COUNTER_JUMP", "Counter", "CounterEvent", "CounterStatus"]

MAX_COUNTER_JUMP: Final = 0.5
"""A decrease that, read as a wrap, would be an increase above this share of the modulus
is a meter swap or reset ("backwards"), not a wrap."""


@dataclass(frozen=True, slots=True)
class CounterStatus:
    """A counter since boot: its increase (across wraps), wraps seen, and whether it went back."""

    increase: int | float
    wraps: int
    went_backwards: bool


class CounterEvent(NamedTuple):
    point_id: str
    kind: Literal["wrap", "backwards"]
    previous: int | float
    current: int | float


class Counter:
    """What one counter point did since boot."""

    __slots__ = ("increase", "last", "modulus", "went_backwards", "wraps")

    def __init__(self, modulus: int | float | None) -> None:
        self.modulus = modulus
        self.last: int | float | None = None
        self.increase: int | float = 0
        self.wraps = 0
        self.went_backwards = False

    @classmethod
    def of(cls, point: ModbusPoint | BacnetPoint) -> Counter:
        """The counter of ``point``, wrapping at its modulus (a BACnet ``rollover``; a
        float Modbus counter without one does not wrap)."""
        if isinstance(point, BacnetPoint):
            return cls(point.rollover)
        try:
            return cls(counter_modulus(point))
        except CodecError:
            return cls(None)

    def count(self, point_id: str, value: Scalar | None) -> CounterEvent | None:
        """Take a new good reading; the wrap or backward jump it makes, if any."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        previous, self.last = self.last, value
        if previous is None or value == previous:
            return None
        modulus = self.modulus
        if value > previous:
            if value.__class__ is int and previous.__class__ is int:
                self.increase += value - previous  # the common case: exact already
            else:
                self.increase = exact_add(
                    self.increase, counter_delta(previous, value, modulus=modulus or 1))
            return None
        if modulus is None or counter_went_backwards(previous, value, modulus,
                                                     modulus * MAX_COUNTER_JUMP):
            self.went_backwards = True
            return CounterEvent(point_id, "backwards", previous, value)
        self.increase = exact_add(self.increase, counter_delta(previous, value, modulus=modulus))
        self.wraps += 1
        return CounterEvent(point_id, "wrap", previous, value)

    def status(self) -> CounterStatus:
        return CounterStatus(self.increase, self.wraps, self.went_backwards)
