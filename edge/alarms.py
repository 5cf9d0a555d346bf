"""Edge alarm rules: a profile's ``alarms`` evaluated on decoded values, every cycle.

Pure code, no I/O. :class:`AlarmEngine` turns readings into :class:`AlarmTransition` s
(``active`` / ``cleared``); the daemon publishes them as ``event`` messages.

Semantics of one rule (``device_profiles.schema.AlarmRule``):

- ``eq ne gt ge lt le in`` compare the point's value; ``bit`` tests a bit of a bitfield
  point, by name (the profile's ``bits``) or number; ``stale`` holds while the point's
  quality is ``stale`` (the device is offline).
- Value conditions are evaluated only on a ``good`` value. While the point is ``bad`` or
  ``stale`` the rule keeps its state (no transition) and any on/off-delay countdown starts
  again on the next good reading: going offline neither raises nor clears value alarms
  (the comm-loss alarm covers it).
- ``on_delay``: the condition must hold continuously that long before the alarm goes
  active; ``off_delay``: it must be false continuously that long before it clears.
- ``deadband`` (hysteresis) on ``gt``/``ge``/``lt``/``le``: once active, the threshold
  moves by the deadband away from the alarm side, so ``gt: 25, deadband: 2`` raises above
  25 and clears at 23 or below (``ge``: below 23; ``lt``/``le`` mirrored). With deadband 0
  the alarm clears exactly when the condition is false.

State is not persisted: after a restart :meth:`AlarmEngine.restore` may seed the active
set, and otherwise an alarm whose condition still holds is raised again; the cloud
deduplicates by the alarm that is already open.

Every device also gets a communication-loss alarm, ``comm_loss``
(:meth:`AlarmEngine.comm_loss_transition`), whether or not its profile has a ``stale`` rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from device_profiles.schema import AlarmRule, BacnetProfile, ModbusProfile, Severity
from edge.points import PointTable, Quality, Scalar

__all__ = ["COMM_LOSS", "AlarmEngine", "AlarmTransition", "Readings"]

COMM_LOSS: Final = "comm_loss"
_COMM_LOSS_EN: Final = "Device not responding"
_COMM_LOSS_ZH: Final = "设备通信中断"
_STATES: Final = ("active", "cleared")
_SEVERITIES: Final = frozenset(s.value for s in Severity)

Test = Callable[[Scalar | None], bool]


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """An alarm went active or cleared at ``ts``; ``value`` is its point's value then."""

    alarm_id: str
    state: Literal["active", "cleared"]
    severity: str
    category: str
    value: Scalar | None
    text_en: str
    text_zh: str
    ts: float

    def __post_init__(self) -> None:
        if self.state not in _STATES:
            raise ValueError(f"an alarm is 'active' or 'cleared', not {self.state!r}")
        if self.severity not in _SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")


@dataclass(frozen=True, slots=True)
class Readings:
    """Values and qualities by point id (a point with a value and no quality is good)."""

    values: Mapping[str, Scalar | None]
    quality: Mapping[str, Quality]


def _shifted(threshold: float, deadband: float, sign: int) -> float:
    """``threshold + sign * deadband`` on their shortest decimals (0.30 + 0.02 is 0.32)."""
    return float(Decimal(repr(threshold)) + sign * Decimal(repr(deadband)))


def _tests(rule: AlarmRule, bits: Mapping[str, int]) -> tuple[Test, Test]:
    """(test while inactive, test while active) for a value condition."""
    when, band = rule.when, rule.deadband
    op = when.operator
    if op in ("gt", "ge", "lt", "le"):
        threshold = next(t for t in (when.gt, when.ge, when.lt, when.le) if t is not None)
        sign = -1 if op in ("gt", "ge") else 1
        held = _shifted(threshold, band, sign) if band else threshold
        if op == "gt":
            return (lambda v: v > threshold), (lambda v: v > held)
        if op == "ge":
            return (lambda v: v >= threshold), (lambda v: v >= held)
        if op == "lt":
            return (lambda v: v < threshold), (lambda v: v < held)
        return (lambda v: v <= threshold), (lambda v: v <= held)
    test: Test
    if op == "eq":
        operand = when.eq
        test = lambda v: v == operand  # noqa: E731
    elif op == "ne":
        operand = when.ne
        test = lambda v: v != operand  # noqa: E731
    elif op == "in":
        members = frozenset(when.in_ or ())
        test = lambda v: v in members  # noqa: E731
    else:  # bit
        bit = when.bit if isinstance(when.bit, int) else bits[str(when.bit)]
        test = lambda v: v >> bit & 1 == 1  # type: ignore[operator]  # noqa: E731
    return test, test


