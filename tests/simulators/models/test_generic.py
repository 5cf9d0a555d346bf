"""The generic model drives any profile, e.g. the load-test profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles.codec import encode_modbus
from device_profiles.loader import builtin_profile_dir, load_profiles
from device_profiles.schema import ModbusProfile
from simulators.clock import SimClock
from simulators.models.base import SimContext, WriteRefused
from simulators.models.generic import GenericModel

BENCH = Path(__file__).resolve().parents[3] / "bench" / "profiles"


def test_generic_model_serves_every_point_and_changes() -> None:
    profiles = load_profiles([builtin_profile_dir(), BENCH])
    profile = profiles.get("bench-40reg-modbus")
    assert isinstance(profile, ModbusProfile)
    clock = SimClock(start=1_800_000_000, speed=0)
    model = GenericModel("load-1", SimContext(clock), {"profile": profile, "change": 0.5})
    first = model.values()
    assert set(first) == {p.id for p in profile.points}
    for _ in range(10):
        clock.advance(1)
        model.step(clock.now(), 1.0)
    later = model.values()
    assert later != first
    for point in profile.points:
        encode_modbus(point, later[point.id], byte_order=profile.byte_order, enums=profile.enums)
    model.write("r01", 7)
    assert model.values()["r01"] == 7
    with pytest.raises(WriteRefused):
        model.write("nope", 1)


def test_generic_model_checks_its_options() -> None:
    clock = SimClock(speed=0)
    with pytest.raises(ValueError, match="needs the profile"):
        GenericModel("x", SimContext(clock), {})
    profile = load_profiles().get("water-meter-modbus")
    with pytest.raises(ValueError, match="change"):
        GenericModel("x", SimContext(clock), {"profile": profile, "change": 3})
