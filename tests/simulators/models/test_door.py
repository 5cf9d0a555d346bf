"""Access-control door controller model, driven by a manual clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from device_profiles.codec import encode_event_record
from device_profiles.schema import ModbusProfile
from simulators.clock import SimClock
from simulators.models.base import EventRecord, UnknownFault, WriteRefused
from simulators.models.door import EVENTS_KEPT, DoorControllerModel, traffic_at
from tests.simulators.models import support
from tests.simulators.models.support import alarm_active, check_encodes, modbus_profiles_from, run


@pytest.fixture(scope="module")
def profile() -> ModbusProfile:
    return modbus_profiles_from({"door-controller-modbus": "door-controller-modbus.yaml"})[
        "door-controller-modbus"]


def make(hour: float = 0.0, options: Mapping[str, Any] | None = None,
         seed: int = 3) -> tuple[DoorControllerModel, SimClock]:
    return support.make(DoorControllerModel, "doors-1", hour, options, seed)


def quiet(hour: float = 3.0, **options: Any) -> tuple[DoorControllerModel, SimClock]:
    """A controller nobody walks up to: only scripted badges and faults happen."""
    return make(hour, {"traffic": 0, **options})


def last(model: DoorControllerModel) -> EventRecord:
    return model.events()[-1]


# ---- the profile contract -------------------------------------------------------------


def test_values_cover_every_point_and_encode(profile: ModbusProfile) -> None:
    model, clock = make(8.0)
    check_encodes(profile, run(model, clock, 600, step=5))
    spec = profile.point("events").event_log
    assert spec is not None
    assert model.events(), "a busy morning logs events"
    for record in model.events():
        encoded = encode_event_record(spec, record, byte_order=profile.byte_order_of(
            profile.point("events")), enums=profile.enums)
        assert len(encoded) == spec.record_size


def test_event_records_have_exactly_the_profile_fields(profile: ModbusProfile) -> None:
    spec = profile.point("events").event_log
    assert spec is not None
    model, clock = make(8.0)
    run(model, clock, 300, step=5)
    fields = {f.id for f in spec.fields}
    assert all(set(e) == fields for e in model.events())
    assert model.faults <= {"door_forced", "door_held", "tamper", "reader_offline",
                            "mains_failure", "badge"}


# ---- everyday traffic -------------------------------------------------------------------


def test_busy_morning_quiet_night() -> None:
    assert traffic_at(8.0)[0] > 10 * traffic_at(3.0)[0]
    model, clock = make(0.0)
    start = clock.now()
    run(model, clock, 24 * 3600, step=60)
    events = model.events()
    # the ring keeps the newest records: look at the day through seq numbers instead
    assert int(events[-1]["seq"]) > EVENTS_KEPT

    by_hour: dict[int, int] = {}
    model2, clock2 = make(0.0)
    for hour in range(24):
        before = model2.events()[-1]["seq"] if model2.events() else 0
        run(model2, clock2, 3600, step=60)
        after = model2.events()[-1]["seq"] if model2.events() else 0
        by_hour[hour] = int(after) - int(before)
    night = sum(by_hour[h] for h in range(1, 5))
    morning = by_hour[7] + by_hour[8]
    assert morning > 10 * max(night, 1)
    assert all(start <= int(e["ts"]) <= clock.now() for e in events)


def test_seq_increases_by_one_and_memory_stays_bounded() -> None:
    model, clock = make(7.0)
    seen: list[int] = []
    for _ in range(30):
        run(model, clock, 600, step=10)
        seen += [int(e["seq"]) for e in model.events() if not seen or int(e["seq"]) > seen[-1]]
    assert seen[0] == 1
    assert seen == list(range(1, len(seen) + 1))
    events = model.events()
    assert 64 <= len(events) <= EVENTS_KEPT
    ts = [int(e["ts"]) for e in events]
    assert ts == sorted(ts)


def test_most_badges_are_granted_some_denied() -> None:
    model, clock = make(7.0)
    counts: dict[str, int] = {}
    for _ in range(12):
        before = int(model.events()[-1]["seq"]) if model.events() else 0
        run(model, clock, 600, step=10)
        for e in model.events():
            if int(e["seq"]) > before:
                counts[str(e["event"])] = counts.get(str(e["event"]), 0) + 1
    decisions = sum(v for k, v in counts.items() if k == "granted" or k.startswith("denied"))
    assert counts["granted"] > 0.85 * decisions
    assert decisions - counts["granted"] > 0
    assert counts.get("rex", 0) > 0


def test_a_long_jump_is_integrated_without_trouble() -> None:
    model, clock = make(0.0)
    clock.advance(2 * 86400)
    model.step(clock.now(), 2 * 86400)
    events = model.events()
    assert len(events) == EVENTS_KEPT
    assert int(events[-1]["seq"]) > 1000


# ---- badges, doors and locks ------------------------------------------------------------


def test_granted_badge_opens_the_door_then_it_closes_and_relocks() -> None:
    model, clock = quiet()
    model.inject("badge", {"door": 2, "credential": 12345678})
    values = model.values()
    event = last(model)
    assert event["event"] == "granted"
    assert event["credential"] == 12345678
    assert event["door"] == 2
    assert event["direction"] == "in"
    assert event["seq"] == 1
    assert event["ts"] == int(clock.now())
    assert values["door2_contact"] == "open"
    assert values["door2_lock"] == "unlocked"
    assert values["door1_contact"] == "closed"
    values = run(model, clock, 10)
    assert values["door2_contact"] == "closed"
    assert values["door2_lock"] == "locked"
    assert values["door2_open_count"] == 1
    assert not values["door2_held"]
    assert not values["door2_forced"]


def test_denied_badge_logs_the_reason_and_keeps_the_door_shut() -> None:
    model, _ = quiet()
    model.inject("badge", {"door": 1, "credential": 99, "granted": False})
    assert last(model)["event"] == "denied_unknown_card"
    model.inject("badge", {"door": 1, "granted": False, "reason": "denied_expired",
                           "direction": "out"})
    assert last(model)["event"] == "denied_expired"
    assert last(model)["direction"] == "out"
    values = model.values()
    assert values["door1_contact"] == "closed"
    assert values["door1_lock"] == "locked"


def test_badge_is_instantaneous_and_checks_its_arguments() -> None:
    model, _ = quiet()
    with pytest.raises(ValueError, match="instantaneous"):
        model.clear("badge", {})
    with pytest.raises(ValueError, match="door"):
        model.inject("badge", {"door": 5})
    with pytest.raises(ValueError, match="credential"):
        model.inject("badge", {"door": 1, "credential": -1})
    with pytest.raises(ValueError, match="reason"):
        model.inject("badge", {"door": 1, "granted": False, "reason": "bad_luck"})
    with pytest.raises(UnknownFault):
        model.inject("earthquake", {})


# ---- faults ------------------------------------------------------------------------------


def test_forced_door_sets_flag_event_and_alarm(profile: ModbusProfile) -> None:
    model, clock = quiet()
    model.inject("door_forced", {"door": 3})
    values = run(model, clock, 5)
    assert values["door3_contact"] == "open"
    assert values["door3_lock"] == "locked"
    assert values["door3_forced"] is True
    assert alarm_active(profile, "door3_forced", values)
    assert not alarm_active(profile, "door1_forced", values)
    assert last(model)["event"] == "door_forced"
    assert last(model)["door"] == 3
    model.clear("door_forced", {"door": 3})
    values = run(model, clock, 2)
    assert values["door3_contact"] == "closed"
    assert values["door3_forced"] is False
    assert not alarm_active(profile, "door3_forced", values)


def test_held_door_raises_after_its_time_limit(profile: ModbusProfile) -> None:
    model, clock = quiet()
    model.inject("door_held", {"door": 1})
    assert last(model)["event"] == "granted"
    values = run(model, clock, 20)
    assert values["door1_contact"] == "open"
    assert values["door1_held"] is False
    values = run(model, clock, 15)
    assert values["door1_held"] is True
    assert alarm_active(profile, "door1_held", values)
    assert last(model)["event"] == "door_held"
    assert last(model)["door"] == 1
    held_events = [e for e in model.events() if e["event"] == "door_held"]
    run(model, clock, 60)
    assert [e for e in model.events() if e["event"] == "door_held"] == held_events
    model.clear("door_held", {"door": 1})
    values = run(model, clock, 1)
    assert values["door1_contact"] == "closed"
    assert values["door1_held"] is False


def test_tamper_on_a_reader_and_on_the_cabinet(profile: ModbusProfile) -> None:
    model, _ = quiet()
    model.inject("tamper", {"door": 2})
    values = model.values()
    assert values["door2_tamper"] is True
    assert alarm_active(profile, "door2_tamper", values)
    assert last(model)["event"] == "tamper"
    assert last(model)["door"] == 2
    model.inject("tamper", {})
    values = model.values()
    assert alarm_active(profile, "cabinet_tamper", values)
    assert last(model)["door"] == 0
    model.clear("tamper", {"door": 2})
    model.clear("tamper", {})
    values = model.values()
    assert values["door2_tamper"] is False
    assert not alarm_active(profile, "cabinet_tamper", values)


def test_offline_reader_reads_no_cards_but_exit_button_works(profile: ModbusProfile) -> None:
    model, clock = make(8.0)
    model.inject("reader_offline", {"door": 1})
    assert last(model)["event"] == "reader_offline"
    mark = int(last(model)["seq"])
    values = run(model, clock, 1800, step=5)
    assert values["door1_reader_offline"] is True
    assert alarm_active(profile, "door1_reader_offline", values)
    fresh = [e for e in model.events() if int(e["seq"]) > mark]
    at_door1 = {e["event"] for e in fresh if e["door"] == 1}
    assert at_door1 == {"rex"}
    assert any(e["event"] == "granted" and e["door"] == 2 for e in fresh)
    model.clear("reader_offline", {"door": 1})
    assert last(model)["event"] == "reader_online"
    assert model.values()["door1_reader_offline"] is False


def test_mains_failure_and_a_battery_that_runs_down(profile: ModbusProfile) -> None:
    model, clock = quiet()
    model.inject("mains_failure", {})
    values = run(model, clock, 60, step=10)
    assert alarm_active(profile, "mains_fail", values)
    assert not alarm_active(profile, "battery_low", values)
    values = run(model, clock, 4 * 3600, step=60)
    assert alarm_active(profile, "battery_low", values)
    model.clear("mains_failure", {})
    assert model.values()["controller_status"] == 0
    assert last(model)["event"] == "mains_restored"


def test_fault_arguments_are_checked() -> None:
    model, _ = quiet(doors=2)
    with pytest.raises(ValueError, match="door"):
        model.inject("door_forced", {"door": 3})
    with pytest.raises(ValueError, match="door"):
        model.inject("reader_offline", {})


# ---- writes --------------------------------------------------------------------------------


def test_remote_unlock_pulse_and_held_timeout_write() -> None:
    model, clock = quiet()
    model.write("door4_unlock_pulse", True)
    values = model.values()
    assert last(model)["event"] == "remote_unlock"
    assert last(model)["door"] == 4
    assert values["door4_lock"] == "unlocked"
    assert values["door4_unlock_pulse"] is False
    model.write("door4_unlock_pulse", False)
    assert last(model)["event"] == "remote_unlock"
    assert model.events()[-1]["seq"] == 1

    model.write("door1_held_timeout", 10)
    assert model.values()["door1_held_timeout"] == 10
    model.inject("door_held", {"door": 1})
    assert run(model, clock, 11)["door1_held"] is True

    for point, value in (("door1_held_timeout", 2), ("door1_held_timeout", 7.5),
                         ("door1_unlock_time", 0), ("door1_unlock_pulse", 5)):
        with pytest.raises(WriteRefused):
            model.write(point, value)
    with pytest.raises(WriteRefused):
        model.write("door1_contact", "open")
    with pytest.raises(WriteRefused):
        model.write("controller_status", 0)


def test_two_door_controller_keeps_doors_3_and_4_quiet() -> None:
    model, clock = make(8.0, {"doors": 2})
    values = run(model, clock, 1800, step=5)
    assert values["door_count"] == 2
    assert {e["door"] for e in model.events()} <= {1, 2}
    assert values["door3_contact"] == "closed"
    assert values["door4_lock"] == "locked"
    with pytest.raises(WriteRefused, match="not fitted"):
        model.write("door3_unlock_pulse", True)


@pytest.mark.parametrize("options", [{"doors": 3}, {"traffic": -1}, {"held_timeout": 2},
                                     {"cards": 0}, {"colour": "red"}])
def test_bad_options_are_named(options: dict[str, Any]) -> None:
    name = next(iter(options))
    with pytest.raises(ValueError, match=name):
        make(0.0, options)