class _Rule:
    __slots__ = ("active", "category", "hold", "id", "off_delay", "on_delay", "point",
                 "raise_", "severity", "since", "stale", "text_en", "text_zh")

    def __init__(self, rule: AlarmRule, bits: Mapping[str, int]) -> None:
        self.id = rule.id
        self.point = rule.when.point
        self.stale = rule.when.operator == "stale"
        self.raise_, self.hold = (bool, bool) if self.stale else _tests(rule, bits)
        self.on_delay, self.off_delay = rule.on_delay, rule.off_delay
        self.severity, self.category = rule.severity.value, rule.category.value
        self.text_en, self.text_zh = rule.text.en, rule.text.zh
        self.active = False
        self.since: float | None = None  # when the condition started to want a change


class AlarmEngine:
    """The alarm rules of one device and their state (active, delays counting)."""

    def __init__(self, profile: ModbusProfile | BacnetProfile, *,
                 comm_loss_severity: str = "medium") -> None:
        if comm_loss_severity not in _SEVERITIES:
            raise ValueError(f"unknown severity {comm_loss_severity!r}; "
                             f"one of {', '.join(sorted(_SEVERITIES))}")
        if any(rule.id == COMM_LOSS for rule in profile.alarms):
            raise ValueError(f"profile {profile.id!r}: alarm id {COMM_LOSS!r} is reserved for "
                             "the gateway's communication-loss alarm")
        points = {p.id: p for p in profile.points}
        self._rules: list[_Rule] = []
        for rule in profile.alarms:
            point = points[rule.when.point]
            bits = {b.name: b.bit for b in profile.bits.get(point.bits or "", [])}
            self._rules.append(_Rule(rule, bits))
        self._by_id = {rule.id: rule for rule in self._rules}
        self._comm_severity = comm_loss_severity
        self._comm_lost = False
        self._seen: PointTable | None = None  # the table last evaluated, at which generation
        self._seen_generation = -1
        self._waiting = False  # some rule's on/off delay is counting

    def evaluate(self, points: PointTable | Readings, now: float) -> list[AlarmTransition]:
        """Advance every rule to ``now`` on the current readings; the transitions made."""
        if isinstance(points, PointTable):
            if (points is self._seen and points.generation == self._seen_generation
                    and not self._waiting):
                return []  # nothing changed and no delay is counting: nothing can happen
            self._seen, self._seen_generation = points, points.generation
            values, quality = points.live_values, points.live_quality
        else:
            self._seen = None
            values, quality = points.values, points.quality
        changes: list[AlarmTransition] = []
        waiting = False
        for rule in self._rules:
            point = rule.point
            state = quality.get(point)
            if state is None:
                if point not in values:
                    continue  # disabled, or not in these readings
                state = "good"
            value = values.get(point)
            if rule.stale:
                want = state == "stale"
            elif state != "good":
                rule.since = None
                continue
            else:
                try:
                    want = rule.hold(value) if rule.active else rule.raise_(value)
                except TypeError:  # a value of the wrong type: not evaluable, as if bad
                    rule.since = None
                    continue
            if want == rule.active:
                rule.since = None
                continue
            since = rule.since
            if since is None:
                since = rule.since = now
            if now - since >= (rule.off_delay if rule.active else rule.on_delay):
                rule.active, rule.since = want, None
                changes.append(AlarmTransition(
                    rule.id, "active" if want else "cleared", rule.severity, rule.category,
                    value, rule.text_en, rule.text_zh, now))
            else:
                waiting = True
        self._waiting = waiting
        return changes

    def comm_loss_transition(self, device_online: bool, now: float) -> AlarmTransition | None:
        """The ``comm_loss`` alarm follows the device's online state (no delays here: the
        daemon declares a device offline after its missed cycles)."""
        lost = not device_online
        if lost == self._comm_lost:
            return None
        self._comm_lost = lost
        return AlarmTransition(COMM_LOSS, "active" if lost else "cleared", self._comm_severity,
                               "general", None, _COMM_LOSS_EN, _COMM_LOSS_ZH, now)

    def active(self) -> list[str]:
        """Ids of the active alarms (``comm_loss`` included), in profile order."""
        found = [rule.id for rule in self._rules if rule.active]
        return [*found, COMM_LOSS] if self._comm_lost else found

    def restore(self, active_ids: Iterable[str]) -> None:
        """Start with these alarms active (ids the profile no longer has are ignored)."""
        for alarm_id in active_ids:
            if alarm_id == COMM_LOSS:
                self._comm_lost = True
            elif (rule := self._by_id.get(alarm_id)) is not None:
                rule.active, rule.since = True, None
        self._seen = None  # evaluate every rule against the restored state
