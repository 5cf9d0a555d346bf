"""A variable-speed booster pump set on a break tank; water use follows the local time of day."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from simulators.models.base import SimContext, Value
from simulators.models.pump_common import (
    PumpModel,
    bits,
    day_curve,
    fault_args,
    number_option,
    pumps_of,
    substeps,
)

#: fraction of peak water use by local hour: low at night, morning and evening peaks
WATER_USE = ((0.0, 0.06), (5.0, 0.06), (6.0, 0.45), (7.0, 1.0), (8.5, 0.85), (9.5, 0.45),
             (12.0, 0.55), (14.0, 0.4), (17.0, 0.5), (19.0, 0.95), (21.0, 0.85), (22.5, 0.3),
             (24.0, 0.06))


class BoosterPumpSetModel(PumpModel):
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
            self.tripped.update(self._stop(fault, args))
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
            "status_word": bits(self.mode == "auto", running, self.standby_in_use,
                                 abs(self.measured - self.setpoint) <= 0.02, self.valve_open,
                                 self.dry_run, short),
            "fault_word": bits(1 in self.tripped, 2 in self.tripped, 3 in self.tripped,
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
