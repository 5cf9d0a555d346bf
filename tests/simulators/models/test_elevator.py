"""Elevator behaviour model, driven by a manual clock, checked against both elevator profiles."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from device_profiles.schema import BacnetProfile, DeviceProfile
from simulators.clock import SimClock
from simulators.models.base import UnknownFault, Value, WriteRefused
from simulators.models.elevator import ElevatorModel, floor_labels
from tests.simulators.models import support
from tests.simulators.models.support import Values, alarm_active, check_encodes, profiles_from

FILES = {"elevator-ctl-modbus": "elevator-controller-modbus.yaml",
         "elevator-mon-bacnet": "elevator-monitor-bacnet.yaml"}


@pytest.fixture(scope="module")
def profiles() -> dict[str, DeviceProfile]:
    return profiles_from(FILES)


def make(hour: float = 10.0, options: Mapping[str, Any] | None = None,
         seed: int = 3) -> tuple[ElevatorModel, SimClock]:
    return support.make(ElevatorModel, "car-1", hour, options, seed)


def run(model: ElevatorModel, clock: SimClock, seconds: float, step: float = 1.0) -> list[Values]:
    """Step the model; the values after every step."""
    seen: list[Values] = []
    support.run(model, clock, seconds, step, watch=seen.append)
    return seen


def run_until(model: ElevatorModel, clock: SimClock, test: Callable[[Values], bool],
              limit: float, step: float = 1.0) -> tuple[Values, list[Values]]:
    """Step until ``test`` holds; the values then, and every value on the way."""
    seen: list[Values] = []
    while len(seen) * step < limit:
        seen += run(model, clock, step, step)
        if test(seen[-1]):
            return seen[-1], seen
    pytest.fail(f"condition not met within {limit} s; last values {seen[-1]}")


def at_a_landing(values: Values) -> bool:
    return values["in_door_zone"] is True and values["run_state"] == "stopped"


def num(value: Value) -> float:
    assert isinstance(value, int | float)
    return float(value)


def longest_run(seen: list[Values], point: str, value: Value) -> int:
    """Most consecutive samples with ``point == value``."""
    best = current = 0
    for values in seen:
        current = current + 1 if values[point] == value else 0
        best = max(best, current)
    return best


# ---- profiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile_id", sorted(FILES))
def test_values_cover_every_point_and_encode(profiles: dict[str, DeviceProfile],
                                             profile_id: str) -> None:
    profile = profiles[profile_id]
    model, clock = make(hour=8.0)
    samples = [model.values(), *run(model, clock, 600, step=1.0)]
    model.inject("door_lock_fault", {})
    samples += run(model, clock, 120)
    for values in samples:
        check_encodes(profile, values)


def test_both_profiles_share_point_ids_and_alarm_ids(profiles: dict[str, DeviceProfile]) -> None:
    modbus, bacnet = profiles["elevator-ctl-modbus"], profiles["elevator-mon-bacnet"]
    assert {p.id for p in modbus.points} == {p.id for p in bacnet.points}
    assert {a.id for a in modbus.alarms} == {a.id for a in bacnet.alarms}
    assert [p.id for p in modbus.points if p.writable] == ["out_of_service_request"]
    assert [p.id for p in bacnet.points if p.writable] == ["out_of_service_request"]
    assert isinstance(bacnet, BacnetProfile)
    cov = {p.id for p in bacnet.points if p.cov}
    assert {"passenger_trapped", "alarm_button", "door_state", "fault_bits"} <= cov


# ---- normal service ---------------------------------------------------------------------


def test_answers_a_call_and_arrives_with_doors_opening() -> None:
    model, clock = make(hour=8.0)
    start = model.values()
    assert start["current_floor"] == 1
    assert start["door_state"] == "closed"
    _, seen = run_until(model, clock, lambda v: v["run_state"] == "running", 900)
    arrived, more = run_until(model, clock, lambda v: v["door_state"] == "opening", 300)
    seen += more
    assert arrived["run_state"] == "stopped"
    assert arrived["speed"] == 0
    assert arrived["in_door_zone"] is True
    assert arrived["direction"] == "none"
    moving = [v for v in seen if v["run_state"] == "running"]
    assert moving
    assert all(0 <= float(v["speed"]) <= 1.75 for v in moving)
    assert all(v["direction"] in ("up", "down") for v in moving)
    assert all(v["door_state"] == "closed" for v in moving)
    # the doors go through their cycle and close again
    _, cycle = run_until(model, clock, lambda v: v["door_state"] == "closed", 120)
    states = [v["door_state"] for v in cycle]
    assert "open" in states
    assert "closing" in states or "nudging" in states


def test_travel_is_about_two_seconds_a_floor() -> None:
    model, clock = make(hour=8.0, seed=11)
    seen = run(model, clock, 1800)
    assert max(float(v["speed"]) for v in seen) == pytest.approx(1.75)
    floors = [v["current_floor"] for v in seen]
    jumps = [abs(int(b) - int(a)) for a, b in itertools.pairwise(floors)]
    # 1.75 m/s on 3.5 m floors: at most one floor a second (plus the missing floor 0)
    assert max(jumps) <= 2
    assert all(v["current_floor"] != 0 and -2 <= int(v["current_floor"]) <= 18
               for v in seen)


def test_busy_mornings_quiet_nights() -> None:
    model, clock = make(hour=1.0)
    night = run(model, clock, 2 * 3600, step=5.0)
    night_trips = int(night[-1]["trip_count"]) - int(night[0]["trip_count"])
    model, clock = make(hour=7.5)
    morning = run(model, clock, 2 * 3600, step=5.0)
    morning_trips = int(morning[-1]["trip_count"]) - int(morning[0]["trip_count"])
    assert morning_trips > 60
    assert night_trips * 5 < morning_trips
    assert num(morning[-1]["door_cycles"]) > num(morning[0]["door_cycles"])
    assert num(morning[-1]["run_hours"]) > num(morning[0]["run_hours"])


def test_a_day_in_one_step_stays_sane() -> None:
    model, clock = make(hour=0.0)
    before = model.values()
    clock.advance(86400)
    model.step(clock.now(), 86400)
    after = model.values()
    assert int(after["trip_count"]) - int(before["trip_count"]) > 200
    assert after["current_floor"] in floor_labels(-2, 20)
    assert 0 <= float(after["speed"]) <= 1.75
    assert 0 <= int(after["load_percent"]) <= 100
    assert after["passenger_trapped"] is False
    assert after["fault_bits"] == 0


# ---- faults -----------------------------------------------------------------------------


def test_passenger_trapped_until_rescue(profiles: dict[str, DeviceProfile]) -> None:
    model, clock = make(hour=10.0)
    run(model, clock, 60)
    model.inject("passenger_trapped", {"alarm_hold_s": 45})
    trapped, _ = run_until(model, clock, lambda v: v["passenger_trapped"] is True, 180)
    assert trapped["run_state"] == "emergency_stop"
    assert trapped["speed"] == 0
    assert trapped["in_door_zone"] is False
    assert trapped["door_state"] == "closed"
    assert int(trapped["load_percent"]) > 0
    assert trapped["fault_code"] == 41
    assert int(trapped["fault_bits"]) & 1
    assert trapped["mode"] == "automatic"
    seen = run(model, clock, 20 * 60)
    assert all(v["passenger_trapped"] is True for v in seen)
    assert all(v["current_floor"] == trapped["current_floor"] for v in seen)
    # the passenger holds the alarm button long enough for the 30 s alarm, then presses again
    assert longest_run(seen, "alarm_button", True) >= 30
    assert sum(1 for a, b in itertools.pairwise(seen)
               if not a["alarm_button"] and b["alarm_button"]) >= 3
    for profile in profiles.values():
        assert alarm_active(profile, "passenger_trapped", trapped)
        assert alarm_active(profile, "controller_fault", trapped)
        held = next(v for v in seen if v["alarm_button"])
        assert alarm_active(profile, "alarm_button_held", held)
        assert not alarm_active(profile, "out_of_service", trapped)
    # rescue: the car creeps to the nearest landing and opens its doors
    model.clear("passenger_trapped", {})
    freed, way = run_until(model, clock, lambda v: v["door_state"] == "open", 120)
    assert all(float(v["speed"]) <= 0.3 for v in way)
    assert freed["passenger_trapped"] is False
    assert freed["in_door_zone"] is True
    assert freed["load_percent"] == 0
    assert freed["fault_bits"] == 0
    assert freed["fault_code"] == 0
    assert freed["alarm_button"] is False
    for profile in profiles.values():
        assert not alarm_active(profile, "passenger_trapped", freed)
    after = run(model, clock, 3600)
    assert not any(v["passenger_trapped"] for v in after)
    assert any(v["run_state"] == "running" for v in after)


def test_passenger_trapped_from_an_idle_car() -> None:
    model, clock = make(hour=3.0)
    run(model, clock, 600, step=5.0)
    model.inject("passenger_trapped", {})
    trapped, _ = run_until(model, clock, lambda v: v["passenger_trapped"] is True, 300)
    assert trapped["in_door_zone"] is False
    assert trapped["run_state"] == "emergency_stop"


def test_door_lock_fault_holds_car_at_a_floor(profiles: dict[str, DeviceProfile]) -> None:
    model, clock = make(hour=9.0)
    run(model, clock, 300)
    model.inject("door_lock_fault", {})
    held, _ = run_until(model, clock, lambda v: v["door_state"] == "open", 120)
    seen = run(model, clock, 900)
    last = seen[-1]
    assert all(v["run_state"] == "stopped" and v["in_door_zone"] for v in seen)
    assert last["trip_count"] == held["trip_count"]
    assert last["mode"] == "out_of_service"
    assert last["fault_code"] == 48
    assert last["door_state"] == "open"
    assert last["load_percent"] == 0
    for profile in profiles.values():
        assert alarm_active(profile, "door_lock_fault", last)
        assert alarm_active(profile, "out_of_service", last)
        assert not alarm_active(profile, "passenger_trapped", last)
    model.clear("door_lock_fault", {})
    back = run(model, clock, 1800)
    assert back[-1]["mode"] == "automatic"
    assert back[-1]["fault_bits"] == 0
    assert int(back[-1]["trip_count"]) > int(last["trip_count"])


def test_overspeed_trips_the_governor(profiles: dict[str, DeviceProfile]) -> None:
    model, clock = make(hour=14.0)
    run(model, clock, 120)
    model.inject("overspeed", {})
    stopped, seen = run_until(model, clock, lambda v: v["run_state"] == "emergency_stop", 300)
    assert max(float(v["speed"]) for v in seen) > 1.75
    assert stopped["fault_code"] == 33
    assert stopped["speed"] == 0
    for profile in profiles.values():
        assert alarm_active(profile, "overspeed", stopped)
    later = run(model, clock, 600)
    assert all(v["run_state"] == "emergency_stop" for v in later)
    model.clear("overspeed", {})
    back, _ = run_until(model, clock, at_a_landing, 120)
    assert back["fault_bits"] == 0
    assert back["mode"] == "automatic"


def test_out_of_service_parks_the_car(profiles: dict[str, DeviceProfile]) -> None:
    model, clock = make(hour=8.5)
    run(model, clock, 200)
    model.inject("out_of_service", {})
    seen = run(model, clock, 120)
    assert all(v["mode"] == "out_of_service" for v in seen)
    parked = run(model, clock, 1800)
    assert all(v["run_state"] == "stopped" and v["door_state"] == "closed" for v in parked)
    assert parked[-1]["load_percent"] == 0
    assert parked[-1]["in_door_zone"] is True
    assert parked[0]["trip_count"] == parked[-1]["trip_count"]
    for profile in profiles.values():
        assert alarm_active(profile, "out_of_service", parked[-1])
    model.clear("out_of_service", {})
    back = run(model, clock, 1800)
    assert back[-1]["mode"] == "automatic"
    assert int(back[-1]["trip_count"]) > int(parked[-1]["trip_count"])


def test_inspection_mode_is_not_an_entrapment(profiles: dict[str, DeviceProfile]) -> None:
    model, clock = make(hour=0.5)
    model.inject("inspection", {})
    _, _ = run_until(model, clock, lambda v: v["mode"] == "inspection", 120)
    seen = run(model, clock, 4 * 3600, step=2.0)
    assert all(v["mode"] == "inspection" and not v["passenger_trapped"] for v in seen)
    assert all(float(v["speed"]) <= 0.3 for v in seen)
    assert any(v["run_state"] == "running" for v in seen)  # the technician moves the car
    for profile in profiles.values():
        assert alarm_active(profile, "inspection_too_long", seen[-1])
    model.clear("inspection", {})
    back, _ = run_until(model, clock, at_a_landing, 120)
    assert back["mode"] == "automatic"


def test_bad_faults_and_arguments() -> None:
    model, _ = make()
    with pytest.raises(UnknownFault):
        model.inject("earthquake", {})
    with pytest.raises(UnknownFault):
        model.clear("earthquake", {})
    with pytest.raises(ValueError, match="floor"):
        model.inject("door_lock_fault", {"floor": 3})
    with pytest.raises(ValueError, match="alarm_hold_s"):
        model.inject("passenger_trapped", {"alarm_hold_s": -5})
    model.inject("out_of_service", {})
    with pytest.raises(ValueError, match="not in normal service"):
        model.inject("passenger_trapped", {})


# ---- commands and options ---------------------------------------------------------------


def test_out_of_service_request_is_the_only_write() -> None:
    model, clock = make(hour=12.0)
    with pytest.raises(WriteRefused):
        model.write("current_floor", 3)
    with pytest.raises(WriteRefused):
        model.write("out_of_service_request", "yes")
    model.write("out_of_service_request", True)
    seen = run(model, clock, 600)
    assert seen[-1]["mode"] == "out_of_service"
    assert seen[-1]["out_of_service_request"] is True
    assert seen[-1]["run_state"] == "stopped"
    assert seen[-1]["in_door_zone"] is True
    model.write("out_of_service_request", False)
    back = run(model, clock, 60)
    assert back[-1]["mode"] == "automatic"
    assert back[-1]["out_of_service_request"] is False


def test_floor_numbers_skip_zero() -> None:
    assert floor_labels(-2, 5) == [-2, -1, 1, 2, 3]
    assert floor_labels(1, 3) == [1, 2, 3]
    model, clock = make(hour=8.0, options={"floors": 6, "lowest_floor": -3})
    seen = run(model, clock, 3600)
    assert {v["current_floor"] for v in seen} <= {-3, -2, -1, 1, 2, 3}


@pytest.mark.parametrize(("options", "named"), [
    ({"floors": 1}, "floors"),
    ({"floors": "20"}, "floors"),
    ({"floors": 12.5}, "floors"),
    ({"lowest_floor": True}, "lowest_floor"),
    ({"rated_speed": 0}, "rated_speed"),
    ({"floor_height": 40}, "floor_height"),
    ({"floorz": 20}, "floorz"),
])
def test_bad_options_are_named(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make(options=options)
