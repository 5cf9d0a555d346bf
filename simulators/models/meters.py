"""Energy and water meters: consumption that follows the day, counters that integrate and wrap.

**EnergyMeterModel** (``energy-meter-3p-modbus``): a building load that mixes an office day
(08:00-18:00) with residential mornings and evenings over a night-time base load; phase
voltages 230 V ±2 % with a slow drift and noise; power factor 0.86-0.98 (worse at light
load). The import counter integrates active power and wraps at 1,000,000 kWh (the
profile's ``rollover`` of 100000000 at 0.01 kWh).
Options: ``initial_kwh`` (default 0), ``peak_kw`` (150), ``base_kw`` (30),
``mix`` (``office`` | ``residential`` | ``mixed``, default ``mixed``), ``ct_ratio`` (300).
Faults: ``phase_loss`` {phase: 1-3}, ``power_failure``, ``overvoltage`` {phase?, volts?=258},
``undervoltage`` {phase?, volts?=198} (no ``phase``: all three), ``low_power_factor``
(capacitor bank out: PF about 0.78), ``counter_reset`` {kwh?=0}
(the meter is reset or replaced: the import counter jumps back; instantaneous, so
``clear("counter_reset")`` raises ValueError).

**WaterMeterModel** (``water-meter-modbus``): a building supply with morning and evening peaks
and almost no flow from 01:00 to 05:00 (now and then a short draw). The forward volume
integrates flow and wraps at 1,000,000 m³. Like real meters, the continuous-flow (leak)
bit sets when the flow has not dropped to zero for ``leak_detect_time`` hours (default 24).
Options: ``initial_m3`` (0), ``peak_m3h`` (6.0), ``battery`` (% at start, 85), ``serial``.
Faults: ``leak`` {rate?=0.4 m³/h, added all day and night}, ``burst`` {rate?=30},
``reverse_flow`` {rate?=0.5}, ``empty_pipe``, ``low_battery`` (clear = battery replaced),
``tamper`` (magnet), ``sensor_fault``.
"""

from __future__ import annotations

import cmath
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from simulators.models.base import DeviceModel, SimContext, Value, WriteRefused

SLICE = 300.0
"""Longest stretch of time integrated in one go (s): long clock jumps follow the day."""

KWH_MODULUS = 1_000_000.0
M3_MODULUS = 1_000_000.0
NOMINAL_V = 230.0
LOSS_V, UNDER_V, OVER_V = 23.0, 207.0, 253.0
DEMAND_PERIOD = 900.0
ZERO_FLOW = 0.01
"""m³/h below which the water meter counts the flow as stopped."""
Q4_M3H = 31.25
LOW_BATTERY = 10.0
BATTERY_DRAIN = 10.0 / (365 * 86400)
"""Percent per second: a ten-year battery."""

_OFFICE = ((0, 0.03), (6, 0.05), (8.5, 1.0), (12, 1.0), (12.5, 0.85), (13.5, 0.85),
           (14, 1.0), (17.5, 1.0), (20, 0.1), (24, 0.03))
_RESIDENTIAL = ((0, 0.15), (1, 0.05), (6, 0.05), (7.5, 0.5), (9, 0.3), (17, 0.35),
                (19, 1.0), (21.5, 1.0), (23, 0.4), (24, 0.15))
_WATER = ((0, 0.05), (1, 0.0), (5, 0.0), (6, 0.35), (7, 0.9), (8, 1.0), (9, 0.6), (11, 0.45),
          (12, 0.6), (14, 0.35), (17, 0.5), (19, 0.9), (21, 0.7), (23, 0.2), (24, 0.05))
_SHIFT = (0.0, -2 * math.pi / 3, 2 * math.pi / 3)


