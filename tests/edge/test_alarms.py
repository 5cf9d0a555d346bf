"""AlarmEngine: operators, delays, hysteresis, quality, comm loss, and each shipped profile
driven into a fault by its simulator model."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device_profiles.codec import encode_bacnet
from device_profiles.loader import load_profiles
from device_profiles.schema import BacnetProfile, ModbusProfile
from edge.alarms import COMM_LOSS, AlarmEngine, AlarmTransition, Readings
from edge.points import PointTable, Quality, Scalar
from simulators.clock import SimClock
from simulators.image import ModbusImage
from simulators.models.base import DeviceModel, SimContext
from simulators.models.registry import model_class, model_for_profile

PROFILES = load_profiles()
POINTS: list[dict[str, Any]] = [
    {"id": "temp", "address": 0, "type": "s16", "scale": 0.1},
    {"id": "flag", "address": 1, "kind": "bool"},
    {"id": "mode", "address": 2, "kind": "enum", "enum": "mode"},
    {"id": "word", "address": 3, "kind": "bitfield", "bits": "word"},
    {"id": "code", "address": 4},
]
ENUMS = {"mode": [{"value": v, "name": n, "en": n, "zh": n}
                  for v, n in enumerate(["auto", "manual", "inspection", "fire_service"])]}
BITS = {"word": [{"bit": 0, "name": "trip", "en": "Trip", "zh": "跳闸"},
                 {"bit": 5, "name": "dry_run", "en": "Dry run", "zh": "缺水"}]}


def engine_for(when: dict[str, Any], **rule: Any) -> AlarmEngine:
    alarm = {"id": "a", "when": when, "severity": "high", "category": "water",
             "text": {"en": "Alarm", "zh": "报警"}} | rule
    return AlarmEngine(profile_with([alarm]))


def profile_with(alarms: list[dict[str, Any]]) -> ModbusProfile:
    points = [{"name": {"en": p["id"], "zh": p["id"]}, "table": "holding"} | p for p in POINTS]
    return ModbusProfile.model_validate({
        "id": "t", "version": "1", "manufacturer": "T", "model": "T", "equipment": "Pump",
        "protocol": "modbus", "points": points, "enums": ENUMS, "bits": BITS,
        "alarms": alarms})


def run(engine: AlarmEngine, point: str,
        steps: Sequence[tuple[float, Scalar | None] | tuple[float, Scalar | None, Quality]]
        ) -> list[tuple[float, str]]:
    """Feed (time, value[, quality]) readings of ``point``; the (time, state) transitions."""
    seen: list[tuple[float, str]] = []
    for step in steps:
        now, value = step[0], step[1]
        quality: Quality = step[2] if len(step) == 3 else "good"
        for t in engine.evaluate(Readings({point: value}, {point: quality}), now):
            seen.append((t.ts, t.state))
    return seen


def series(values: Sequence[Scalar | None], start: float = 0.0,
           step: float = 1.0) -> list[tuple[float, Scalar | None]]:
    return [(start + i * step, v) for i, v in enumerate(values)]


# ---- operators ------------------------------------------------------------------------------

OPERATORS: list[tuple[str, dict[str, Any], str, list[Scalar], list[bool]]] = [
    ("eq number", {"point": "code", "eq": 41}, "code", [0, 41, 40], [False, True, False]),
    ("ne number", {"point": "code", "ne": 0}, "code", [0, 41, 0], [False, True, False]),
    ("gt", {"point": "temp", "gt": 25}, "temp", [25, 25.1, 24.9], [False, True, False]),
    ("ge", {"point": "temp", "ge": 25}, "temp", [24.9, 25, 24.9], [False, True, False]),
    ("lt", {"point": "temp", "lt": 0.3}, "temp", [0.3, 0.29, 0.3], [False, True, False]),
    ("le", {"point": "temp", "le": 0.3}, "temp", [0.31, 0.3, 0.31], [False, True, False]),
    ("eq bool", {"point": "flag", "eq": True}, "flag", [False, True, False],
     [False, True, False]),
    ("eq enum", {"point": "mode", "eq": "inspection"}, "mode", ["auto", "inspection", "manual"],
     [False, True, False]),
    ("ne enum, unknown values too", {"point": "mode", "ne": "auto"}, "mode",
     ["auto", "unknown_9", "auto"], [False, True, False]),
    ("in enum", {"point": "mode", "in": ["inspection", "fire_service"]}, "mode",
     ["auto", "fire_service", "inspection", "manual"], [False, True, True, False]),
    ("bit by name", {"point": "word", "bit": "dry_run"}, "word", [1, 33, 32, 1],
     [False, True, True, False]),
    ("bit by number", {"point": "word", "bit": 0}, "word", [32, 33, 0], [False, True, False]),
]


@pytest.mark.parametrize(("when", "point", "values", "active"),
                         [(w, p, v, a) for _, w, p, v, a in OPERATORS],
                         ids=[name for name, *_ in OPERATORS])
def test_operators(when: dict[str, Any], point: str, values: list[Scalar],
                   active: list[bool]) -> None:
    engine = engine_for(when)
    states = []
    for i, value in enumerate(values):
        engine.evaluate(Readings({point: value}, {point: "good"}), float(i))
        states.append(engine.active() == ["a"])
    assert states == active


def test_a_transition_carries_the_rule_and_the_value() -> None:
    engine = engine_for({"point": "temp", "gt": 25})
    [t] = engine.evaluate(Readings({"temp": 30.5}, {}), 7.0)  # no quality listed: good
    assert t == AlarmTransition("a", "active", "high", "water", 30.5, "Alarm", "报警", 7.0)


def test_a_value_of_the_wrong_type_is_not_evaluated() -> None:
    engine = engine_for({"point": "temp", "gt": 25})
    assert engine.evaluate(Readings({"temp": "hot"}, {"temp": "good"}), 1.0) == []
    assert engine.evaluate(Readings({"other": 1}, {"other": "good"}), 2.0) == []


# ---- delays ---------------------------------------------------------------------------------

DELAYS: list[tuple[str, dict[str, Any], list[tuple[float, Scalar | None]],
                   list[tuple[float, str]]]] = [
    ("on_delay holds", {"on_delay": 10},
     series([True] * 12), [(10.0, "active")]),
    ("on_delay not yet", {"on_delay": 10},
     [(0, True), (5, True), (9.9, True)], []),
    ("on_delay interrupted starts again", {"on_delay": 10},
     [(0, True), (5, True), (6, False), (7, True), (16, True), (17, True)], [(17.0, "active")]),
    ("off_delay holds", {"off_delay": 10},
     [(0, True), (20, False), (25, False), (30, False)], [(0.0, "active"), (30.0, "cleared")]),
    ("off_delay interrupted", {"off_delay": 10},
     [(0, True), (20, False), (25, True), (26, False), (35, False), (36, False)],
     [(0.0, "active"), (36.0, "cleared")]),
    ("both delays", {"on_delay": 5, "off_delay": 5},
     [(0, True), (4, True), (5, True), (6, False), (10, False), (11, False)],
     [(5.0, "active"), (11.0, "cleared")]),
]


@pytest.mark.parametrize(("rule", "steps", "expected"), [(r, s, e) for _, r, s, e in DELAYS],
                         ids=[name for name, *_ in DELAYS])
def test_delays(rule: dict[str, Any], steps: list[tuple[float, Scalar | None]],
                expected: list[tuple[float, str]]) -> None:
    assert run(engine_for({"point": "flag", "eq": True}, **rule), "flag", steps) == expected


# ---- deadband -------------------------------------------------------------------------------

OSCILLATING = [24.9, 25.1, 24.9, 25.2, 24.0, 25.1, 23.5, 25.3, 23.1, 25.0, 23.0, 24.9, 22.0,
               24.5]


def test_deadband_gives_one_active_and_one_cleared_for_a_value_around_the_threshold() -> None:
    engine = engine_for({"point": "temp", "gt": 25}, deadband=2)
    assert run(engine, "temp", series(OSCILLATING)) == [(1.0, "active"), (10.0, "cleared")]


def test_without_deadband_the_same_values_flap() -> None:
    engine = engine_for({"point": "temp", "gt": 25})
    assert len(run(engine, "temp", series(OSCILLATING))) == 8


@pytest.mark.parametrize(("when", "values", "expected"), [
    ({"point": "temp", "ge": 25}, [25, 23.1, 23, 22.9], [(0.0, "active"), (3.0, "cleared")]),
    ({"point": "temp", "lt": 0.30}, [0.29, 0.31, 0.319, 0.32],
     [(0.0, "active"), (3.0, "cleared")]),
    ({"point": "temp", "le": 0.30}, [0.3, 0.32, 0.321], [(0.0, "active"), (2.0, "cleared")]),
], ids=["ge", "lt", "le"])
def test_deadband_moves_the_clear_threshold(when: dict[str, Any], values: list[float],
                                            expected: list[tuple[float, str]]) -> None:
    band = 2 if "ge" in when else 0.02
    assert run(engine_for(when, deadband=band), "temp", series(values)) == expected


# ---- quality --------------------------------------------------------------------------------

def test_stale_condition_follows_the_quality() -> None:
    engine = engine_for({"point": "temp", "stale": True}, on_delay=60)
    steps: list[tuple[float, Scalar | None, Quality]] = [
        (0, 20.0, "good"), (10, 20.0, "stale"), (69, 20.0, "stale"), (70, 20.0, "stale"),
        (71, None, "bad"), (80, 21.0, "good")]
    assert run(engine, "temp", steps) == [(70.0, "active"), (71.0, "cleared")]


def test_bad_or_stale_quality_freezes_value_alarms() -> None:
    engine = engine_for({"point": "temp", "gt": 25}, off_delay=5)
    steps: list[tuple[float, Scalar | None, Quality]] = [
        (0, 30.0, "good"), (1, 20.0, "stale"), (50, None, "bad"), (60, 20.0, "good"),
        (64, 20.0, "good"), (65, 20.0, "good")]
    assert run(engine, "temp", steps) == [(0.0, "active"), (65.0, "cleared")]
    assert run(engine, "temp", [(66, 30.0, "stale"), (67, None, "bad")]) == []
    assert engine.active() == []


def test_a_bad_reading_restarts_an_on_delay() -> None:
    engine = engine_for({"point": "temp", "gt": 25}, on_delay=10)
    steps: list[tuple[float, Scalar | None, Quality]] = [
        (0, 30.0, "good"), (8, None, "bad"), (9, 30.0, "good"), (18, 30.0, "good"),
        (19, 30.0, "good")]
    assert run(engine, "temp", steps) == [(19.0, "active")]


def test_rules_on_disabled_points_never_fire() -> None:
    prof = profile_with([{"id": "s", "when": {"point": "temp", "stale": True},
                          "severity": "low", "category": "water",
                          "text": {"en": "x", "zh": "x"}}])
    engine = AlarmEngine(prof)
    assert engine.evaluate(PointTable(prof, disabled=["temp"]), 100.0) == []
    assert [t.alarm_id for t in engine.evaluate(PointTable(prof), 100.0)] == ["s"]


# ---- comm loss, active, restore -------------------------------------------------------------

def test_comm_loss_alarm_for_every_device() -> None:
    engine = AlarmEngine(profile_with([]), comm_loss_severity="high")
    assert engine.comm_loss_transition(True, 0.0) is None
    lost = engine.comm_loss_transition(False, 5.0)
    assert lost == AlarmTransition(COMM_LOSS, "active", "high", "general", None,
                                   "Device not responding", "设备通信中断", 5.0)
    assert engine.comm_loss_transition(False, 6.0) is None
    assert engine.active() == [COMM_LOSS]
    back = engine.comm_loss_transition(True, 9.0)
    assert back is not None and (back.state, back.ts, back.severity) == ("cleared", 9.0, "high")
    assert AlarmEngine(profile_with([])).comm_loss_transition(False, 0.0) is not None
    with pytest.raises(ValueError, match="severity"):
        AlarmEngine(profile_with([]), comm_loss_severity="urgent")


def test_comm_loss_is_a_reserved_alarm_id() -> None:
    with pytest.raises(ValueError, match="reserved"):
        AlarmEngine(profile_with([{"id": "comm_loss", "when": {"point": "temp", "stale": True},
                                   "severity": "low", "category": "water",
                                   "text": {"en": "x", "zh": "x"}}]))


def test_restore_seeds_active_alarms_which_clear_when_false() -> None:
    engine = engine_for({"point": "flag", "eq": True}, off_delay=3)
    engine.restore(["a", COMM_LOSS, "gone_from_the_profile"])
    assert engine.active() == ["a", COMM_LOSS]
    assert run(engine, "flag", [(0, True)]) == []  # still true: no second raise
    assert run(engine, "flag", [(1, False), (4, False)]) == [(4.0, "cleared")]
    assert engine.comm_loss_transition(True, 5.0) is not None


def test_transitions_check_themselves() -> None:
    with pytest.raises(ValueError, match="active"):
        AlarmTransition("a", "raised", "high", "water", 1, "x", "x", 0.0)  # type: ignore[arg-type]


# ---- simulator, profile and engine agree ----------------------------------------------------

START = datetime(2024, 5, 6, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


class Rig:
    """A behaviour model feeding a PointTable through the codec, and an AlarmEngine on it."""

    def __init__(self, profile_id: str, options: Mapping[str, Any] | None = None) -> None:
        self.profile = PROFILES.get(profile_id)
        self.clock = SimClock(start=START, speed=0, timezone="Asia/Shanghai")
        cls = model_class(model_for_profile(profile_id))
        self.model: DeviceModel = cls("dev-1", SimContext(clock=self.clock,
                                                          rng=random.Random(5)), options or {})
        self.table = PointTable(self.profile)
        self.engine = AlarmEngine(self.profile)
        self.image = ModbusImage(self.profile) if isinstance(self.profile,
                                                             ModbusProfile) else None
        self.seen: list[AlarmTransition] = []

    def feed(self, now: float) -> None:
        values = self.model.values()
        if self.image is not None:
            self.image.update(values, self.model.events())
            for tab, registers in self.image.tables.items():
                ids = [p.id for p in self.profile.points
                       if getattr(p, "table", None) is tab and p.id in self.table.point_ids]
                self.table.apply_registers(tab, 0, registers, ids, now)
        else:
            assert isinstance(self.profile, BacnetProfile)
            for point in self.profile.points:
                if point.id in values:
                    raw = encode_bacnet(point, values[point.id], enums=self.profile.enums)
                    self.table.apply_value(point.id, raw, now)
        self.seen += self.engine.evaluate(self.table, now)

    def run_until(self, alarm_id: str, state: str, limit: float, step: float = 1.0) -> float:
        waited = 0.0
        while waited < limit:
            self.clock.advance(step)
            self.model.step(self.clock.now(), step)
            self.feed(self.clock.now())
            waited += step
            if any(t.alarm_id == alarm_id and t.state == state for t in self.seen):
                return waited
        raise AssertionError(f"{alarm_id} not {state} within {limit} s; "
                             f"transitions {[(t.alarm_id, t.state) for t in self.seen]}")


SIM_CASES: list[tuple[str, str, dict[str, Any], str, dict[str, Any] | None, float]] = [
    ("booster-pumpset-modbus", "pump_trip", {"pump": 1}, "pump1_tripped", {"pump": 1}, 1),
    ("sump-pump-modbus", "pump_fail", {"pump": 1}, "pump1_fail_to_start", {"pump": 1}, 1),
    ("fire-panel-modbus", "fire_alarm", {"zone": 3, "hold": 5}, "zone3_fire", {"zone": 3}, 1),
    ("fire-panel-bacnet", "fire_alarm", {"zone": 3, "hold": 5}, "zone3_fire", {"zone": 3}, 1),
    ("door-controller-modbus", "door_forced", {"door": 1}, "door1_forced", {"door": 1}, 1),
    ("energy-meter-3p-modbus", "overvoltage", {"phase": 1, "volts": 258}, "overvoltage_l1",
     {"phase": 1}, 1),
    ("water-meter-modbus", "burst", {"rate": 40}, "high_flow", {}, 5),
    ("elevator-ctl-modbus", "passenger_trapped", {}, "passenger_trapped", {}, 1),
    ("elevator-mon-bacnet", "passenger_trapped", {}, "passenger_trapped", {}, 1),
]


def test_every_shipped_profile_has_a_simulator_case() -> None:
    assert sorted(case[0] for case in SIM_CASES) == PROFILES.ids()


@pytest.mark.parametrize(("profile_id", "fault", "args", "alarm_id", "clear", "step"),
                         SIM_CASES, ids=[case[0] for case in SIM_CASES])
def test_a_simulated_fault_raises_and_clears_the_profile_alarm(
        profile_id: str, fault: str, args: dict[str, Any], alarm_id: str,
        clear: dict[str, Any] | None, step: float) -> None:
    rig = Rig(profile_id)
    rig.feed(rig.clock.now())
    for _ in range(30):
        rig.clock.advance(1.0)
        rig.model.step(rig.clock.now(), 1.0)
        rig.feed(rig.clock.now())
    assert alarm_id not in rig.engine.active()
    if profile_id == "sump-pump-modbus":
        rig.model.inject("high_inflow", {"rate": 60})  # the pit fills: the lead pump is called
    rig.model.inject(fault, args)
    rig.run_until(alarm_id, "active", 1200, step)
    rule = next(a for a in rig.profile.alarms if a.id == alarm_id)
    [raised] = [t for t in rig.seen if t.alarm_id == alarm_id]
    assert (raised.severity, raised.category, raised.text_en, raised.text_zh) == (
        rule.severity.value, rule.category.value, rule.text.en, rule.text.zh)
    assert alarm_id in rig.engine.active()
    if clear is not None:
        if profile_id.startswith("fire-panel"):
            for _ in range(10):  # the smoke clears before the zone can be reset
                rig.clock.advance(1.0)
                rig.model.step(rig.clock.now(), 1.0)
        rig.model.clear(fault, clear)
        rig.run_until(alarm_id, "cleared", 1200, step)
        assert [t.state for t in rig.seen if t.alarm_id == alarm_id] == ["active", "cleared"]
        assert alarm_id not in rig.engine.active()


def test_a_simulated_device_going_silent_raises_the_stale_rule_and_comm_loss() -> None:
    rig = Rig("booster-pumpset-modbus")
    rig.feed(rig.clock.now())
    assert rig.engine.active() == []
    now = rig.clock.now()
    rig.table.mark_stale(now)
    assert rig.engine.comm_loss_transition(False, now) is not None
    assert rig.engine.evaluate(rig.table, now) == []
    assert rig.engine.evaluate(rig.table, now + 59) == []
    assert [(t.alarm_id, t.state) for t in rig.engine.evaluate(rig.table, now + 60)] == [
        ("comm_stale", "active")]
    rig.feed(now + 61)
    assert [(t.alarm_id, t.state) for t in rig.seen[-1:]] == [("comm_stale", "cleared")]
