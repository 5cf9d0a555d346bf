"""What the pump models share: integration substeps, day curves, options, faults, writes.

:mod:`simulators.models.booster` and :mod:`simulators.models.sump` integrate their
physics in substeps of at most :data:`MAX_SUBSTEP` seconds, so a test may jump the clock
by an hour in one step; randomness comes only from ``ctx.rng``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from itertools import pairwise
from typing import Any, ClassVar

from simulators.models.base import DeviceModel, SimContext, Value, WriteRefused

MAX_SUBSTEP = 5.0
"""Longest integration step, seconds."""
_MODES = {"off": 0, "manual": 1, "auto": 2}


def day_curve(curve: tuple[tuple[float, float], ...], hour: float) -> float:
    """Linear interpolation of ``(hour, value)`` pairs covering 0-24 h."""
    for (h0, v0), (h1, v1) in pairwise(curve):
        if h0 <= hour <= h1:
            return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return curve[-1][1]


def number_option(options: Mapping[str, Any], name: str, default: float,
                  low: float, high: float, *, integer: bool = False) -> float:
    """A numeric option in ``[low, high]``; ValueError names the option."""
    value = options.get(name, default)
    if (isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
            or (integer and not float(value).is_integer())):
        what = "a whole number" if integer else "a number"
        raise ValueError(f"option {name!r} must be {what} from {low:g} to {high:g}, got {value!r}")
    return float(value)


def fault_args(fault: str, args: Mapping[str, Any], allowed: str) -> None:
    extra = sorted(set(args) - {allowed})
    if extra:
        raise ValueError(f"fault {fault!r} takes only {allowed!r}, got {extra[0]!r}")


def pumps_of(fault: str, args: Mapping[str, Any], pumps: int) -> list[int]:
    """The pump numbers a fault names (``{"pump": N}``), or all of them when none is given."""
    fault_args(fault, args, "pump")
    if "pump" not in args:
        return list(range(1, pumps + 1))
    number = args["pump"]
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= pumps:
        raise ValueError(f"'pump' must be a pump number from 1 to {pumps}, got {number!r}")
    return [number]


def substeps(now: float, dt: float) -> Iterator[tuple[float, float]]:
    """``(time at end of substep, substep length)`` covering ``(now - dt, now]``."""
    count = max(1, math.ceil(dt / MAX_SUBSTEP))
    for k in range(1, count + 1):
        yield now - dt + dt * k / count, dt / count


def written_number(point: str, value: Value, low: float, high: float,
                   *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise WriteRefused(f"{point} takes a number from {low:g} to {high:g}, got {value!r}")
    if integer and not float(value).is_integer():
        raise WriteRefused(f"{point} takes a whole number, got {value!r}")
    return float(value)


def written_mode(value: Value) -> str:
    names = {v: k for k, v in _MODES.items()}
    mode = names.get(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if mode not in _MODES:
        raise WriteRefused(f"control_mode takes one of {', '.join(_MODES)}, got {value!r}")
    if mode == "manual":
        raise WriteRefused("control_mode 'manual' is selected at the local panel only")
    return str(mode)


def bits(*flags: bool) -> int:
    return sum(1 << i for i, on in enumerate(flags) if on)


class PumpModel(DeviceModel):
    """Counters, noise and control mode shared by the pump controllers."""

    PUMPS: ClassVar[int] = 2
    #: option -> (default, lowest, highest); whole numbers only for those in INTEGER
    OPTIONS: ClassVar[dict[str, tuple[float, float, float]]] = {}
    INTEGER: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown option {unknown[0]!r} "
                             f"(known: {', '.join(sorted(self.OPTIONS))})")
        self.opt = {name: number_option(options, name, *spec, integer=name in self.INTEGER)
                    for name, spec in self.OPTIONS.items()}
        rng = ctx.rng
        self.run_seconds = [rng.uniform(500.0, 8000.0) * 3600.0 for _ in range(self.PUMPS)]
        self.starts = [rng.randint(1000, 20000) for _ in range(self.PUMPS)]
        self.running, self.timer = [False] * self.PUMPS, [0.0] * self.PUMPS
        self.mode, self.noise = "auto", 1.0

    def _wander(self, h: float, spread: float) -> float:
        """Slowly wandering multiplicative noise around 1 (Ornstein-Uhlenbeck, tau 10 min)."""
        keep = math.exp(-h / 600.0)
        kick = self.ctx.rng.gauss(0.0, spread) * math.sqrt(1.0 - keep * keep)
        self.noise = min(2.0, max(0.2, 1.0 + (self.noise - 1.0) * keep + kick))
        return self.noise

    def _count_run(self, h: float) -> None:
        for i, on in enumerate(self.running):
            if on:
                self.run_seconds[i] += h

    def _start(self, i: int) -> None:
        self.running[i], self.timer[i] = True, 0.0
        self.starts[i] += 1

    def _stop(self, fault: str, args: Mapping[str, Any]) -> list[int]:
        """Stop the pumps a fault names (``pump``: that one, else all); their numbers."""
        pumps = pumps_of(fault, args, self.PUMPS)
        for p in pumps:
            self.running[p - 1], self.timer[p - 1] = False, 0.0
        return pumps

    #: writable setting -> (attribute, lowest, highest, whole numbers only)
    SETTINGS: ClassVar[dict[str, tuple[str, float, float, bool]]] = {}

    def write(self, point_id: str, value: Value) -> None:
        if point_id in self.SETTINGS:
            attr, low, high, integer = self.SETTINGS[point_id]
            number = written_number(point_id, value, low, high, integer=integer)
            self._check_setting(attr, number)
            setattr(self, attr, int(number) if integer else number)
        elif point_id == "control_mode":
            self.mode = written_mode(value)
        elif point_id == "fault_reset":
            if value is True or value == 1:
                self._reset()
        else:
            super().write(point_id, value)

    def _check_setting(self, attr: str, number: float) -> None:
        """Refuse a setting that does not fit the others (WriteRefused)."""

    def _reset(self) -> None:
        """The panel's fault reset: clear latched faults."""
