"""Energy and water meter models, driven by a manual clock."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest

from device_profiles.codec import (
    counter_delta,
    counter_modulus,
    counter_went_backwards,
)
from device_profiles.schema import ModbusProfile
from simulators.clock import SimClock
from simulators.models.base import UnknownFault, Value, WriteRefused
from simulators.models.meters import EnergyMeterModel, WaterMeterModel
from tests.simulators.models import support
from tests.simulators.models.support import (
    alarm_active,
    check_encodes,
    modbus_profiles_from,
)

FILES = {"energy-meter-3p-modbus": "energy-meter-3ph-modbus.yaml",
         "water-meter-modbus": "water-meter-modbus.yaml"}

M = TypeVar("M", EnergyMeterModel, WaterMeterModel)


@pytest.fixture(scope="module")
def profiles() -> dict[str, ModbusProfile]:
    return modbus_profiles_from(FILES)


@pytest.fixture
def energy_profile(profiles: dict[str, ModbusProfile]) -> ModbusProfile:
    return profiles["energy-meter-3p-modbus"]


@pytest.fixture
def water_profile(profiles: dict[str, ModbusProfile]) -> ModbusProfile:
    return profiles["water-meter-modbus"]


def make(cls: type[M], hour: float = 0.0, options: Mapping[str, Any] | None = None,
         seed: int = 5) -> tuple[M, SimClock]:
    return support.make(cls, "meter-1", hour, options, seed)


def run(model: EnergyMeterModel | WaterMeterModel, clock: SimClock, seconds: float,
        step: float = 60.0,
        watch: Callable[[dict[str, Value]], None] | None = None) -> dict[str, Value]:
    return support.run(model, clock, seconds, step, watch)


def active_alarms(profile: ModbusProfile, values: Mapping[str, Value]) -> set[str]:
    return {a.id for a in profile.alarms
            if a.when.operator != "stale" and alarm_active(profile, a.id, values)}


def num(values: Mapping[str, Value], point: str) -> float:
    value = values[point]
    assert isinstance(value, int | float)
    assert not isinstance(value, bool)
    return float(value)


# ---- the profile contract -------------------------------------------------------------


@pytest.mark.parametrize("cls", [EnergyMeterModel, WaterMeterModel])
def test_values_cover_every_point_and_encode(
        cls: type[EnergyMeterModel] | type[WaterMeterModel],
        profiles: dict[str, ModbusProfile]) -> None:
    profile = profiles[cls.profiles[0]]
    model, clock = support.make(cls, "meter-1", seed=5)
    check_encodes(profile, model.values())
    run(model, clock, 86400, step=900,
        watch=lambda values: check_encodes(profile, values))
    for fault in sorted(model.faults - {"counter_reset"}):
        args = {"phase": 2} if fault == "phase_loss" else {}
        model.inject(fault, args)
        check_encodes(profile, run(model, clock, 120))
        model.clear(fault, args)
    check_encodes(profile, run(model, clock, 120))


# ---- energy meter -----------------------------------------------------------------------


def test_energy_follows_the_day_with_a_night_base_load(energy_profile: ModbusProfile) -> None:
    model, clock = make(EnergyMeterModel, 0.0, {"mix": "office", "base_kw": 20, "peak_kw": 200})
    samples: dict[int, list[dict[str, Value]]] = {}

    def watch(values: dict[str, Value]) -> None:
        samples.setdefault(int(clock.local_hour()), []).append(values)

    run(model, clock, 86400, step=60, watch=watch)
    mean = {h: sum(num(v, "power_total") for v in s) / len(s) for h, s in samples.items()}
    assert 15 < mean[3] < 30
    assert mean[10] > 150
    assert mean[15] > 150
    everything = [v for s in samples.values() for v in s]
    for values in everything:
        for phase in (1, 2, 3):
            assert 225.4 * 0.995 <= num(values, f"voltage_l{phase}") <= 234.6 * 1.005
        assert 0.85 <= num(values, "power_factor") <= 0.98
        assert 49.9 <= num(values, "frequency") <= 50.1
        assert math.isclose(num(values, "voltage_l1_l2"),
                            math.sqrt(3) * num(values, "voltage_l1"), rel_tol=0.03)
        assert not active_alarms(energy_profile, values)
    values = everything[-1]
    p, pf = num(values, "power_total"), num(values, "power_factor")
    assert math.isclose(num(values, "apparent_power_total"), p / pf, rel_tol=1e-3)
    amps = num(values, "current_l1") + num(values, "current_l2") + num(values, "current_l3")
    assert math.isclose(amps, p * 1000 / (230 * pf), rel_tol=0.05)
    assert num(values, "current_neutral") < 0.2 * num(values, "current_l1")


def test_counter_integrates_power() -> None:
    model, clock = make(EnergyMeterModel, 9.0, {"initial_kwh": 1000.0})
    powers: list[float] = []
    values = run(model, clock, 3600, step=10, watch=lambda v: powers.append(num(v, "power_total")))
    gained = num(values, "energy_import") - 1000.0
    assert math.isclose(gained, sum(powers) / len(powers), rel_tol=0.02)
    assert num(values, "reactive_energy_import") > 0
    assert 0.5 * max(powers) < num(values, "power_demand") <= num(values, "power_demand_max")


def test_counter_wraps_at_the_rollover(energy_profile: ModbusProfile) -> None:
    point = energy_profile.point("energy_import")
    modulus = counter_modulus(point)
    assert modulus == 1_000_000
    model, clock = make(EnergyMeterModel, 10.0, {"initial_kwh": 999_900.0})
    before = num(model.values(), "energy_import")
    seen: list[float] = []
    values = run(model, clock, 3 * 3600, step=60,
                 watch=lambda v: seen.append(num(v, "energy_import")))
    after = num(values, "energy_import")
    assert after < before
    assert max(seen) < modulus
    gained = counter_delta(before, after, modulus=modulus)
    assert 100 < gained < 3 * 250
    assert not counter_went_backwards(before, after, modulus, max_plausible_delta=5000)


def test_a_day_in_one_step_matches_a_day_in_minutes() -> None:
    fine, fine_clock = make(EnergyMeterModel, 0.0)
    run(fine, fine_clock, 86400, step=60)
    coarse, coarse_clock = make(EnergyMeterModel, 0.0)
    run(coarse, coarse_clock, 86400, step=86400)
    a, b = num(fine.values(), "energy_import"), num(coarse.values(), "energy_import")
    assert math.isclose(a, b, rel_tol=0.03)


def test_phase_loss(energy_profile: ModbusProfile) -> None:
    model, clock = make(EnergyMeterModel, 11.0)
    model.inject("phase_loss", {"phase": 2})
    values = run(model, clock, 60)
    assert num(values, "voltage_l2") < 5
    assert num(values, "current_l2") == 0
    assert num(values, "power_l2") == 0
    assert num(values, "power_l1") > 0
    assert math.isclose(num(values, "voltage_l1_l2"), num(values, "voltage_l1"), rel_tol=0.02)
    assert active_alarms(energy_profile, values) == {"phase_loss_l2", "undervoltage_l2"}
    model.clear("phase_loss", {"phase": 2})
    assert not active_alarms(energy_profile, run(model, clock, 60))
    with pytest.raises(ValueError, match="phase"):
        model.inject("phase_loss", {})
    with pytest.raises(ValueError, match="phase"):
        model.inject("phase_loss", {"phase": 4})


def test_power_failure_stops_the_counter(energy_profile: ModbusProfile) -> None:
    model, clock = make(EnergyMeterModel, 11.0)
    model.inject("power_failure", {})
    before = num(model.values(), "energy_import")
    values = run(model, clock, 600)
    assert num(values, "energy_import") == before
    assert num(values, "power_total") == 0
    assert num(values, "frequency") == 0
    assert all(num(values, f"voltage_l{p}") < 5 for p in (1, 2, 3))
    alarms = active_alarms(energy_profile, values)
    assert "power_failure" in alarms
    assert "low_power_factor" not in alarms
    assert not {"phase_loss_l1", "phase_loss_l2", "phase_loss_l3"} & alarms
    model.clear("power_failure", {})
    values = run(model, clock, 600)
    assert num(values, "energy_import") > before
    assert not active_alarms(energy_profile, values)


def test_over_and_undervoltage(energy_profile: ModbusProfile) -> None:
    model, clock = make(EnergyMeterModel, 11.0)
    model.inject("overvoltage", {"phase": 1})
    values = run(model, clock, 60)
    assert active_alarms(energy_profile, values) == {"overvoltage_l1"}
    model.clear("overvoltage", {})
    model.inject("undervoltage", {"volts": 195})
    values = run(model, clock, 60)
    assert active_alarms(energy_profile, values) == {
        "undervoltage_l1", "undervoltage_l2", "undervoltage_l3"}
    model.clear("undervoltage", {})
    assert not active_alarms(energy_profile, run(model, clock, 60))
    with pytest.raises(ValueError, match="volts"):
        model.inject("overvoltage", {"volts": 240})


def test_low_power_factor(energy_profile: ModbusProfile) -> None:
    model, clock = make(EnergyMeterModel, 11.0)
    model.inject("low_power_factor", {})
    values = run(model, clock, 60)
    assert num(values, "power_factor") < 0.82
    assert active_alarms(energy_profile, values) == {"low_power_factor"}
    model.clear("low_power_factor", {})
    assert not active_alarms(energy_profile, run(model, clock, 60))


def test_counter_reset_goes_backwards(energy_profile: ModbusProfile) -> None:
    modulus = counter_modulus(energy_profile.point("energy_import"))
    model, clock = make(EnergyMeterModel, 11.0, {"initial_kwh": 52_000.0})
    before = num(run(model, clock, 600), "energy_import")
    model.inject("counter_reset", {})
    after = num(run(model, clock, 60), "energy_import")
    assert after < 10
    assert counter_went_backwards(before, after, modulus, max_plausible_delta=5000)
    with pytest.raises(ValueError, match="instantaneous"):
        model.clear("counter_reset", {})


def test_energy_writes_and_options() -> None:
    model, clock = make(EnergyMeterModel, 18.0)
    run(model, clock, 3600)
    run(model, clock, 3 * 3600)
    values = model.values()
    assert num(values, "power_demand_max") > num(values, "power_demand")
    model.write("reset_max_demand", True)
    assert model.values()["power_demand_max"] == model.values()["power_demand"]
    with pytest.raises(WriteRefused):
        model.write("ct_ratio", 400)
    with pytest.raises(UnknownFault):
        model.inject("lightning", {})
    for options in ({"initial_kwh": 1_000_000}, {"base_kw": 500}, {"mix": "factory"},
                    {"colour": 1}):
        with pytest.raises(ValueError, match=next(iter(options))):
            make(EnergyMeterModel, 0.0, options)


# ---- water meter -----------------------------------------------------------------------


def test_water_flow_follows_the_day_and_stops_at_night(water_profile: ModbusProfile) -> None:
    model, clock = make(WaterMeterModel, 0.0)
    samples: dict[int, list[float]] = {}

    def watch(values: dict[str, Value]) -> None:
        samples.setdefault(int(clock.local_hour()), []).append(num(values, "flow_rate"))
        assert not active_alarms(water_profile, values)

    values = run(model, clock, 2 * 86400, step=60, watch=watch)
    night = [f for h in range(1, 5) for f in samples[h]]
    assert sum(1 for f in night if f < 0.01) > 0.8 * len(night)
    assert sum(samples[8]) / len(samples[8]) > 3.0
    assert not active_alarms(water_profile, values)


def test_volume_integrates_flow_and_wraps(water_profile: ModbusProfile) -> None:
    point = water_profile.point("volume_total")
    modulus = counter_modulus(point)
    assert modulus == 1_000_000
    model, clock = make(WaterMeterModel, 7.0, {"initial_m3": 999_998.0})
    flows: list[float] = []
    values = run(model, clock, 3600, step=10, watch=lambda v: flows.append(num(v, "flow_rate")))
    gained = counter_delta(999_998.0, num(values, "volume_total"), modulus=modulus)
    assert num(values, "volume_total") < 10
    assert math.isclose(gained, sum(flows) / len(flows), rel_tol=0.03)


def test_leak_flows_all_night_and_the_meter_flags_it(water_profile: ModbusProfile) -> None:
    model, clock = make(WaterMeterModel, 12.0)
    model.inject("leak", {"rate": 0.4})
    night: list[float] = []
    flagged: list[float] = []

    def watch(values: dict[str, Value]) -> None:
        if 1 <= clock.local_hour() < 5:
            night.append(num(values, "flow_rate"))
        if alarm_active(water_profile, "continuous_flow", values):
            flagged.append(clock.now())

    start = clock.now()
    run(model, clock, 30 * 3600, step=60, watch=watch)
    assert night
    assert min(night) >= 0.39
    assert flagged
    assert 23.9 * 3600 <= flagged[0] - start <= 24.1 * 3600
    model.clear("leak", {})
    values = run(model, clock, 24 * 3600, step=60)
    assert not alarm_active(water_profile, "continuous_flow", values)


def test_quicker_leak_detection_by_write(water_profile: ModbusProfile) -> None:
    model, clock = make(WaterMeterModel, 1.0)
    model.write("leak_detect_time", 2)
    model.inject("leak", {})
    assert alarm_active(water_profile, "continuous_flow", run(model, clock, 2 * 3600 + 60))
    for bad in (0, 200, 1.5, True):
        with pytest.raises(WriteRefused):
            model.write("leak_detect_time", bad)
    with pytest.raises(WriteRefused):
        model.write("volume_total", 0)


def test_reverse_flow(water_profile: ModbusProfile) -> None:
    model, clock = make(WaterMeterModel, 10.0)
    model.inject("reverse_flow", {"rate": 0.6})
    forward = num(model.values(), "volume_total")
    values = run(model, clock, 3600)
    assert num(values, "flow_rate") == pytest.approx(-0.6)
    assert num(values, "reverse_volume") == pytest.approx(0.6, abs=0.01)
    assert num(values, "volume_total") == pytest.approx(forward, abs=0.01)
    assert active_alarms(water_profile, values) == {"reverse_flow"}
    model.clear("reverse_flow", {})
    assert not active_alarms(water_profile, run(model, clock, 60))


@pytest.mark.parametrize(("fault", "alarms"), [
    ("empty_pipe", {"empty_pipe"}), ("sensor_fault", {"sensor_fault"}),
    ("tamper", {"magnetic_tamper"}), ("low_battery", {"low_battery"}),
    ("burst", {"high_flow"}),
])
def test_water_faults_raise_their_alarms(water_profile: ModbusProfile, fault: str,
                                         alarms: set[str]) -> None:
    model, clock = make(WaterMeterModel, 10.0)
    model.inject(fault, {})
    before = num(model.values(), "volume_total")
    values = run(model, clock, 600)
    assert active_alarms(water_profile, values) == alarms
    if fault in ("empty_pipe", "sensor_fault"):
        assert num(values, "flow_rate") == 0
        assert num(values, "volume_total") == before
    model.clear(fault, {})
    values = run(model, clock, 60)
    assert not active_alarms(water_profile, values)
    if fault == "low_battery":
        assert values["battery_level"] == 100


def test_water_options() -> None:
    model, _ = make(WaterMeterModel, 0.0, {"serial": "A1234", "battery": 50})
    assert model.values()["meter_serial"] == "A1234"
    assert model.values()["battery_level"] == 50
    for options in ({"initial_m3": -1}, {"peak_m3h": 0}, {"serial": "x" * 13},
                    {"battery": 101}, {"size": "DN50"}):
        with pytest.raises(ValueError, match=next(iter(options))):
            make(WaterMeterModel, 0.0, options)
    with pytest.raises(ValueError, match="rate"):
        model.inject("leak", {"rate": 0})
