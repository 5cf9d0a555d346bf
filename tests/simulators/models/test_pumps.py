"""Booster pump set and sump pump behaviour models, driven by a manual clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pytest

from device_profiles.schema import ModbusProfile
from simulators.clock import SimClock
from simulators.models.base import UnknownFault, Value, WriteRefused
from simulators.models.booster import WATER_USE, BoosterPumpSetModel
from simulators.models.pump_common import day_curve
from simulators.models.sump import SumpPumpModel
from tests.simulators.models import support
from tests.simulators.models.support import (
    alarm_active,
    bit,
    check_encodes,
    modbus_profiles_from,
    run,
)

FILES = {"booster-pumpset-modbus": "booster-pump-set-modbus.yaml",
         "sump-pump-modbus": "sump-pump-modbus.yaml"}

Model = BoosterPumpSetModel | SumpPumpModel


@pytest.fixture(scope="module")
def profiles() -> dict[str, ModbusProfile]:
    return modbus_profiles_from(FILES)


M = TypeVar("M", bound=BoosterPumpSetModel | SumpPumpModel)


def make(cls: type[M], hour: float = 0.0, options: Mapping[str, Any] | None = None,
        seed: int = 7) -> tuple[M, SimClock]:
    return support.make(cls, "pumps-1", hour, options, seed)


# --- both models -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BoosterPumpSetModel, SumpPumpModel])
def test_values_cover_the_profile_and_encode(
        cls: type[Model], profiles: dict[str, ModbusProfile]) -> None:
    model, clock = make(cls, hour=6.0)
    (profile_id,) = cls.profiles
    profile = profiles[profile_id]
    check_encodes(profile, model.values())
    run(model, clock, 3 * 3600, step=60.0, watch=lambda v: check_encodes(profile, v))
    fault = "pump_trip" if cls is BoosterPumpSetModel else "pump_fail"
    model.inject(fault, {})
    model.inject("tank_low" if cls is BoosterPumpSetModel else "high_inflow", {})
    run(model, clock, 2 * 3600, step=30.0, watch=lambda v: check_encodes(profile, v))


@pytest.mark.parametrize("cls", [BoosterPumpSetModel, SumpPumpModel])
def test_big_clock_jumps_stay_physical(cls: type[Model],
                                      profiles: dict[str, ModbusProfile]) -> None:
    model, clock = make(cls)
    for _ in range(48):
        values = run(model, clock, 3600.0, step=3600.0)
        check_encodes(profiles[cls.profiles[0]], values)
        if isinstance(model, BoosterPumpSetModel):
            assert 0.0 <= model.level_pct <= 100.0
            assert 0.0 <= model.pressure <= 1.0
        else:
            assert 0.0 <= model.level <= model.depth


@pytest.mark.parametrize("cls", [BoosterPumpSetModel, SumpPumpModel])
def test_bad_options_faults_and_writes(cls: type[Model]) -> None:
    with pytest.raises(ValueError, match="pump_flow"):
        make(cls, options={"pump_flow": -1})
    with pytest.raises(ValueError, match="colour"):
        make(cls, options={"colour": "red"})
    model, _ = make(cls)
    fault = next(iter(sorted(cls.faults)))
    with pytest.raises(UnknownFault):
        model.inject("meteor_strike", {})
    with pytest.raises(ValueError, match="pump"):
        model.inject("pump_trip" if cls is BoosterPumpSetModel else "pump_fail", {"pump": 4})
    with pytest.raises(ValueError, match="zone"):
        model.inject(fault, {"zone": 1})
    with pytest.raises(WriteRefused):
        model.write("fault_word", 0)
    with pytest.raises(WriteRefused, match="local panel"):
        model.write("control_mode", "manual")
    with pytest.raises(WriteRefused):
        model.write("control_mode", "sideways")


# --- booster pump set ------------------------------------------------------------------


def test_water_use_is_low_at_night_and_peaks_morning_and_evening() -> None:
    assert day_curve(WATER_USE, 3.0) < 0.1
    assert day_curve(WATER_USE, 7.0) == 1.0
    assert day_curve(WATER_USE, 19.5) > 0.85
    assert day_curve(WATER_USE, 14.0) < 0.5


def test_booster_holds_setpoint_with_one_pump_at_night_and_two_at_peak(
        profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["booster-pumpset-modbus"]
    model, clock = make(BoosterPumpSetModel, hour=2.0)
    night = run(model, clock, 600)
    assert night["pumps_running"] == 1
    assert night["pump1_running"] is True
    assert abs(float(night["outlet_pressure"]) - 0.45) < 0.03
    assert night["set_state"] == "running"
    assert night["fault_word"] == 0
    assert bit(profile, night, "status_word", "auto")
    assert bit(profile, night, "status_word", "at_setpoint")
    assert not alarm_active(profile, "low_outlet_pressure", night)

    peak = run(model, clock, 5.5 * 3600, step=5.0)  # 07:30
    assert peak["pumps_running"] == 2
    assert float(peak["flow"]) > float(night["flow"]) * 5
    assert abs(float(peak["outlet_pressure"]) - 0.45) < 0.03
    assert float(peak["pump1_speed"]) > float(night["pump1_speed"])
    assert float(peak["pump1_current"]) > 0
    assert peak["pump3_running"] is False


@pytest.mark.parametrize(("hour", "pumps"), [(3.0, 1), (7.5, 2), (19.5, 2), (23.9, 1)])
def test_booster_starts_in_a_state_that_fits_the_hour(hour: float, pumps: int) -> None:
    model, _ = make(BoosterPumpSetModel, hour=hour)
    values = model.values()
    assert values["pumps_running"] == pumps
    assert all(float(values[f"pump{n}_speed"]) > 50 for n in range(1, pumps + 1))
    assert float(values["flow"]) > 0


def test_booster_day_keeps_pressure_and_tank_in_range(
        profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["booster-pumpset-modbus"]
    model, clock = make(BoosterPumpSetModel)
    seen: list[dict[str, Value]] = []
    run(model, clock, 24 * 3600, step=30.0, watch=seen.append)
    pressures = [float(v["outlet_pressure"]) for v in seen]
    levels = [float(v["tank_level_pct"]) for v in seen]
    assert min(pressures) > 0.40
    assert 25.0 < min(levels) < 84.0  # drawn down at peaks, below where the valve opens
    assert max(levels) > 90.0
    assert any(v["inlet_valve_open"] for v in seen)
    assert not all(v["inlet_valve_open"] for v in seen)
    assert all(v["fault_word"] == 0 for v in seen)
    for alarm in ("pump_set_down", "low_outlet_pressure", "low_tank_level", "standby_in_use"):
        assert not any(alarm_active(profile, alarm, v) for v in seen)


def test_booster_rotates_the_duty_pump() -> None:
    model, clock = make(BoosterPumpSetModel, hour=1.0, options={"rotation_hours": 1})
    starts = [model.values()[f"pump{n}_starts"] for n in (1, 2, 3)]
    duty: list[Value] = []
    for _ in range(4):
        values = run(model, clock, 3600, step=5.0)
        duty.append(values["duty_pump"])
    assert duty == [2, 3, 1, 2]
    assert values["rotation_remaining"] == 60
    after = [values[f"pump{n}_starts"] for n in (1, 2, 3)]
    assert all(int(b) > int(a) for a, b in zip(starts, after, strict=True))
    model.write("rotation_period", 0)
    assert run(model, clock, 3 * 3600, step=60.0)["duty_pump"] == 2


def test_booster_trip_changes_over_to_standby(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["booster-pumpset-modbus"]
    model, clock = make(BoosterPumpSetModel, hour=7.0)
    before = run(model, clock, 1800, step=2.0)
    assert (before["pump1_running"], before["pump2_running"], before["pump3_running"]) == (
        True, True, False)
    starts3 = int(before["pump3_starts"])

    model.inject("pump_trip", {"pump": 1})
    tripped = run(model, clock, 1.0)
    assert tripped["pump1_running"] is False
    assert tripped["pump1_fault"] is True
    assert bit(profile, tripped, "fault_word", "pump1_trip")
    assert alarm_active(profile, "pump1_tripped", tripped)
    assert not alarm_active(profile, "pump2_tripped", tripped)

    taken_over = run(model, clock, 3.0)
    assert taken_over["pump3_running"] is True
    assert taken_over["pumps_running"] == 2
    assert taken_over["pump3_starts"] == starts3 + 1
    assert bit(profile, taken_over, "status_word", "standby_in_use")
    assert alarm_active(profile, "standby_in_use", taken_over)
    assert taken_over["set_state"] == "degraded"
    assert taken_over["duty_pump"] == 2  # the first healthy pump leads while pump 1 is out
    settled = run(model, clock, 30.0)
    assert abs(float(settled["outlet_pressure"]) - 0.45) < 0.03
    assert not alarm_active(profile, "pump_set_down", settled)

    model.clear("pump_trip", {"pump": 1})
    reset = run(model, clock, 10.0)
    assert reset["fault_word"] == 0
    assert reset["pump1_fault"] is False
    assert (reset["pump1_running"], reset["pump2_running"], reset["pump3_running"]) == (
        True, True, False)
    assert not bit(profile, reset, "status_word", "standby_in_use")
    assert reset["set_state"] == "running"


def test_booster_all_pumps_tripped_is_a_set_down(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["booster-pumpset-modbus"]
    model, clock = make(BoosterPumpSetModel, hour=19.0)
    run(model, clock, 600)
    model.inject("pump_trip", {})
    down = run(model, clock, 60)
    assert down["pumps_running"] == 0
    assert down["set_state"] == "all_faulted"
    assert float(down["outlet_pressure"]) < 0.1
    assert float(down["flow"]) == 0.0
    for alarm in ("pump_set_down", "low_outlet_pressure", "pump1_tripped", "pump2_tripped",
                  "pump3_tripped"):
        assert alarm_active(profile, alarm, down), alarm
    model.write("fault_reset", True)
    back = run(model, clock, 60)
    assert back["fault_word"] == 0
    assert back["pumps_running"] == 2
    assert not alarm_active(profile, "low_outlet_pressure", back)


def test_booster_tank_low_stops_pumps_on_dry_run(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["booster-pumpset-modbus"]
    model, clock = make(BoosterPumpSetModel, hour=10.0)
    run(model, clock, 300)
    model.inject("tank_low", {})
    dry = run(model, clock, 60)
    assert dry["low_water_switch"] is True
    assert dry["set_state"] == "dry_run"
    assert dry["pumps_running"] == 0
    assert float(dry["tank_level_pct"]) < 10.0
    assert bit(profile, dry, "status_word", "dry_run_active")
    assert bit(profile, dry, "status_word", "inlet_valve_open")  # open, but nothing comes in
    for alarm in ("dry_run_protection", "pump_set_down", "low_outlet_pressure", "low_tank_level"):
        assert alarm_active(profile, alarm, dry), alarm
    assert float(run(model, clock, 600)["tank_level_pct"]) == float(dry["tank_level_pct"])

    model.clear("tank_low", {})
    refilled = run(model, clock, 3600, step=5.0)
    assert float(refilled["tank_level_pct"]) > 25.0
    assert refilled["set_state"] == "running"
    assert int(refilled["pumps_running"]) >= 1
    assert refilled["fault_word"] == 0
    assert abs(float(refilled["outlet_pressure"]) - 0.45) < 0.03


def test_booster_writes(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["booster-pumpset-modbus"]
    model, clock = make(BoosterPumpSetModel, hour=12.0)
    run(model, clock, 60)
    model.write("pressure_setpoint", 0.6)
    raised = run(model, clock, 60)
    assert raised["pressure_setpoint"] == 0.6
    assert abs(float(raised["outlet_pressure"]) - 0.6) < 0.03
    with pytest.raises(WriteRefused):
        model.write("pressure_setpoint", 5.0)
    with pytest.raises(WriteRefused):
        model.write("duty_pumps", 1.5)
    model.write("duty_pumps", 1)
    model.write("dry_run_level", 15.0)
    model.write("control_mode", "off")
    off = run(model, clock, 60)
    assert off["pumps_running"] == 0
    assert off["set_state"] == "stopped"
    assert off["duty_pumps"] == 1
    assert off["dry_run_level"] == 15.0
    assert alarm_active(profile, "not_in_auto", off)
    assert alarm_active(profile, "pump_set_down", off)
    model.write("control_mode", 2)
    assert run(model, clock, 60)["control_mode"] == "auto"


# --- sump pump -------------------------------------------------------------------------


def test_sump_cycles_and_alternates(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["sump-pump-modbus"]
    model, clock = make(SumpPumpModel)
    first = model.values()
    seen: list[dict[str, Value]] = []
    last = run(model, clock, 12 * 3600, step=5.0, watch=seen.append)
    levels = [float(v["pit_level"]) for v in seen]
    assert min(levels) >= 0.35
    assert max(levels) <= 1.5
    for n in (1, 2):
        assert int(last[f"pump{n}_starts"]) >= int(first[f"pump{n}_starts"]) + 3
        assert float(last[f"pump{n}_run_hours"]) > float(first[f"pump{n}_run_hours"])
        assert any(v[f"pump{n}_current"] for v in seen)
    assert {v["lead_pump"] for v in seen} == {1, 2}
    assert not any(bit(profile, v, "status_word", "lag_running") for v in seen)
    for alarm in ("sump_high_level", "sump_high_high", "pump1_fail_to_start"):
        assert not any(alarm_active(profile, alarm, v) for v in seen)


def test_sump_lag_pump_joins_on_high_inflow(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["sump-pump-modbus"]
    model, clock = make(SumpPumpModel, hour=9.0)
    model.inject("high_inflow", {})  # 40 m³/h: more than one 25 m³/h pump
    seen: list[dict[str, Value]] = []
    run(model, clock, 3600, step=2.0, watch=seen.append)
    assert any(bit(profile, v, "status_word", "lag_running") for v in seen)
    assert max(float(v["pit_level"]) for v in seen) < 1.7
    model.clear("high_inflow", {})
    assert model.extra_inflow == 0.0


def test_sump_pump_fail_changes_over(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["sump-pump-modbus"]
    model, clock = make(SumpPumpModel, hour=8.0)
    model.inject("pump_fail", {"pump": 1})
    model.inject("high_inflow", {"rate": 10.0})
    seen: list[dict[str, Value]] = []
    run(model, clock, 3600, step=1.0, watch=seen.append)
    failed = next(v for v in seen if bit(profile, v, "fault_word", "pump1_fail"))
    assert alarm_active(profile, "pump1_fail_to_start", failed)
    after = seen[seen.index(failed):]
    assert any(v["status_word"] and bit(profile, v, "status_word", "pump2_running")
               for v in after)
    assert not any(bit(profile, v, "status_word", "pump1_running") for v in seen)
    assert max(float(v["pit_level"]) for v in seen) < 1.7
    model.write("fault_reset", True)
    assert not bit(profile, model.values(), "fault_word", "pump1_fail")
    model.clear("pump_fail", {"pump": 1})
    model.clear("high_inflow", {})
    later: list[dict[str, Value]] = []
    run(model, clock, 6 * 3600, step=5.0, watch=later.append)
    assert any(bit(profile, v, "status_word", "pump1_running") for v in later)
    assert not any(alarm_active(profile, "pump1_fail_to_start", v) for v in later)


def test_sump_both_pumps_failed_floods(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["sump-pump-modbus"]
    model, clock = make(SumpPumpModel, hour=8.0)
    model.inject("pump_fail", {})
    model.inject("high_inflow", {"rate": 10.0})
    flooded = run(model, clock, 3600, step=2.0)
    assert bit(profile, flooded, "fault_word", "pump1_fail")
    assert bit(profile, flooded, "fault_word", "pump2_fail")
    assert flooded["float_high"] is True
    assert flooded["float_high_high"] is True
    assert float(flooded["pit_level"]) > 2.1
    for alarm in ("sump_high_level", "sump_high_high", "pump1_fail_to_start",
                  "pump2_fail_to_start"):
        assert alarm_active(profile, alarm, flooded), alarm

    model.clear("pump_fail", {})
    draining = run(model, clock, 30)
    assert bit(profile, draining, "status_word", "lag_running")
    assert not bit(profile, draining, "fault_word", "pump1_fail")
    assert not bit(profile, draining, "fault_word", "pump2_fail")
    drained = run(model, clock, 1800, step=2.0)
    assert float(drained["pit_level"]) < 1.2
    assert drained["fault_word"] == 0
    assert not alarm_active(profile, "sump_high_level", drained)
    assert not alarm_active(profile, "sump_high_high", drained)


def test_sump_writes_and_off_mode(profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles["sump-pump-modbus"]
    model, clock = make(SumpPumpModel)
    model.write("lead_start_level", 1.0)
    model.write("stop_level", 0.5)
    with pytest.raises(WriteRefused, match="stop"):
        model.write("stop_level", 1.3)
    with pytest.raises(WriteRefused):
        model.write("high_level_setpoint", 9.0)
    values = model.values()
    assert (values["lead_start_level"], values["stop_level"]) == (1.0, 0.5)
    model.write("control_mode", "off")
    model.inject("high_inflow", {"rate": 10.0})
    off = run(model, clock, 3600, step=5.0)
    assert off["status_word"] == 0 or not bit(profile, off, "status_word", "auto")
    assert alarm_active(profile, "not_in_auto", off)
    assert alarm_active(profile, "sump_high_level", off)
