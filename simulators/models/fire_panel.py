"""A conventional fire alarm control panel (消防主机) with up to 8 zones.

Drives ``fire-panel-bacnet`` and ``fire-panel-modbus`` (same point ids). Every zone
has a detector circuit whose *cause* (smoke, a wiring fault, a valve tamper) comes
and goes by scenario, and a panel that reacts the way real panels do:

- a fire alarm **latches**: it stays until a reset, and a reset only clears zones whose
  detectors are no longer in alarm (the smoke of an injected ``fire_alarm`` clears after
  ``hold`` seconds, 60 by default); pre-alarm, fault and supervisory follow their cause;
- a disabled zone reports nothing but "disabled" (its fire, fault and supervisory
  signals are suppressed); enabling it again with smoke present latches a fire;
- sounders sound while a zone is in fire and the panel is not silenced; a new fire zone
  resounds; evacuation starts on two zones in fire (coincidence) or when a fire has gone
  unsilenced for ``evacuation_delay`` seconds, or by the operator (``evacuate``);
- on mains failure the panel runs on its battery, whose voltage sags with the load
  (more with sounders on) and the state of charge; a battery below 22 V is a battery
  fault; when mains returns the charger refills the battery.

Faults and operator actions (``args`` in braces, ``zone`` is 1..``zones``):
``pre_alarm`` {zone, hold?, escalate_after?}, ``fire_alarm`` {zone, hold?},
``zone_fault`` {zone}, ``supervisory`` {zone}, ``zone_disabled`` {zone},
``mains_failure``, ``battery_fault`` (battery disconnected), and the operator's
``silence``, ``evacuate`` and ``reset``. ``clear`` ends a cause; ``clear("fire_alarm",
{zone})`` resets that zone (without ``zone``: the whole panel), ``clear("silence")``
resounds, ``clear("evacuate")`` silences; ``reset`` has nothing to clear.

Options: ``zones`` (1-8, default 8), ``evacuation_delay`` (s, default 180),
``reset_time`` (s the reset takes, default 8), ``battery_ah`` (default 17).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from simulators.models.base import DeviceModel, SimContext, Value

MAX_ZONES = 8
"""Zones the profiles describe."""

DEFAULT_SMOKE_HOLD = 60.0
"""Seconds an injected fire keeps its detector in alarm (then the smoke has cleared)."""

LOW_BATTERY_V = 22.0
"""Below this the panel reports a battery fault (24 V lead-acid, about 1.83 V per cell)."""

_FLOAT_V = 27.3  # charger float voltage at 25 °C (2.275 V per cell, 12 cells)
_R_INTERNAL = 0.15  # ohm, battery internal resistance
_QUIESCENT_A = 0.45  # panel and detectors at rest
_FIRE_ZONE_A = 0.05  # extra per zone in alarm
_SOUNDERS_A = 1.6  # alarm sounders and strobes
_CHARGE_A = 1.5  # charger current limit
_MAINS_NOISE_V = 1.2  # standard deviation of the mains wander
_MAINS_NOISE_TAU = 900.0  # s, how fast the wander changes

_ZONE_ARGS = frozenset({"zone"})
_ALLOWED_ARGS: dict[str, frozenset[str]] = {
    "pre_alarm": _ZONE_ARGS | {"hold", "escalate_after"},
    "fire_alarm": _ZONE_ARGS | {"hold"},
    "zone_fault": _ZONE_ARGS,
    "supervisory": _ZONE_ARGS,
    "zone_disabled": _ZONE_ARGS,
    "mains_failure": frozenset(),
    "battery_fault": frozenset(),
    "silence": frozenset(),
    "evacuate": frozenset(),
    "reset": frozenset(),
}
_OPTIONS = frozenset({"zones", "evacuation_delay", "reset_time", "battery_ah"})


@dataclass
class _Zone:
    """One detection zone: what its devices sense (causes) and what the panel latched."""

    smoke_left: float = 0.0
    """Seconds the detector stays at fire level (inf: until further notice)."""
    pre_left: float = 0.0
    """Seconds the detector stays at pre-alarm level."""
    escalate_left: float | None = None
    """Seconds until a pre-alarm grows into a fire."""
    fire_latched: bool = False
    fault: bool = False
    supervisory: bool = False
    disabled: bool = False

    def flags(self) -> dict[str, bool]:
        if self.disabled:
            return {"fire": False, "pre_alarm": False, "fault": False,
                    "supervisory": False, "disabled": True}
        return {"fire": self.fire_latched,
                "pre_alarm": self.pre_left > 0 and not self.fire_latched,
                "fault": self.fault, "supervisory": self.supervisory, "disabled": False}

    def state(self) -> str:
        flags = self.flags()
        for name, state in (("disabled", "disabled"), ("fire", "fire_alarm"),
                            ("pre_alarm", "pre_alarm"), ("supervisory", "supervisory"),
                            ("fault", "fault")):
            if flags[name]:
                return state
        return "quiet"


def _seconds(args: Mapping[str, Any], key: str, default: float) -> float:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{key!r} must be a number of seconds > 0, got {value!r}")
    return float(value)


class FirePanelModel(DeviceModel):
    """An 8-zone fire alarm control panel; read-only, as Towerwatch sees every fire panel."""

    profiles: ClassVar[tuple[str, ...]] = ("fire-panel-bacnet", "fire-panel-modbus")
    faults: ClassVar[frozenset[str]] = frozenset(_ALLOWED_ARGS)

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise ValueError(f"{device_id}: unknown option {unknown[0]!r} "
                             f"(known: {', '.join(sorted(_OPTIONS))})")
        zones = self.options.get("zones", MAX_ZONES)
        if isinstance(zones, bool) or not isinstance(zones, int) or not 1 <= zones <= MAX_ZONES:
            raise ValueError(f"{device_id}: option 'zones' must be an integer 1-{MAX_ZONES}, "
                             f"got {zones!r}")
        self.zones = zones
        self.evacuation_delay = self._option("evacuation_delay", 180.0, allow_zero=True)
        self.reset_time = self._option("reset_time", 8.0, allow_zero=False)
        self.battery_ah = self._option("battery_ah", 17.0, allow_zero=False)
        self._zones = [_Zone() for _ in range(MAX_ZONES)]
        self._mains_failed = False
        self._battery_disconnected = False
        self._soc = 1.0
        self._silenced = False
        self._evacuating = False
        self._unsilenced_fire_s = 0.0
        self._reset_left = 0.0
        self._mains_noise = ctx.rng.gauss(0.0, _MAINS_NOISE_V)
        self._battery_noise = 0.0
        self._hour = ctx.clock.local_hour(ctx.clock.now())

    def _option(self, name: str, default: float, *, allow_zero: bool) -> float:
        value = self.options.get(name, default)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and (
            value >= 0 if allow_zero else value > 0)
        if not ok or not math.isfinite(value):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{self.device_id}: option {name!r} must be a number {bound}, "
                             f"got {value!r}")
        return float(value)

    # --- time ------------------------------------------------------------------------

    def step(self, now: float, dt: float) -> None:
        dt = max(0.0, dt)
        self._hour = self.ctx.clock.local_hour(now)
        for zone in self._zones:
            zone.smoke_left = max(0.0, zone.smoke_left - dt)
            zone.pre_left = max(0.0, zone.pre_left - dt)
            if zone.escalate_left is None:
                continue
            if zone.escalate_left > dt:
                zone.escalate_left -= dt
                continue
            # the smouldering fire took hold during this step
            zone.smoke_left = max(0.0, DEFAULT_SMOKE_HOLD - (dt - zone.escalate_left))
            zone.escalate_left, zone.pre_left = None, 0.0
            if not zone.disabled:
                self._latch_fire(zone)
        self._reset_left = max(0.0, self._reset_left - dt)
        if self._sounders_on():
            self._unsilenced_fire_s += dt
        self._battery(dt)
        self._wander(dt)
        self._evaluate()

    def _battery(self, dt: float) -> None:
        capacity_as = self.battery_ah * 3600.0
        if self._battery_disconnected:
            return
        if self._mains_failed:
            self._soc = max(0.0, self._soc - self._load_a() * dt / capacity_as)
        elif self._soc < 0.9:  # bulk charge at the current limit, then taper
            self._soc = min(0.9, self._soc + _CHARGE_A * 0.9 * dt / capacity_as)
        else:
            rate = _CHARGE_A * 0.9 / (0.1 * capacity_as)
            self._soc = 1.0 - (1.0 - self._soc) * math.exp(-rate * dt)

    def _wander(self, dt: float) -> None:
        keep = math.exp(-dt / _MAINS_NOISE_TAU)
        fresh = math.sqrt(1.0 - keep * keep)
        self._mains_noise = keep * self._mains_noise + fresh * self.ctx.rng.gauss(
            0.0, _MAINS_NOISE_V)
        self._battery_noise = keep * self._battery_noise + fresh * self.ctx.rng.gauss(0.0, 0.01)

    # --- the panel's logic -----------------------------------------------------------

    def _latch_fire(self, zone: _Zone) -> None:
        if not zone.fire_latched:
            zone.fire_latched = True
            self._silenced = False  # a new fire zone resounds

    def _fire_zones(self) -> int:
        return sum(1 for z in self._zones if z.flags()["fire"])

    def _sounders_on(self) -> bool:
        return self._evacuating or (self._fire_zones() > 0 and not self._silenced)

    def _evaluate(self) -> None:
        for zone in self._zones:
            if zone.smoke_left > 0 and not zone.disabled:
                self._latch_fire(zone)
        fires = self._fire_zones()
        if fires == 0:
            self._unsilenced_fire_s = 0.0
        elif not self._silenced and (
                fires >= 2 or self._unsilenced_fire_s >= self.evacuation_delay):
            self._evacuating = True

    def _reset(self, zones: list[_Zone], *, panel: bool) -> None:
        """Reset: latched fires clear where the detector is quiet again; causes stay.

        A panel reset also ends silence and evacuation; a zone reset does so only when
        no zone is left in fire.
        """
        self._reset_left = self.reset_time
        for zone in zones:
            if zone.smoke_left <= 0:
                zone.fire_latched = False
        if panel or self._fire_zones() == 0:
            self._silenced = False
            self._evacuating = False
            self._unsilenced_fire_s = 0.0
        self._evaluate()

    def _silence(self) -> None:
        if self._sounders_on():
            self._silenced = self._fire_zones() > 0
            self._evacuating = False
            self._unsilenced_fire_s = 0.0

    # --- scenario interface ----------------------------------------------------------

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        self._check_args(fault, args)
        if fault == "fire_alarm":
            zone = self._zone(args)
            zone.smoke_left = _seconds(args, "hold", DEFAULT_SMOKE_HOLD)
            zone.pre_left, zone.escalate_left = 0.0, None
        elif fault == "pre_alarm":
            zone = self._zone(args)
            zone.pre_left = _seconds(args, "hold", math.inf)
            escalate = _seconds(args, "escalate_after", math.inf)
            # a pre-alarm that clears before its escalation time never becomes a fire
            zone.escalate_left = escalate if escalate < zone.pre_left else None
        elif fault == "zone_fault":
            self._zone(args).fault = True
        elif fault == "supervisory":
            self._zone(args).supervisory = True
        elif fault == "zone_disabled":
            self._zone(args).disabled = True
        elif fault == "mains_failure":
            self._mains_failed = True
        elif fault == "battery_fault":
            self._battery_disconnected = True
        elif fault == "silence":
            self._silence()
        elif fault == "evacuate":
            self._evacuating, self._silenced = True, False
        else:  # reset
            self._reset(self._zones, panel=True)
        self._evaluate()

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        self._check_args(fault, args)
        if fault == "fire_alarm":
            if "zone" in args:
                self._reset([self._zone(args)], panel=False)
            else:
                self._reset(self._zones, panel=True)
        elif fault == "pre_alarm":
            zone = self._zone(args)
            zone.pre_left, zone.escalate_left = 0.0, None
        elif fault == "zone_fault":
            self._zone(args).fault = False
        elif fault == "supervisory":
            self._zone(args).supervisory = False
        elif fault == "zone_disabled":
            self._zone(args).disabled = False
        elif fault == "mains_failure":
            self._mains_failed = False
        elif fault == "battery_fault":
            self._battery_disconnected = False
        elif fault == "silence":  # resound
            self._silenced = False
        elif fault == "evacuate":
            self._silence()
        else:
            raise ValueError(f"{self.device_id}: 'reset' is an operator action; "
                             "there is nothing to clear")
        self._evaluate()

    def _check_args(self, fault: str, args: Mapping[str, Any]) -> None:
        unknown = sorted(set(args) - _ALLOWED_ARGS[fault])
        if unknown:
            allowed = ", ".join(sorted(_ALLOWED_ARGS[fault])) or "none"
            raise ValueError(f"{self.device_id}: {fault!r} takes no argument {unknown[0]!r} "
                             f"(allowed: {allowed})")

    def _zone(self, args: Mapping[str, Any]) -> _Zone:
        number = args.get("zone")
        if isinstance(number, bool) or not isinstance(number, int) or not (
                1 <= number <= self.zones):
            raise ValueError(f"{self.device_id}: 'zone' must be an integer 1-{self.zones}, "
                             f"got {number!r}")
        return self._zones[number - 1]

    # --- what the panel reports ------------------------------------------------------

    def _load_a(self) -> float:
        sounders = _SOUNDERS_A if self._sounders_on() else 0.0
        return _QUIESCENT_A + _FIRE_ZONE_A * self._fire_zones() + sounders

    def _mains_voltage(self) -> float:
        if self._mains_failed:
            return 0.0
        # the grid runs high at night (light load), low in the evening peak
        daily = 3.5 * math.cos(2 * math.pi * (self._hour - 3.5) / 24)
        return round(221.0 + daily + self._mains_noise, 1)

    def _battery_voltage(self) -> float:
        if self._battery_disconnected:
            return 0.0
        soc = self._soc
        if self._mains_failed:
            knee = 2.4 * max(0.0, 0.15 - soc) / 0.15  # the steep end of discharge
            volts = 23.4 + 2.0 * soc - knee - self._load_a() * _R_INTERNAL
        else:  # charger: bulk charge rises to float; float is temperature compensated
            cabinet_c = 25.0 + 2.0 * math.sin(2 * math.pi * (self._hour - 9) / 24)
            volts = min(_FLOAT_V - 0.036 * (cabinet_c - 25.0), 25.6 + 1.9 * soc)
        return round(max(0.0, volts + self._battery_noise), 2)

    def values(self) -> dict[str, Value]:
        out: dict[str, Value] = {}
        counts = dict.fromkeys(("fire", "pre_alarm", "fault", "supervisory", "disabled"), 0)
        for number, zone in enumerate(self._zones, start=1):  # unused zones stay quiet
            out[f"zone{number}_state"] = zone.state()
            for name, on in zone.flags().items():
                out[f"zone{number}_{name}"] = on
                counts[name] += int(on)
        battery = self._battery_voltage()
        battery_fault = self._battery_disconnected or (
            self._mains_failed and battery < LOW_BATTERY_V)
        faults = counts["fault"] + int(self._mains_failed) + int(battery_fault)
        out.update({
            "mains_failure": self._mains_failed,
            "battery_fault": battery_fault,
            "silenced": self._silenced,
            "evacuation_active": self._evacuating,
            "reset_in_progress": self._reset_left > 0,
            "common_fire": counts["fire"] > 0,
            "common_fault": faults > 0,
            "sounders_active": self._sounders_on(),
            "fire_alarm_count": counts["fire"],
            "pre_alarm_count": counts["pre_alarm"],
            "fault_count": faults,
            "supervisory_count": counts["supervisory"],
            "disabled_count": counts["disabled"],
            "mains_voltage": self._mains_voltage(),
            "battery_voltage": battery,
            "configured_zones": self.zones,
        })
        return out
