"""One elevator car: answers calls, travels floor to floor, cycles its doors, fails on cue.

Drives ``elevator-ctl-modbus`` and ``elevator-mon-bacnet`` (same point ids). Passengers
arrive as journeys by the local time of day (:mod:`simulators.models.elevator_traffic`).
The car serves the journeys one at a time: a run with a simple trapezoid speed profile,
then a door cycle (:mod:`simulators.models.elevator_doors`) with a dwell that is longer
when people get in or out. An idle car returns to the lobby after five minutes.

Entrapment is detected the way monitoring units do it
(:mod:`simulators.models.elevator_alarm`): the car stands still outside a door zone with
its doors closed and someone inside for 10 s, or the alarm button is held for 15 s with
the doors closed. It stays detected until the doors open. Trapped passengers hold the
alarm button, then press it again every minute or two.

Options (site file): ``floors`` (20), ``lowest_floor`` (-2), ``floor_height`` (3.5 m),
``rated_speed`` (1.75 m/s). Floors are numbered as on the landing buttons, without 0.

Faults: ``passenger_trapped`` (arg ``alarm_hold_s``: how long the passenger first holds
the alarm button, default 60), ``overspeed``, ``door_lock_fault``, ``out_of_service``,
``inspection``. Writable point: ``out_of_service_request``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from simulators.models.base import DeviceModel, SimContext, Value, WriteRefused
from simulators.models.elevator_alarm import Entrapment
from simulators.models.elevator_doors import Doors
from simulators.models.elevator_traffic import (
    MAX_QUEUE,
    Journey,
    forced_journey,
    journey_arrives,
    new_journey,
)

ACCEL: Final = 0.8  # m/s², acceleration and deceleration of a run
SLOW_SPEED: Final = 0.3  # m/s, inspection runs and rescue re-levelling
DOOR_ZONE: Final = 0.15  # m either side of a landing
KG_PER_PERSON, RATED_LOAD_KG = 75, 1000
HOMING_S: Final = 300.0  # an idle car returns to the lobby after this

# fault word bits and the controller's fault codes (highest priority first)
SAFETY_CIRCUIT, DOOR_LOCK, OVERSPEED = 1 << 0, 1 << 1, 1 << 2
_CODES: Final = ((OVERSPEED, 33), (DOOR_LOCK, 48), (SAFETY_CIRCUIT, 41))

#: option -> (default, lowest, highest, integer)
_OPTIONS: Final[dict[str, tuple[float, float, float, bool]]] = {
    "floors": (20, 2, 200, True),
    "lowest_floor": (-2, -20, 100, True),
    "floor_height": (3.5, 2.4, 10.0, False),
    "rated_speed": (1.75, 0.4, 10.0, False),
}


def _number(label: str, value: object, low: float, high: float, integer: bool = False) -> float:
    """``value`` if it is a number (an int when ``integer``) from low to high, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or not (
            low <= value <= high):
        what = "an integer" if integer else "a number"
        raise ValueError(f"{label} must be {what} from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _option(options: Mapping[str, Any], name: str) -> float:
    default, low, high, integer = _OPTIONS[name]
    return _number(f"option {name!r}", options.get(name, default), low, high, integer)


def floor_labels(lowest: int, count: int) -> list[int]:
    """Landing numbers from ``lowest`` up, ``count`` of them, skipping 0 (no floor 0)."""
    return [f for f in range(lowest, lowest + count + 1) if f != 0][:count]


class ElevatorModel(DeviceModel):
    profiles: ClassVar[tuple[str, ...]] = ("elevator-ctl-modbus", "elevator-mon-bacnet")
    faults: ClassVar[frozenset[str]] = frozenset(
        {"passenger_trapped", "overspeed", "door_lock_fault", "out_of_service", "inspection"})

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        unknown = sorted(set(self.options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(_OPTIONS)})")
        self.labels = floor_labels(int(_option(self.options, "lowest_floor")),
                                   int(_option(self.options, "floors")))
        self.floor_height = _option(self.options, "floor_height")
        self.rated_speed = _option(self.options, "rated_speed")
        self.home = self.labels.index(1) if 1 in self.labels else 0
        rng = ctx.rng
        self._pos = self.home * self.floor_height  # m above the lowest landing
        self._speed, self._dir, self._vmax = 0.0, 0, self.rated_speed
        self._target: float | None = None
        self._queue: deque[Journey] = deque()
        self._journey: Journey | None = None
        self._people, self._idle_s = 0, 0.0
        self._evacuate = False  # at the next stop everybody gets out
        self._bits, self._spike_s = 0, 0.0
        self._halted: str | None = None  # the fault that stopped the car
        self._pending: str | None = None  # a trap or overspeed waiting for the next run
        self._oos_fault = self._oos_request = self._inspection_req = self._inspection = False
        self._insp_wait = 0.0
        self._alarm = Entrapment()
        self._trips = rng.randint(50_000, 400_000)
        self._doors = Doors(cycles=int(self._trips * 1.1) + rng.randint(0, 5_000))
        self._run_s = rng.uniform(2_000, 12_000) * 3600

    # ---- time ---------------------------------------------------------------------------

    def step(self, now: float, dt: float) -> None:
        if dt <= 0:
            return
        hour = self.ctx.clock.local_hour(now - dt)
        done = 0.0
        while dt - done > 1e-9:
            h = min(dt - done, self._tick_limit())
            self._tick((hour + done / 3600) % 24, h)
            done += h

    def _tick_limit(self) -> float:
        if (self._target is not None or not self._doors.closed or self._spike_s > 0
                or self._journey or self._evacuate or self._pending or self._queue):
            return 0.5
        if self._halted or self._alarm.pressed or self._people > 0 or self._alarm.trapped:
            return 1.0
        return 5.0

    def _tick(self, hour: float, h: float) -> None:
        self._arrivals(hour, h)
        self._alarm.press(self.ctx.rng, h)
        if self._spike_s > 0:
            self._spike_s = max(0.0, self._spike_s - h)
        elif self._target is not None:
            self._move(h)
        elif not self._doors.closed:
            self._doors.tick(h, self.ctx.rng, locked=bool(self._bits & DOOR_LOCK),
                             exchange=self._exchange)
        elif self._halted is None:
            self._dispatch(h)
        self._detect(h)

    def _arrivals(self, hour: float, h: float) -> None:
        rng = self.ctx.rng
        if self._serving() and len(self._queue) < MAX_QUEUE and journey_arrives(rng, hour, h):
            self._queue.append(new_journey(rng, len(self.labels), self.home, hour))
        self._alarm.nuisance(rng, h)

    # ---- motion -------------------------------------------------------------------------

    def _dispatch(self, h: float) -> None:
        """The car stands at rest with its doors closed: decide what it does next."""
        if self._inspection:
            self._inspection_run(h)
            return
        level = self._level_here()
        if level is None:  # off level (after inspection or a rescue): re-level slowly
            self._go(self._nearest() * self.floor_height, SLOW_SPEED)
            return
        if self._evacuate or (self._people > 0 and not self._serving()):
            self._open_doors()
            return
        if not self._serving():
            if self._bits & DOOR_LOCK:
                self._open_doors()  # the lock circuit will not make: doors stay open
            elif self._inspection_req:
                self._inspection = True
                self._insp_wait = self.ctx.rng.uniform(30, 300)
            return
        if self._journey is None and self._pending:
            self._journey = forced_journey(self.ctx.rng, len(self.labels), level,
                                           self._pending == "overspeed")
        if self._journey is None and self._queue:
            self._journey = self._queue.popleft()
        journey = self._journey
        if journey is None:
            self._idle_s += h
            if self._idle_s >= HOMING_S and level != self.home:
                self._go(self.home * self.floor_height, self.rated_speed)
            return
        stop = journey.dest if journey.aboard else journey.origin
        if level == stop:
            self._open_doors()
        else:
            self._go(stop * self.floor_height, self.rated_speed)

    def _go(self, target: float, vmax: float) -> None:
        if abs(target - self._pos) < 1e-3:
            return
        self._target, self._vmax, self._idle_s = target, vmax, 0.0
        self._dir = 1 if target > self._pos else -1
        if not self._inspection:
            self._trips += 1

    def _move(self, h: float) -> None:
        assert self._target is not None
        distance = abs(self._target - self._pos)
        v = min(self._vmax, self._speed + ACCEL * h, max(math.sqrt(2 * ACCEL * distance), 0.05))
        travel = min(distance, (self._speed + v) / 2 * h)
        self._pos += self._dir * travel
        self._speed = v
        self._run_s += h
        if self._strike():
            return
        if distance - travel < 1e-3:
            self._pos, self._target, self._speed = self._target, None, 0.0

    def _strike(self) -> bool:
        """A pending trap or overspeed stops the car once it is between floors."""
        between = self._off_level() >= min(1.0, 0.3 * self.floor_height)
        if self._pending is None or not self._serving() or not between or self._speed < 0.3:
            return False
        if self._pending == "overspeed":
            self._bits |= OVERSPEED | SAFETY_CIRCUIT
            self._spike_s = 1.0  # the governor trips at 115 % of rated speed
        else:
            self._bits |= SAFETY_CIRCUIT
            self._people = max(self._people, self.ctx.rng.randint(1, 3))
        self._halted, self._pending = self._pending, None
        self._target, self._speed, self._journey = None, 0.0, None
        self._queue.clear()  # waiting passengers give up and take another car
        return True

    def _inspection_run(self, h: float) -> None:
        """A technician on the car top moves the car a little now and then."""
        self._insp_wait -= h
        if self._insp_wait > 0:
            return
        rng = self.ctx.rng
        self._insp_wait = rng.uniform(60, 600)
        top = (len(self.labels) - 1) * self.floor_height
        self._go(min(top, max(0.0, self._pos + rng.uniform(-1.5, 1.5) * self.floor_height)),
                 SLOW_SPEED)

    def _withdraw(self) -> None:
        """Service withdrawn: stop at the next landing ahead and let everybody out."""
        self._queue.clear()
        if self._doors.state == "open":  # doors already open: everybody walks out now
            self._people = 0
        self._journey, self._evacuate = None, self._people > 0
        if self._target is None or self._inspection:
            return
        ahead = self._pos + self._dir * self._speed ** 2 / (2 * ACCEL)
        index = ahead / self.floor_height
        index = math.ceil(index - 1e-6) if self._dir > 0 else math.floor(index + 1e-6)
        landing = min(max(index, 0), len(self.labels) - 1) * self.floor_height
        if (landing - self._target) * self._dir < 0:
            self._target = landing

    def _nearest(self) -> int:
        return min(max(round(self._pos / self.floor_height), 0), len(self.labels) - 1)

    def _off_level(self) -> float:
        return abs(self._pos - self._nearest() * self.floor_height)

    def _level_here(self) -> int | None:
        return self._nearest() if self._off_level() < 0.01 else None

    # ---- doors and passengers -----------------------------------------------------------

    def _open_doors(self) -> None:
        self._doors.open()
        self._idle_s = 0.0

    def _exchange(self) -> float:
        """The doors are open: people get out or in; returns the extra dwell they need."""
        level, journey, moved = self._level_here(), self._journey, 0
        if self._evacuate or not self._serving():
            moved, self._people, self._journey, self._evacuate = self._people, 0, None, False
        elif journey is not None and not journey.aboard and level == journey.origin:
            journey.aboard, moved = True, journey.people
            self._people += journey.people
        elif journey is not None and journey.aboard and level == journey.dest:
            moved, self._journey = journey.people, None
            self._people = max(0, self._people - journey.people)
        return 0.8 * moved

    def _detect(self, h: float) -> None:
        closed = self._doors.closed
        still = self._target is None and self._spike_s <= 0
        stuck = (still and closed and self._people > 0 and not self._inspection
                 and self._off_level() > DOOR_ZONE)
        self._alarm.detect(h, stuck=stuck, closed=closed)

    # ---- state --------------------------------------------------------------------------

    def _serving(self) -> bool:
        return not (self._halted or self._oos_fault or self._oos_request
                    or self._inspection_req or self._bits & DOOR_LOCK)

    def mode(self) -> str:
        if self._inspection:
            return "inspection"
        if self._oos_fault or self._oos_request or self._bits & DOOR_LOCK:
            return "out_of_service"
        return "automatic"

    def values(self) -> dict[str, Value]:
        moving = self._target is not None or self._spike_s > 0
        direction = ("up" if self._dir > 0 else "down") if moving and self._dir else "none"
        speed = 1.15 * self.rated_speed if self._spike_s > 0 else self._speed
        run_state = "running" if moving else "emergency_stop" if self._halted else "stopped"
        return {
            "run_state": run_state,
            "direction": direction,
            "current_floor": self.labels[self._nearest()],
            "in_door_zone": self._off_level() <= DOOR_ZONE,
            "door_state": self._doors.state,
            "mode": self.mode(),
            "fault_code": next((code for bit, code in _CODES if self._bits & bit), 0),
            "fault_bits": self._bits,
            "alarm_button": self._alarm.pressed,
            "passenger_trapped": self._alarm.trapped,
            "load_percent": round(self._people * KG_PER_PERSON * 100 / RATED_LOAD_KG),
            "speed": round(speed, 2),
            "trip_count": self._trips,
            "run_hours": round(self._run_s / 3600, 1),
            "door_cycles": self._doors.cycles,
            "out_of_service_request": self._oos_request,
        }

    # ---- faults and commands ------------------------------------------------------------

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        allowed = {"alarm_hold_s"} if fault == "passenger_trapped" else set()
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise ValueError(f"{self.device_id}: fault {fault!r} takes no argument {unknown[0]!r}")
        if fault in ("passenger_trapped", "overspeed"):
            if not self._serving() or self._pending:
                raise ValueError(f"{self.device_id}: cannot inject {fault!r}: the car is not "
                                 f"in normal service (mode {self.mode()}, "
                                 f"pending {self._pending or 'none'})")
            if fault == "passenger_trapped":
                self._alarm.hold = _number(f"{self.device_id}: alarm_hold_s (s)",
                                           args.get("alarm_hold_s", 60.0), 0, 3600)
            self._pending = fault
            return
        if fault == "door_lock_fault":
            self._bits |= DOOR_LOCK
        elif fault == "out_of_service":
            self._oos_fault = True
        else:
            self._inspection_req = True
        self._withdraw()

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        """Repair or reset; clearing a trap or an overspeed is the rescue: the car
        re-levels slowly to the nearest landing and opens its doors."""
        self._check_fault(fault)
        if args:
            raise ValueError(f"{self.device_id}: clearing {fault!r} takes no arguments")
        if fault in ("passenger_trapped", "overspeed"):
            if self._pending == fault:
                self._pending = None
            if self._halted == fault:
                self._bits &= ~(SAFETY_CIRCUIT | OVERSPEED)
                self._halted, self._journey, self._spike_s = None, None, 0.0
                self._alarm.rescued()
                self._evacuate = self._people > 0
        elif fault == "door_lock_fault":
            self._bits &= ~DOOR_LOCK
        elif fault == "out_of_service":
            self._oos_fault = False
        else:
            if self._inspection and self._target is not None:
                self._target, self._speed = None, 0.0  # stop; the dispatcher re-levels
            self._inspection_req = self._inspection = False

    def write(self, point_id: str, value: Value) -> None:
        if point_id != "out_of_service_request":
            raise WriteRefused(f"{self.device_id}: point {point_id!r} is not writable")
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise WriteRefused(f"{self.device_id}: out_of_service_request takes true or false, "
                               f"got {value!r}")
        was, self._oos_request = self._oos_request, bool(value)
        if self._oos_request and not was:
            self._withdraw()
