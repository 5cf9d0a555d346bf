"""An access-control door controller: people badge in and out, doors open, alarms latch.

Badges arrive per door at a rate that follows the working day (a morning and an evening
rush, a lunch bump, a quiet night). Every decision is appended to the event log; a
granted card (or the exit button, or a remote unlock) releases the lock for the door's
unlock time and the door contact opens for a few seconds. The controller watches the
contact: a door that opens while locked is *forced*; a door open longer than its
held-open time limit is *held*. Both set a flag and log an event, as real controllers do.

Faults (``inject``/``clear``), ``door`` is 1..``doors``:

- ``door_forced`` {door}: the door is pushed open without a grant; stays open until cleared.
- ``door_held`` {door}: a card opens the door and it is propped open; the held flag and
  event follow once the held-open time limit has passed.
- ``tamper`` {door?}: that door's reader tamper; without ``door``, the cabinet switch.
- ``reader_offline`` {door}: cards cannot be read there (the exit button still works).
- ``mains_failure``: the controller runs on its battery (battery low after 4 h).
- ``clear`` of ``door_forced``/``door_held``/``reader_offline`` without ``door`` clears all doors.
- ``badge`` {door, credential?, granted?=true, direction?="in", reason?}: one scripted card
  presentation, instantaneous. ``clear("badge")`` raises ValueError (nothing to clear).
  A badge at an offline reader or at a door that is forced/held open logs nothing.

Options: ``doors`` (2 or 4, default 4), ``traffic`` (badge-rate factor, default 1.0),
``cards`` (enrolled cards, default 300), ``held_timeout`` (s, default 30).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from simulators.models.base import DeviceModel, EventRecord, SimContext, Value, WriteRefused

#: event records kept in memory; at least the profile's ring capacity (64)
EVENTS_KEPT = 256
MAX_DOORS = 4
FIRMWARE_VERSION = 2.15
DENIALS = ("denied_unknown_card", "denied_expired", "denied_schedule", "denied_antipassback")
DIRECTIONS = ("in", "out")
HELD_TIMEOUT_RANGE = (5, 600)
UNLOCK_TIME_RANGE = (1, 60)
STEP_SLICE = 300.0
"""Longest slice of time one batch of arrivals covers (s)."""
BATTERY_HOURS = 4.0
"""Hours on battery before the controller reports its battery low."""

# (start hour, badges per hour per door, share of people going in)
_TRAFFIC: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.5, 0.3), (6.0, 15.0, 0.8), (7.0, 80.0, 0.85), (9.5, 25.0, 0.55),
    (11.5, 45.0, 0.5), (13.5, 25.0, 0.5), (17.0, 70.0, 0.2), (19.5, 12.0, 0.35),
    (23.0, 3.0, 0.3),
)


def traffic_at(hour: float) -> tuple[float, float]:
    """Badges per hour per door and the share going in, at a local ``hour`` (0-24)."""
    rate, share_in = _TRAFFIC[0][1], _TRAFFIC[0][2]
    for start, r, s in _TRAFFIC:
        if hour >= start:
            rate, share_in = r, s
    return rate, share_in


@dataclass
class _Door:
    number: int
    fitted: bool
    held_timeout: int
    unlock_time: int = 5
    open_until: float = 0.0
    opened_at: float = 0.0
    unlocked_until: float = 0.0
    rex_until: float = 0.0
    forced: bool = False
    propped: bool = False
    held: bool = False
    tamper: bool = False
    reader_offline: bool = False
    open_count: int = 0

    def is_open(self, now: float) -> bool:
        return self.forced or self.propped or now < self.open_until


class DoorControllerModel(DeviceModel):
    """A 2- or 4-door access controller with an event log."""

    profiles: ClassVar[tuple[str, ...]] = ("door-controller-modbus",)
    faults: ClassVar[frozenset[str]] = frozenset({
        "door_forced", "door_held", "tamper", "reader_offline", "mains_failure", "badge",
    })
    options_known: ClassVar[frozenset[str]] = frozenset({"doors", "traffic", "cards",
                                                          "held_timeout"})

    def __init__(self, device_id: str, ctx: SimContext, options: Mapping[str, Any]) -> None:
        super().__init__(device_id, ctx, options)
        unknown = sorted(set(self.options) - self.options_known)
        if unknown:
            raise ValueError(f"{device_id}: unknown option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(self.options_known))})")
        self.doors = _int_option(self.options, "doors", 4, 2, 4)
        if self.doors not in (2, 4):
            raise ValueError(f"{device_id}: option 'doors' must be 2 or 4, got {self.doors}")
        traffic = self.options.get("traffic", 1.0)
        if isinstance(traffic, bool) or not isinstance(traffic, int | float) or not (
                0 <= traffic <= 100):
            raise ValueError(f"{device_id}: option 'traffic' must be a number 0-100, "
                             f"got {traffic!r}")
        self.traffic = float(traffic)
        n_cards = _int_option(self.options, "cards", 300, 1, 100_000)
        held = _int_option(self.options, "held_timeout", 30, *HELD_TIMEOUT_RANGE)
        rng = ctx.rng
        self.cards: list[int] = sorted({rng.randrange(10_000_000, 4_000_000_000)
                                        for _ in range(n_cards)})
        self._doors = [_Door(n, n <= self.doors, held) for n in range(1, MAX_DOORS + 1)]
        self._events: deque[EventRecord] = deque(maxlen=EVENTS_KEPT)
        self._seq = 0
        self._now = ctx.clock.now()
        self.cabinet_tamper = False
        self.on_battery_since: float | None = None

    # ---- behaviour ----------------------------------------------------------------

    def step(self, now: float, dt: float) -> None:
        start = max(now - max(dt, 0.0), min(self._now, now))
        while start < now:  # long jumps go in slices so the rate follows the time of day
            end = min(now, start + STEP_SLICE)
            self._arrivals(start, end)
            start = end
        self._now = max(self._now, now)
        for door in self._fitted():
            self._watch(door, self._now)

    def _arrivals(self, start: float, end: float) -> None:
        rng = self.ctx.rng
        rate, _ = traffic_at(self.ctx.clock.local_hour(end))
        arrivals: list[tuple[float, _Door]] = []
        for door in self._fitted():
            count = _poisson(rng, rate * self.traffic * (end - start) / 3600.0)
            arrivals += [(rng.uniform(start, end), door) for _ in range(count)]
        for at, door in sorted(arrivals, key=lambda a: (a[0], a[1].number)):
            self._someone_at(door, max(at, self._now))

    def _someone_at(self, door: _Door, at: float) -> None:
        """One person at the door: a card at the reader, or the exit button from inside."""
        if door.forced or door.propped:
            return
        rng = self.ctx.rng
        _, share_in = traffic_at(self.ctx.clock.local_hour(at))
        direction = "in" if rng.random() < share_in else "out"
        if direction == "out" and rng.random() < 0.3:
            self._log(at, "rex", 0, door.number, "out")
            door.rex_until = at + 2.0
            self._pass(door, at)
            return
        if door.reader_offline:
            return
        night = self.ctx.clock.local_hour(at) < 6.0
        if rng.random() < (0.12 if night else 0.05):
            reason = "denied_schedule" if night and rng.random() < 0.5 else rng.choice(DENIALS)
            card = rng.choice(self.cards) if reason != "denied_unknown_card" else (
                rng.randrange(10_000_000, 4_000_000_000))
            self._log(at, reason, card, door.number, direction)
            return
        self._log(at, "granted", rng.choice(self.cards), door.number, direction)
        self._pass(door, at)

    def _pass(self, door: _Door, at: float) -> None:
        """Unlock, and one person walks through: the contact opens for a few seconds."""
        door.unlocked_until = max(door.unlocked_until, at + door.unlock_time)
        if not door.is_open(at):
            door.opened_at = at
            door.open_count += 1
        door.open_until = max(door.open_until, at + self.ctx.rng.uniform(3.0, 8.0))

    def _watch(self, door: _Door, now: float) -> None:
        """The controller's supervision of the contact: the held-open time limit."""
        is_open = door.is_open(now)
        if is_open and not door.forced and now - door.opened_at >= door.held_timeout:
            if not door.held:
                door.held = True
                self._log(now, "door_held", 0, door.number, "none")
        elif not is_open:
            door.held = False

    def _log(self, at: float, event: str, credential: int, door: int, direction: str) -> None:
        self._seq += 1
        ts = int(max(at, self._events[-1]["ts"] if self._events else 0))
        self._events.append({"seq": self._seq, "ts": ts, "credential": credential,
                             "event": event, "door": door, "direction": direction})

    def _fitted(self) -> list[_Door]:
        return [d for d in self._doors if d.fitted]

    def _at(self) -> float:
        self._now = max(self._now, self.ctx.clock.now())
        return self._now

    # ---- what the device shows ----------------------------------------------------

    def values(self) -> dict[str, Value]:
        now = self._now
        status = (int(self.cabinet_tamper) | int(self.on_battery_since is not None) << 1
                  | int(self._battery_low(now)) << 2)
        out: dict[str, Value] = {"controller_status": status, "door_count": self.doors,
                                 "firmware_version": FIRMWARE_VERSION}
        for d in self._doors:
            n = d.number
            out[f"door{n}_contact"] = "open" if d.is_open(now) else "closed"
            out[f"door{n}_lock"] = "unlocked" if now < d.unlocked_until else "locked"
            out[f"door{n}_forced"] = d.forced
            out[f"door{n}_held"] = d.held
            out[f"door{n}_tamper"] = d.tamper
            out[f"door{n}_reader_offline"] = d.reader_offline
            out[f"door{n}_rex"] = now < d.rex_until
            out[f"door{n}_open_count"] = d.open_count % 2**32
            out[f"door{n}_held_timeout"] = d.held_timeout
            out[f"door{n}_unlock_time"] = d.unlock_time
            out[f"door{n}_unlock_pulse"] = False
        return out

    def events(self) -> list[EventRecord]:
        return [dict(e) for e in self._events]

    def _battery_low(self, now: float) -> bool:
        since = self.on_battery_since
        return since is not None and now - since >= BATTERY_HOURS * 3600

    # ---- faults ---------------------------------------------------------------------

    def inject(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        now = self._at()
        if fault == "badge":
            self._badge(args, now)
        elif fault == "door_forced":
            door = self._door_arg(args)
            if not door.forced:
                door.forced, door.opened_at = True, now
                door.open_count += 1
                self._log(now, "door_forced", 0, door.number, "none")
        elif fault == "door_held":
            door = self._door_arg(args)
            if not door.propped:
                self._log(now, "granted", self.ctx.rng.choice(self.cards), door.number, "in")
                self._pass(door, now)
                door.propped = True
        elif fault == "tamper":
            self._set_tamper(args, True, now)
        elif fault == "reader_offline":
            door = self._door_arg(args)
            if not door.reader_offline:
                door.reader_offline = True
                self._log(now, "reader_offline", 0, door.number, "none")
        elif self.on_battery_since is None:  # mains_failure
            self.on_battery_since = now
            self._log(now, "mains_fail", 0, 0, "none")

    def clear(self, fault: str, args: Mapping[str, Any]) -> None:
        self._check_fault(fault)
        now = self._at()
        if fault == "badge":
            raise ValueError(f"{self.device_id}: 'badge' is instantaneous; there is nothing "
                             "to clear")
        if fault in ("door_forced", "door_held"):
            doors = [self._door_arg(args)] if "door" in args else self._fitted()
            for door in doors:
                if fault == "door_forced":
                    door.forced = False
                else:
                    door.propped = False
                door.open_until = min(door.open_until, now)
                self._watch(door, now)
        elif fault == "tamper":
            self._set_tamper(args, False, now)
        elif fault == "reader_offline":
            doors = [self._door_arg(args)] if "door" in args else self._fitted()
            for door in doors:
                if door.reader_offline:
                    door.reader_offline = False
                    self._log(now, "reader_online", 0, door.number, "none")
        elif self.on_battery_since is not None:  # mains_failure
            self.on_battery_since = None
            self._log(now, "mains_restored", 0, 0, "none")

    def _set_tamper(self, args: Mapping[str, Any], on: bool, now: float) -> None:
        if "door" in args:
            door = self._door_arg(args)
            if on and not door.tamper:
                self._log(now, "tamper", 0, door.number, "none")
            door.tamper = on
        else:
            if on and not self.cabinet_tamper:
                self._log(now, "tamper", 0, 0, "none")
            self.cabinet_tamper = on

    def _badge(self, args: Mapping[str, Any], now: float) -> None:
        door = self._door_arg(args)
        credential = args.get("credential", self.ctx.rng.choice(self.cards))
        if isinstance(credential, bool) or not isinstance(credential, int) or not (
                0 <= credential < 2**32):
            raise ValueError(f"{self.device_id}: badge 'credential' must be a card number "
                             f"0..{2**32 - 1}, got {credential!r}")
        granted = args.get("granted", True)
        if not isinstance(granted, bool):
            raise ValueError(f"{self.device_id}: badge 'granted' must be true or false")
        direction = args.get("direction", "in")
        if direction not in DIRECTIONS:
            raise ValueError(f"{self.device_id}: badge 'direction' must be 'in' or 'out', "
                             f"got {direction!r}")
        reason = args.get("reason", "denied_unknown_card")
        if reason not in DENIALS:
            raise ValueError(f"{self.device_id}: badge 'reason' must be one of "
                             f"{', '.join(DENIALS)}, got {reason!r}")
        if door.reader_offline or door.forced or door.propped:
            return
        self._log(now, "granted" if granted else reason, credential, door.number, direction)
        if granted:
            self._pass(door, now)

    def _door_arg(self, args: Mapping[str, Any]) -> _Door:
        number = args.get("door")
        if isinstance(number, bool) or not isinstance(number, int) or not (
                1 <= number <= self.doors):
            raise ValueError(f"{self.device_id}: 'door' must be 1..{self.doors}, got {number!r}")
        return self._doors[number - 1]

    # ---- writes -----------------------------------------------------------------------

    def write(self, point_id: str, value: Value) -> None:
        prefix, _, setting = point_id.partition("_")
        door = None
        if prefix.startswith("door") and prefix[4:].isdigit():
            number = int(prefix[4:])
            if 1 <= number <= MAX_DOORS:
                door = self._doors[number - 1]
        if door is None or setting not in ("unlock_pulse", "held_timeout", "unlock_time"):
            raise WriteRefused(f"{self.device_id}: point {point_id!r} is not writable")
        if not door.fitted:
            raise WriteRefused(f"{self.device_id}: door {door.number} is not fitted "
                               f"(this controller has {self.doors} doors)")
        if setting == "unlock_pulse":
            if value not in (True, False, 0, 1):
                raise WriteRefused(f"{self.device_id}: {point_id} takes true or false")
            if value:
                now = self._at()
                self._log(now, "remote_unlock", 0, door.number, "none")
                if not (door.forced or door.propped):
                    self._pass(door, now)
            return
        low, high = HELD_TIMEOUT_RANGE if setting == "held_timeout" else UNLOCK_TIME_RANGE
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                low <= value <= high) or value != int(value):
            raise WriteRefused(f"{self.device_id}: {point_id} takes whole seconds "
                               f"{low}-{high}, got {value!r}")
        if setting == "held_timeout":
            door.held_timeout = int(value)
        else:
            door.unlock_time = int(value)


def _int_option(options: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"option {name!r} must be a whole number {low}-{high}, got {value!r}")
    return value


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (normal approximation for large means)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