class EnergyMeterModel(DeviceModel):
    """A three-phase four-wire energy meter on a building incomer."""

    profiles: ClassVar[tuple[str, ...]] = ("energy-meter-3p-modbus",)
    faults: ClassVar[frozenset[str]] = frozenset({
        "phase_loss", "power_failure", "overvoltage", "undervoltage", "low_power_factor",
        "counter_reset"})

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        _known(self.options, {"initial_kwh", "peak_kw", "base_kw", "mix", "ct_ratio"})
        self.kwh = _number(self.options, "initial_kwh", 0.0, 0.0, KWH_MODULUS, high_open=True)
        self.peak_kw = _number(self.options, "peak_kw", 150.0, 1.0, 5000.0)
        self.base_kw = _number(self.options, "base_kw", 30.0, 0.0, self.peak_kw)
        self.mix = self.options.get("mix", "mixed")
        if self.mix not in ("office", "residential", "mixed"):
            raise ValueError(f"option 'mix' must be office, residential or mixed, got {self.mix!r}")
        self.ct_ratio = int(_number(self.options, "ct_ratio", 300, 1, 65535))
        rng = ctx.rng
        split = [1.0 + rng.uniform(-0.06, 0.06) for _ in range(3)]
        self.split = [s / sum(split) for s in split]
        self.drift = [rng.uniform(-0.01, 0.01) for _ in range(3)]
        self.kvarh = 0.0
        self.lost: set[int] = set()
        self.supply_lost = False
        self.capacitors_out = False
        self.v_forced: dict[int, float] = {}
        self._now = ctx.clock.now()
        self.demand = 0.0
        self.demand_max = 0.0
        self._v: dict[str, Value] = {}
        self._p_total = self._q_total = 0.0
        self._measure(self._now)
        self.demand = self.demand_max = float(self._p_total)

    def step(self, now: float, dt: float) -> None:
        for at, span in _slices(max(now - dt, min(self._now, now)), now):
            p_before, q_before = self._p_total, self._q_total
            self._measure(at, span)
            self.kwh = (self.kwh + (p_before + self._p_total) / 2 * span / 3600) % KWH_MODULUS
            self.kvarh = (self.kvarh + (q_before + self._q_total) / 2 * span / 3600) % KWH_MODULUS
            self.demand += (self._p_total - self.demand) * min(1.0, span / DEMAND_PERIOD)
            self.demand_max = max(self.demand_max, self.demand)
        self._now = max(self._now, now)
        self._measure(self._now)

    def load_kw(self, at: float) -> float:
        """The building's demand at ``at`` (kW), before noise."""
        hour = self.ctx.clock.local_hour(at)
        office, home = _interp(_OFFICE, hour), _interp(_RESIDENTIAL, hour)
        shape = {"office": office, "residential": home}.get(self.mix, (office + home) / 2)
        return self.base_kw + (self.peak_kw - self.base_kw) * shape

    def _measure(self, at: float, span: float = 0.0) -> None:
        rng = self.ctx.rng
        alive = [not self.supply_lost and p not in self.lost for p in (1, 2, 3)]
        volts: list[float] = []
        for i, ok in enumerate(alive):
            self.drift[i] += -self.drift[i] * min(1.0, span / 3600) + rng.gauss(
                0, 0.0008 * math.sqrt(min(span, SLICE)))
            self.drift[i] = max(-0.015, min(0.015, self.drift[i]))
            v = self.v_forced.get(i + 1, NOMINAL_V * (1 + self.drift[i]))
            volts.append(v * (1 + rng.gauss(0, 0.001)) if ok else abs(rng.gauss(0, 0.3)))
        load = self.load_kw(at) * (1 + rng.gauss(0, 0.015))
        ratio = (load - self.base_kw) / max(self.peak_kw - self.base_kw, 1e-9)
        pf = max(0.86, min(0.98, 0.88 + 0.09 * ratio + rng.gauss(0, 0.005)))
        if self.capacitors_out:
            pf = 0.78 + rng.gauss(0, 0.005)
        powers = [load * self.split[i] if ok else 0.0 for i, ok in enumerate(alive)]
        amps = [p * 1000 / (v * pf) if p > 0 else 0.0 for p, v in zip(powers, volts, strict=True)]
        p_total = sum(powers)
        pf_shown = pf if p_total > 0 else 1.0
        neutral = abs(sum(a * cmath.exp(1j * s) for a, s in zip(amps, _SHIFT, strict=True)))
        self._p_total, self._q_total = p_total, p_total * math.tan(math.acos(pf_shown))
        status = sum(1 << i for i, ok in enumerate(alive) if not ok) if any(alive) else 1 << 3
        status |= (any(v > OVER_V for v in volts) << 4
                   | any(LOSS_V < v < UNDER_V for v in volts) << 5)
        hz = 50.0 + max(-0.1, min(0.1, rng.gauss(0, 0.02))) if any(alive) else 0.0
        out = self._v
        for i in range(3):
            out[f"voltage_l{i + 1}"] = round(volts[i], 2)
            j = (i + 1) % 3
            line = math.sqrt(volts[i] ** 2 + volts[j] ** 2 + volts[i] * volts[j])
            out[f"voltage_l{i + 1}_l{j + 1}"] = round(line, 2)
            out[f"current_l{i + 1}"] = round(amps[i], 3)
            out[f"power_l{i + 1}"] = round(powers[i], 3)
        out.update({
            "current_neutral": round(neutral, 3), "power_total": round(p_total, 3),
            "reactive_power_total": round(self._q_total, 3),
            "apparent_power_total": round(p_total / pf_shown, 3),
            "power_factor": round(pf_shown, 3), "frequency": round(hz, 3),
            "alarm_status": status, "ct_ratio": self.ct_ratio, "reset_max_demand": False,
        })

    def values(self) -> dict[str, Value]:
        out = dict(self._v)
        out.update({
            "power_demand": round(self.demand, 3), "power_demand_max": round(self.demand_max, 3),
            "energy_import": _counter(self.kwh, 100), "energy_export": 0.0,
            "reactive_energy_import": _counter(self.kvarh, 100),
        })
        return out

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        if fault == "phase_loss":
            self.lost.add(_phase(args, required=True)[0])
        elif fault == "power_failure":
            self.supply_lost = True
        elif fault == "low_power_factor":
            self.capacitors_out = True
        elif fault in ("overvoltage", "undervoltage"):
            if fault == "overvoltage":
                volts = _number(args, "volts", 258.0, OVER_V + 0.1, 300.0)
            else:
                volts = _number(args, "volts", 198.0, LOSS_V + 1, UNDER_V - 0.1)
            self.v_forced.update(dict.fromkeys(_phase(args), volts))
        else:  # counter_reset
            self.kwh = _number(args, "kwh", 0.0, 0.0, KWH_MODULUS, high_open=True)
        self._measure(self._now)

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        if fault == "counter_reset":
            raise ValueError(f"{self.device_id}: 'counter_reset' is instantaneous; "
                             "there is nothing to clear")
        if fault == "phase_loss":
            self.lost -= set(_phase(args))
        elif fault == "power_failure":
            self.supply_lost = False
        elif fault == "low_power_factor":
            self.capacitors_out = False
        else:
            for phase in _phase(args):
                self.v_forced.pop(phase, None)
        self._measure(self._now)

    def write(self, point_id: str, value: Value) -> None:
        if point_id != "reset_max_demand":
            raise WriteRefused(f"{self.device_id}: point {point_id!r} is not writable")
        if value not in (True, False, 0, 1):
            raise WriteRefused(f"{self.device_id}: {point_id} takes true or false")
        if value:
            self.demand_max = self.demand


