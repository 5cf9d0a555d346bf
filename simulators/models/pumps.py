"""Water pumps: a variable-speed booster set on a break tank, and a duplex sump pump.

Both integrate their physics in substeps of at most :data:`MAX_SUBSTEP` seconds, so a
test may jump the clock by an hour in one step. Water use (booster) and drainage inflow
(sump) follow the building's local time of day; randomness comes only from ``ctx.rng``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from itertools import pairwise
from typing import Any, ClassVar

from simulators.models.base import DeviceModel, SimContext, Value, WriteRefused

MAX_SUBSTEP = 5.0
"""Longest integration step, seconds."""

#: fraction of peak water use by local hour: low at night, morning and evening peaks
WATER_USE = ((0.0, 0.06), (5.0, 0.06), (6.0, 0.45), (7.0, 1.0), (8.5, 0.85), (9.5, 0.45),
             (12.0, 0.55), (14.0, 0.4), (17.0, 0.5), (19.0, 0.95), (21.0, 0.85), (22.5, 0.3),
             (24.0, 0.06))
#: fraction of peak drainage inflow by local hour (car-park washing, condensate, wash-down)
DRAINAGE = ((0.0, 0.2), (6.0, 0.2), (8.0, 1.0), (10.0, 0.5), (14.0, 0.4), (18.0, 0.9),
            (21.0, 0.5), (24.0, 0.2))
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


def _bits(*flags: bool) -> int:
    return sum(1 << i for i, on in enumerate(flags) if on)


class _PumpModel(DeviceModel):
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


class BoosterPumpSetModel(_PumpModel):
    """Three VFD pumps holding outlet pressure, fed from a break tank with a float inlet valve.

    Options: ``setpoint`` (MPa, 0.45), ``rotation_hours`` (24; 0 = no rotation),
    ``duty_pumps`` (2), ``pump_flow`` (m³/h per pump, 20), ``peak_flow`` (m³/h, 30),
    ``tank_volume`` (m³, 60), ``tank_height`` (m, 3), ``inlet_flow`` (m³/h, 24),
    ``rated_current`` (A, 15). Faults: ``pump_trip`` ``{pump: N}`` (all pumps without
    ``pump``), ``tank_low`` ``{level: percent}`` (inlet supply lost, tank at 5 % by default).
    """

    profiles = ("booster-pumpset-modbus",)
    faults = frozenset({"pump_trip", "tank_low"})
    PUMPS = 3
    START_DELAY = 2.0
    TAU = 4.0
    OPTIONS: ClassVar[dict[str, tuple[float, float, float]]] = {
        "setpoint": (0.45, 0.1, 1.6), "rotation_hours": (24, 0, 720), "duty_pumps": (2, 1, 3),
        "pump_flow": (20.0, 1.0, 500.0), "peak_flow": (30.0, 0.0, 1500.0),
        "tank_volume": (60.0, 1.0, 5000.0), "tank_height": (3.0, 0.5, 20.0),
        "inlet_flow": (24.0, 0.0, 3000.0), "rated_current": (15.0, 0.5, 500.0)}
    INTEGER = frozenset({"rotation_hours", "duty_pumps"})

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        self.setpoint, self.rotation_hours = self.opt["setpoint"], self.opt["rotation_hours"]
        self.duty_count = int(self.opt["duty_pumps"])
        self.pump_flow, self.tank_volume = self.opt["pump_flow"], self.opt["tank_volume"]
        self.dry_run_level = 10.0
        self.lead, self.stage, self.rotation_elapsed = 1, 1, 0.0
        self.tripped: set[int] = set()
        self.speed = [0.0] * self.PUMPS
        self.volume = 0.85 * self.tank_volume
        self.valve_open = self.supply_lost = self.dry_run = False
        self.pressure = self.measured = self.setpoint
        self.demand = self.opt["peak_flow"] * day_curve(WATER_USE, ctx.clock.local_hour())
        self.stage = min(self.duty_count, max(1, math.ceil(self.demand / self.pump_flow)))
        for p in self.duty_set()[: self.stage]:  # start as if it had been running for a while
            self.running[p - 1] = True
        self.flow = 0.0
        self._hydraulics(0.0)

    def step(self, now: float, dt: float) -> None:
        for t, h in substeps(now, dt):
            hour = self.ctx.clock.local_hour(t)
            self.demand = self.opt["peak_flow"] * day_curve(WATER_USE, hour) * self._wander(h, 0.1)
            self._rotate(h)
            level = self.level_pct
            if level < self.dry_run_level:
                self.dry_run = True
            elif self.dry_run and level >= self.dry_run_level + 10.0:
                self.dry_run = False
            self._stage_pumps(h)
            self._hydraulics(h)
            self._tank(h)
            self._count_run(h)
        self.measured = max(0.0, self.pressure + self.ctx.rng.gauss(0.0, 0.002))

    def order(self) -> list[int]:
        """Pump numbers in duty order, the lead pump first."""
        return [(self.lead - 1 + k) % self.PUMPS + 1 for k in range(self.PUMPS)]

    def duty_set(self) -> list[int]:
        """The pumps allowed to run: the first healthy ones in duty order."""
        return [p for p in self.order() if p not in self.tripped][: self.duty_count]

    @property
    def standby_in_use(self) -> bool:
        return bool(set(self.duty_set()) - set(self.order()[: self.duty_count]))

    @property
    def level_pct(self) -> float:
        return 100.0 * self.volume / self.tank_volume

    def _rotate(self, h: float) -> None:
        if self.rotation_hours <= 0:
            return
        self.rotation_elapsed += h
        if self.rotation_elapsed >= self.rotation_hours * 3600.0:
            self.rotation_elapsed = 0.0
            healthy = [p for p in self.order()[1:] if p not in self.tripped]
            if healthy:
                self.lead = healthy[0]

    def _stage_pumps(self, h: float) -> None:
        duty = self.duty_set()
        if self.mode != "auto" or self.dry_run or not duty:
            self.stage = 0
        else:
            want, cap = max(1, self.stage), self.pump_flow
            if self.demand > want * cap * 0.95:
                want += 1
            elif want > 1 and self.demand < (want - 1) * cap * 0.8:
                want -= 1
            self.stage = min(want, len(duty))
        commanded = duty[: self.stage]
        for p in commanded:
            i = p - 1
            if not self.running[i]:
                self.timer[i] += h
                if self.timer[i] >= self.START_DELAY:
                    self._start(i)
        ready = sum(self.running[p - 1] for p in commanded)
        for i in range(self.PUMPS):
            if i + 1 not in commanded:
                self.timer[i] = 0.0
                # a pump leaving duty runs on until its replacement is up (no pressure dip)
                if self.running[i] and (not commanded or ready >= len(commanded)):
                    self.running[i] = False

    def _hydraulics(self, h: float) -> None:
        running = sum(self.running)
        capacity = running * self.pump_flow
        static = 0.0098 * (self.tank_level + 0.3)
        if running:
            self.flow = min(self.demand, capacity)
            load = self.flow / capacity
            if self.demand <= capacity:
                target, speed = self.setpoint - 0.01 * load, 62.0 + 38.0 * load
            else:
                target, speed = max(static, self.setpoint * (capacity / self.demand) ** 2), 100.0
        else:
            self.flow, target, speed = 0.0, static, 0.0
        self.pressure += (target - self.pressure) * (1.0 - math.exp(-h / self.TAU))
        self.speed = [speed if on else 0.0 for on in self.running]

    def _tank(self, h: float) -> None:
        level = self.level_pct
        if self.valve_open and level >= 97.0:
            self.valve_open = False
        elif not self.valve_open and level <= 85.0:
            self.valve_open = True
        inflow = self.opt["inlet_flow"] if self.valve_open and not self.supply_lost else 0.0
        self.volume += (inflow - self.flow) * h / 3600.0
        self.volume = min(self.tank_volume, max(0.0, self.volume))

    @property
    def tank_level(self) -> float:
        return self.opt["tank_height"] * self.volume / self.tank_volume

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        if fault == "pump_trip":
            for p in pumps_of(fault, args, self.PUMPS):
                self.tripped.add(p)
                self.running[p - 1], self.timer[p - 1] = False, 0.0
        else:
            fault_args(fault, args, "level")
            level = number_option(args, "level", 5.0, 0.0, 100.0)
            self.supply_lost = True
            self.volume = min(self.volume, self.tank_volume * level / 100.0)

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        if fault == "pump_trip":
            self.tripped -= set(pumps_of(fault, args, self.PUMPS))
        else:
            self.supply_lost = False

    SETTINGS: ClassVar[dict[str, tuple[str, float, float, bool]]] = {
        "pressure_setpoint": ("setpoint", 0.1, 1.6, False),
        "rotation_period": ("rotation_hours", 0, 720, True),
        "duty_pumps": ("duty_count", 1, 3, True), "dry_run_level": ("dry_run_level", 2, 50, False)}

    def _reset(self) -> None:
        self.tripped.clear()
        self.dry_run = self.dry_run and self.level_pct < self.dry_run_level

    def values(self) -> dict[str, Value]:
        running = any(self.running)
        capacity = sum(self.running) * self.pump_flow
        short = running and self.demand > capacity
        level = self.level_pct
        if self.mode != "auto":
            state = "stopped"
        elif self.dry_run:
            state = "dry_run"
        elif not self.duty_set():
            state = "all_faulted"
        else:
            state = "degraded" if self.tripped or short else "running"
        left = max(0.0, self.rotation_hours * 3600.0 - self.rotation_elapsed)
        out: dict[str, Value] = {
            "status_word": _bits(self.mode == "auto", running, self.standby_in_use,
                                 abs(self.measured - self.setpoint) <= 0.02, self.valve_open,
                                 self.dry_run, short),
            "fault_word": _bits(1 in self.tripped, 2 in self.tripped, 3 in self.tripped,
                                self.dry_run, level < 20.0, self.pressure < 0.75 * self.setpoint,
                                not running and self.pressure < self.setpoint - 0.1, False),
            "outlet_pressure": round(self.measured, 3),
            "suction_pressure": round(0.0098 * (self.tank_level + 0.3)
                                      - 0.01 * (self.flow / (3 * self.pump_flow)) ** 2, 3),
            "tank_level_pct": round(level, 1), "tank_level": round(self.tank_level, 2),
            "flow": round(self.flow, 1), "duty_pump": (self.duty_set() or [self.lead])[0],
            "pumps_running": sum(self.running), "set_state": state,
            "rotation_remaining": math.ceil(left / 60.0) if self.rotation_hours > 0 else 0,
            "pressure_setpoint": round(self.setpoint, 3),
            "rotation_period": int(self.rotation_hours), "duty_pumps": self.duty_count,
            "dry_run_level": round(self.dry_run_level, 1), "control_mode": self.mode,
            "fault_reset": False, "low_water_switch": level < self.dry_run_level,
            "inlet_valve_open": self.valve_open,
        }
        for i in range(self.PUMPS):
            n, speed = i + 1, self.speed[i]
            out[f"pump{n}_running"] = self.running[i]
            out[f"pump{n}_fault"] = n in self.tripped
            out[f"pump{n}_speed"] = round(speed, 1)
            current = (0.15 + 0.85 * (speed / 100.0) ** 3) if speed else 0.0
            out[f"pump{n}_current"] = round(self.opt["rated_current"] * current, 1)
            out[f"pump{n}_run_hours"] = int(self.run_seconds[i] // 3600)
            out[f"pump{n}_starts"] = self.starts[i]
        return out


class SumpPumpModel(_PumpModel):
    """Two pumps draining a pit: lead starts at one level, lag at a higher one, both stop low.

    Options: ``pit_depth`` (m, 2.5), ``pit_area`` (m², 4), ``pump_flow`` (m³/h, 25),
    ``base_inflow`` (m³/h groundwater, 1.5), ``peak_inflow`` (m³/h extra at busy hours, 3),
    ``rated_current`` (A, 12). Faults: ``pump_fail`` ``{pump: N}`` (both without ``pump``;
    the pump does not run when called), ``high_inflow`` ``{rate: m³/h}`` (extra inflow,
    default 1.6 × ``pump_flow``).
    """

    profiles = ("sump-pump-modbus",)
    faults = frozenset({"pump_fail", "high_inflow"})
    PUMPS = 2
    START_DELAY = 1.0
    FAIL_DELAY = 5.0
    OPTIONS: ClassVar[dict[str, tuple[float, float, float]]] = {
        "pit_depth": (2.5, 0.5, 10.0), "pit_area": (4.0, 0.25, 100.0),
        "pump_flow": (25.0, 1.0, 500.0), "base_inflow": (1.5, 0.0, 500.0),
        "peak_inflow": (3.0, 0.0, 500.0), "rated_current": (12.0, 0.5, 500.0)}

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        self.depth = d = self.opt["pit_depth"]
        self.area, self.pump_flow = self.opt["pit_area"], self.opt["pump_flow"]
        self.lead_start, self.lag_start, self.stop = 0.48 * d, 0.6 * d, 0.16 * d
        self.high_setpoint = 0.68 * d
        self.high_float, self.high_high_float = 0.72 * d, 0.84 * d
        self.level, self.lead = self.stop + 0.3 * (self.lead_start - self.stop), 1
        self.pumping = self.lag_called = self.high_flag = False
        self.broken: set[int] = set()  # injected: will not run when called
        self.failed: set[int] = set()  # latched fail-to-start, cleared by a reset
        self.extra_inflow = self.inflow = 0.0

    def step(self, now: float, dt: float) -> None:
        for t, h in substeps(now, dt):
            hour = self.ctx.clock.local_hour(t)
            drain = self.opt["peak_inflow"] * day_curve(DRAINAGE, hour) * self._wander(h, 0.15)
            self.inflow = self.opt["base_inflow"] + drain + self.extra_inflow
            self._control(h)
            outflow = sum(self.running) * self.pump_flow
            self.level += (self.inflow - outflow) * h / 3600.0 / self.area
            self.level = min(self.depth, max(0.0, self.level))
            if self.level >= self.high_setpoint:
                self.high_flag = True
            elif self.level < self.high_setpoint - 0.05:
                self.high_flag = False
            self._count_run(h)

    def _control(self, h: float) -> None:
        if self.mode != "auto":
            self.pumping = self.lag_called = False
        else:
            if self.level >= self.lead_start:
                self.pumping = True
            if self.level >= self.lag_start:
                self.lag_called = True
            if self.level <= self.stop:
                if self.pumping:
                    self.lead = 3 - self.lead  # alternate every cycle
                self.pumping = self.lag_called = False
        order = [self.lead, 3 - self.lead]
        available = [p for p in order if p not in self.failed]
        commanded = available[: int(self.pumping) + int(self.lag_called)]
        for i in range(self.PUMPS):
            if i + 1 not in commanded:
                self.running[i], self.timer[i] = False, 0.0
            elif not self.running[i]:
                self.timer[i] += h
                if i + 1 in self.broken and self.timer[i] >= self.FAIL_DELAY:
                    self.failed.add(i + 1)  # fail to start: latched until reset
                    self.timer[i] = 0.0
                elif i + 1 not in self.broken and self.timer[i] >= self.START_DELAY:
                    self._start(i)

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        if fault == "pump_fail":
            for p in pumps_of(fault, args, self.PUMPS):
                self.broken.add(p)
                self.running[p - 1], self.timer[p - 1] = False, 0.0
        else:
            fault_args(fault, args, "rate")
            self.extra_inflow = number_option(args, "rate", 1.6 * self.pump_flow, 0.0, 5000.0)

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        if fault == "pump_fail":
            repaired = set(pumps_of(fault, args, self.PUMPS))
            self.broken -= repaired
            self.failed -= repaired
        else:
            self.extra_inflow = 0.0

    SETTINGS: ClassVar[dict[str, tuple[str, float, float, bool]]] = {
        "lead_start_level": ("lead_start", 0.05, 10.0, False),
        "lag_start_level": ("lag_start", 0.05, 10.0, False),
        "stop_level": ("stop", 0.05, 10.0, False),
        "high_level_setpoint": ("high_setpoint", 0.05, 10.0, False)}

    def _check_setting(self, attr: str, number: float) -> None:
        levels = {k: getattr(self, k) for k in ("stop", "lead_start", "lag_start", "high_setpoint")}
        levels[attr] = number
        if not (levels["stop"] < levels["lead_start"] <= levels["lag_start"]
                < levels["high_setpoint"] < self.depth):
            raise WriteRefused(f"{attr} {number:g} m breaks stop < lead start <= lag start "
                               f"< high level < pit depth ({self.depth:g} m)")

    def _reset(self) -> None:
        self.failed.clear()

    def values(self) -> dict[str, Value]:
        run1, run2 = self.running
        high, high_high = self.level >= self.high_float, self.level >= self.high_high_float
        out: dict[str, Value] = {
            "status_word": _bits(self.mode == "auto", run1, run2, high, high_high, run1 and run2),
            "fault_word": _bits(1 in self.failed, 2 in self.failed, self.high_flag, high_high),
            "pit_level": round(self.level, 2),
            "pit_level_pct": round(100.0 * self.level / self.depth, 1),
            "lead_pump": next((p for p in (self.lead, 3 - self.lead) if p not in self.failed),
                              self.lead),
            "float_high": high, "float_high_high": high_high,
            "lead_start_level": round(self.lead_start, 2),
            "lag_start_level": round(self.lag_start, 2), "stop_level": round(self.stop, 2),
            "high_level_setpoint": round(self.high_setpoint, 2), "control_mode": self.mode,
            "fault_reset": False,
        }
        for i in range(self.PUMPS):
            n = i + 1
            load = 0.95 + 0.05 * self.level / self.depth
            current = self.opt["rated_current"] * load if self.running[i] else 0.0
            out[f"pump{n}_current"] = round(current, 1)
            out[f"pump{n}_run_hours"] = math.floor(self.run_seconds[i] / 360.0) / 10.0
            out[f"pump{n}_starts"] = self.starts[i]
        return out
