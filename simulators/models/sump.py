"""A duplex sump pump draining a pit; drainage inflow follows the local time of day."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from simulators.models.base import SimContext, Value, WriteRefused
from simulators.models.pump_common import (
    PumpModel,
    bits,
    day_curve,
    fault_args,
    number_option,
    pumps_of,
    substeps,
)

#: fraction of peak drainage inflow by local hour (car-park washing, condensate, wash-down)
DRAINAGE = ((0.0, 0.2), (6.0, 0.2), (8.0, 1.0), (10.0, 0.5), (14.0, 0.4), (18.0, 0.9),
            (21.0, 0.5), (24.0, 0.2))


class SumpPumpModel(PumpModel):
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
            self.broken.update(self._stop(fault, args))
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
            "status_word": bits(self.mode == "auto", run1, run2, high, high_high, run1 and run2),
            "fault_word": bits(1 in self.failed, 2 in self.failed, self.high_flag, high_high),
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