class WaterMeterModel(DeviceModel):
    """An ultrasonic water meter on a building's supply main."""

    profiles: ClassVar[tuple[str, ...]] = ("water-meter-modbus",)
    faults: ClassVar[frozenset[str]] = frozenset({
        "leak", "burst", "reverse_flow", "empty_pipe", "low_battery", "tamper", "sensor_fault"})

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        _known(self.options, {"initial_m3", "peak_m3h", "battery", "serial"})
        self.m3 = _number(self.options, "initial_m3", 0.0, 0.0, M3_MODULUS, high_open=True)
        self.peak = _number(self.options, "peak_m3h", 6.0, 0.1, 50.0)
        self.battery = _number(self.options, "battery", 85.0, 0.0, 100.0)
        serial = self.options.get("serial", f"UW{ctx.rng.randrange(10**9, 10**10)}")
        if not isinstance(serial, str) or not serial.isascii() or not 1 <= len(serial) <= 12:
            raise ValueError(f"option 'serial' must be 1-12 ASCII characters, got {serial!r}")
        self.serial = serial
        self.reverse_m3 = 0.0
        self.leak_detect_h = 24
        self.active: dict[str, float] = {}
        self._now = ctx.clock.now()
        self.last_zero = self._now
        self.draw_until = 0.0
        self.flow = 0.0
        self.temperature = 16.0
        self._flow_at(self._now, 0.0)

    def demand_m3h(self, at: float) -> float:
        """What the building draws at ``at`` (m³/h), before randomness and faults."""
        return self.peak * _interp(_WATER, self.ctx.clock.local_hour(at))

    def step(self, now: float, dt: float) -> None:
        for at, span in _slices(max(now - dt, min(self._now, now)), now):
            before = self.flow
            self._flow_at(at, span)
            mean = (before + self.flow) / 2
            if "empty_pipe" not in self.active and "sensor_fault" not in self.active:
                if mean >= 0:
                    self.m3 = (self.m3 + mean * span / 3600) % M3_MODULUS
                else:
                    self.reverse_m3 = (self.reverse_m3 - mean * span / 3600) % M3_MODULUS
            self.battery = max(0.0, self.battery - BATTERY_DRAIN * span)
        self._now = max(self._now, now)

    def _flow_at(self, at: float, span: float) -> None:
        rng = self.ctx.rng
        base = self.demand_m3h(at)
        if base < 0.02:  # the quiet night: now and then a tap or a flush
            if at >= self.draw_until and rng.random() < 1 - math.exp(-0.4 * span / 3600):
                self.draw_until = at + rng.uniform(60, 180)
            flow = rng.uniform(0.3, 0.8) if at < self.draw_until else 0.0
        else:
            flow = base * rng.uniform(0.75, 1.25)
        flow += self.active.get("leak", 0.0) + self.active.get("burst", 0.0)
        if "reverse_flow" in self.active:
            flow = -self.active["reverse_flow"]
        if "empty_pipe" in self.active or "sensor_fault" in self.active:
            flow = 0.0
        if flow < ZERO_FLOW:
            self.last_zero = at
        self.flow = flow
        hour = self.ctx.clock.local_hour(at)
        self.temperature = 16.0 + 2.5 * math.sin(2 * math.pi * (hour - 10) / 24)

    def values(self) -> dict[str, Value]:
        leak = self._now - self.last_zero >= self.leak_detect_h * 3600
        flags = (leak, "empty_pipe" in self.active, self.flow < 0,
                 self.battery < LOW_BATTERY, "tamper" in self.active,
                 "sensor_fault" in self.active, self.flow > Q4_M3H)
        return {
            "volume_total": _counter(self.m3, 1000), "flow_rate": round(self.flow, 4),
            "reverse_volume": _counter(self.reverse_m3, 1000),
            "water_temperature": round(self.temperature, 1),
            "battery_level": round(self.battery), "meter_status": _bits(flags),
            "meter_serial": self.serial, "leak_detect_time": self.leak_detect_h,
        }

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        defaults = {"leak": (0.4, 0.05, 5.0), "burst": (30.0, 5.0, 60.0),
                    "reverse_flow": (0.5, 0.05, 10.0)}
        if fault in defaults:
            self.active[fault] = _number(args, "rate", *defaults[fault])
        else:
            self.active[fault] = 1.0
        if fault == "low_battery":
            self.battery = min(self.battery, LOW_BATTERY - 2)
        self._flow_at(self._now, 0.0)

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        self.active.pop(fault, None)
        if fault == "low_battery":
            self.battery = 100.0  # replaced
        self._flow_at(self._now, 0.0)

    def write(self, point_id: str, value: Value) -> None:
        if point_id != "leak_detect_time":
            raise WriteRefused(f"{self.device_id}: point {point_id!r} is not writable")
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                1 <= value <= 168) or value != int(value):
            raise WriteRefused(f"{self.device_id}: leak_detect_time takes whole hours 1-168, "
                               f"got {value!r}")
        self.leak_detect_h = int(value)


# ---- helpers ------------------------------------------------------------------------


def _slices(start: float, end: float) -> list[tuple[float, float]]:
    """(end time, length) of the slices of ``start``..``end``, none longer than SLICE."""
    out: list[tuple[float, float]] = []
    while start < end:
        stop = min(end, start + SLICE)
        out.append((stop, stop - start))
        start = stop
    return out


def _interp(table: Sequence[tuple[float, float]], hour: float) -> float:
    for (h0, v0), (h1, v1) in itertools.pairwise(table):
        if h0 <= hour <= h1:
            return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return table[-1][1]


def _counter(value: float, per_unit: int) -> float:
    """A counter as the meter shows it: whole counts of its resolution, never rounded up."""
    return math.floor(value * per_unit + 1e-6) / per_unit


def _bits(flags: Sequence[bool]) -> int:
    return sum(1 << i for i, on in enumerate(flags) if on)


def _known(options: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")


def _number(args: Mapping[str, Any], name: str, default: float, low: float, high: float,
            *, high_open: bool = False) -> float:
    value = args.get(name, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value and (
        value < high if high_open else value <= high)
    if not ok:
        bound = f"below {high}" if high_open else f"at most {high}"
        raise ValueError(f"{name!r} must be a number from {low} {bound}, got {value!r}")
    return float(value)


def _phase(args: Mapping[str, Any], *, required: bool = False) -> list[int]:
    """The phase (1-3) named in ``args``, or all three when none is named."""
    if "phase" not in args:
        if required:
            raise ValueError("'phase' (1, 2 or 3) is required")
        return [1, 2, 3]
    phase = args["phase"]
    if isinstance(phase, bool) or phase not in (1, 2, 3):
        raise ValueError(f"'phase' must be 1, 2 or 3, got {phase!r}")
    return [int(phase)]
