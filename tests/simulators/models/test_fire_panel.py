"""The fire panel model: latching fire alarms, resets, silence, evacuation, power."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device_profiles.codec import decode_bacnet, decode_modbus, encode_bacnet, encode_modbus
from device_profiles.loader import load_profiles
from device_profiles.registers import set_bit
from device_profiles.schema import BacnetProfile, ModbusProfile
from simulators.clock import SimClock
from simulators.models.base import SimContext, UnknownFault, Value, WriteRefused
from simulators.models.fire_panel import FirePanelModel
from simulators.models.registry import model_class
from tests.simulators.models.support import holds

PROFILE_DIR = Path(__file__).parents[3] / "device_profiles" / "profiles"
PROFILE_FILES = [PROFILE_DIR / "fire-panel-bacnet.yaml", PROFILE_DIR / "fire-panel-modbus.yaml"]
START = datetime(2024, 3, 5, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


class Panel:
    """A model on a manual clock, stepped one second at a time (or in bigger jumps)."""

    def __init__(self, **options: object) -> None:
        self.clock = SimClock(start=START, speed=0, timezone="Asia/Shanghai")
        self.model = FirePanelModel("facp-1", SimContext(self.clock, random.Random(7)), options)

    def run(self, seconds: float, step: float = 1.0) -> None:
        left = seconds
        while left > 0:
            dt = min(step, left)
            self.clock.advance(dt)
            self.model.step(self.clock.now(), dt)
            left -= dt

    def inject(self, fault: str, **args: object) -> None:
        self.model.inject(fault, args)

    def clear(self, fault: str, **args: object) -> None:
        self.model.clear(fault, args)

    @property
    def v(self) -> dict[str, Value]:
        return self.model.values()


@pytest.fixture(scope="module")
def profiles() -> dict[str, BacnetProfile | ModbusProfile]:
    loaded = load_profiles(PROFILE_FILES)
    return {pid: loaded.get(pid) for pid in FirePanelModel.profiles}


@pytest.fixture
def panel() -> Panel:
    return Panel()


def busy_panels() -> Iterator[Panel]:
    """A quiet panel and one with every zone state and panel flag in use."""
    yield Panel()
    p = Panel(zones=8, evacuation_delay=0)
    p.inject("pre_alarm", zone=1)
    p.inject("fire_alarm", zone=2)
    p.inject("zone_fault", zone=3)
    p.inject("supervisory", zone=4)
    p.inject("zone_disabled", zone=5)
    p.inject("mains_failure")
    p.run(120)
    p.inject("reset")
    p.inject("fire_alarm", zone=6, hold=600)
    p.inject("silence")
    yield p
    p.inject("battery_fault")
    yield p


# --- the values fit the profiles ---------------------------------------------------


@pytest.mark.parametrize("profile_id", FirePanelModel.profiles)
def test_values_cover_every_point_and_encode(
        profiles: dict[str, BacnetProfile | ModbusProfile], profile_id: str) -> None:
    profile = profiles[profile_id]
    for p in busy_panels():
        values = p.v
        assert set(values) == {pt.id for pt in profile.points if pt.kind != "event_log"}
        if isinstance(profile, BacnetProfile):
            for bpoint in profile.points:
                wire = encode_bacnet(bpoint, values[bpoint.id], enums=profile.enums)
                back = decode_bacnet(bpoint, wire, enums=profile.enums).value
                assert back == pytest.approx(values[bpoint.id], abs=1e-4), bpoint.id
            continue
        image: dict[int, list[int]] = {}
        for mpoint in profile.points:  # bit points share registers: read-modify-write
            order = profile.byte_order_of(mpoint)
            if mpoint.bit is None:
                image[mpoint.address] = encode_modbus(mpoint, values[mpoint.id],
                                                      byte_order=order, enums=profile.enums)
            else:
                regs = image.get(mpoint.address, [0])
                image[mpoint.address] = set_bit(regs, mpoint.bit, bool(values[mpoint.id]))
        for mpoint in profile.points:
            decoded = decode_modbus(mpoint, image[mpoint.address],
                                    byte_order=profile.byte_order_of(mpoint),
                                    enums=profile.enums)
            assert decoded.quality == "good", mpoint.id
            assert decoded.value == pytest.approx(values[mpoint.id], abs=1e-6), mpoint.id


def test_profiles_are_read_only_and_alarm_on_every_zone(
        profiles: dict[str, BacnetProfile | ModbusProfile]) -> None:
    for profile in profiles.values():
        assert profile.read_only
        assert not any(p.writable for p in profile.points)
        alarms = {a.id: a for a in profile.alarms}
        for zone in range(1, 9):
            fire = alarms[f"zone{zone}_fire"]
            assert (fire.severity, fire.category) == ("emergency", "fire")
            assert f"zone {zone}" in fire.text.en
            assert f"{zone}号防区" in fire.text.zh
        assert alarms["evacuation_active"].severity == "emergency"
        assert alarms["comm_stale"].when.stale is True


# --- fire alarms latch until reset ---------------------------------------------------


def test_starts_quiet(panel: Panel) -> None:
    v = panel.v
    assert all(v[f"zone{z}_state"] == "quiet" for z in range(1, 9))
    assert not any(v[k] for k in ("common_fire", "common_fault", "sounders_active",
                                  "mains_failure", "battery_fault", "evacuation_active"))
    assert v["configured_zones"] == 8
    assert 27.0 < float(v["battery_voltage"]) < 27.6
    assert 212.0 < float(v["mains_voltage"]) < 232.0


def test_fire_alarm_latches_until_reset_after_smoke_clears(
        panel: Panel, profiles: dict[str, BacnetProfile | ModbusProfile]) -> None:
    alarms = {a.id: a for a in profiles["fire-panel-modbus"].alarms}
    panel.inject("fire_alarm", zone=3)
    v = panel.v
    assert v["zone3_state"] == "fire_alarm"
    assert v["zone3_fire"] is True
    assert v["common_fire"]
    assert v["sounders_active"]
    assert v["fire_alarm_count"] == 1
    assert holds(alarms["zone3_fire"].when, v)
    assert not holds(alarms["zone2_fire"].when, v)

    panel.run(30)
    panel.inject("reset")  # the detector still sees smoke: the zone stays in fire
    assert panel.v["zone3_state"] == "fire_alarm"
    assert panel.v["reset_in_progress"]

    panel.run(120)  # smoke gone; the alarm is latched all the same
    assert panel.v["zone3_state"] == "fire_alarm"
    assert not panel.v["reset_in_progress"]

    panel.inject("reset")
    v = panel.v
    assert v["zone3_state"] == "quiet"
    assert not v["common_fire"]
    assert not v["sounders_active"]
    assert v["reset_in_progress"]
    assert not holds(alarms["zone3_fire"].when, v)
    panel.run(10)
    assert not panel.v["reset_in_progress"]


def test_clearing_fire_alarm_resets_only_that_zone(panel: Panel) -> None:
    panel.inject("fire_alarm", zone=1, hold=10)
    panel.inject("fire_alarm", zone=2, hold=600)
    panel.run(20)
    panel.clear("fire_alarm", zone=2)  # still smoke in zone 2: no effect
    panel.clear("fire_alarm", zone=1)
    v = panel.v
    assert (v["zone1_state"], v["zone2_state"]) == ("quiet", "fire_alarm")
    assert v["fire_alarm_count"] == 1


def test_pre_alarm_follows_the_detector_and_can_grow_into_a_fire(
        panel: Panel, profiles: dict[str, BacnetProfile | ModbusProfile]) -> None:
    alarms = {a.id: a for a in profiles["fire-panel-bacnet"].alarms}
    panel.inject("pre_alarm", zone=5)
    assert panel.v["zone5_state"] == "pre_alarm"
    assert holds(alarms["zone5_pre_alarm"].when, panel.v)
    assert not panel.v["sounders_active"]
    panel.clear("pre_alarm", zone=5)  # not latching
    assert panel.v["zone5_state"] == "quiet"

    panel.inject("pre_alarm", zone=2, escalate_after=45)
    panel.run(44)
    assert panel.v["zone2_state"] == "pre_alarm"
    panel.run(2)
    v = panel.v
    assert v["zone2_state"] == "fire_alarm"
    assert not v["zone2_pre_alarm"]
    assert holds(alarms["zone2_fire"].when, v)


def test_escalation_within_one_big_step(panel: Panel) -> None:
    panel.inject("pre_alarm", zone=4, escalate_after=30)
    panel.run(600, step=600)
    assert panel.v["zone4_state"] == "fire_alarm"  # latched although the smoke has cleared
    panel.inject("reset")
    assert panel.v["zone4_state"] == "quiet"


def test_fault_and_supervisory_follow_their_cause_and_show_together(
        panel: Panel, profiles: dict[str, BacnetProfile | ModbusProfile]) -> None:
    alarms = {a.id: a for a in profiles["fire-panel-modbus"].alarms}
    panel.inject("zone_fault", zone=4)
    panel.inject("supervisory", zone=4)
    v = panel.v
    assert v["zone4_state"] == "supervisory"  # higher priority than fault
    assert v["zone4_fault"]
    assert v["zone4_supervisory"]
    assert v["common_fault"]
    assert (v["fault_count"], v["supervisory_count"]) == (1, 1)
    assert holds(alarms["zone4_fault"].when, v)
    assert holds(alarms["zone4_supervisory"].when, v)

    panel.inject("reset")  # the open circuit is still there
    assert panel.v["zone4_fault"]
    panel.clear("supervisory", zone=4)
    assert panel.v["zone4_state"] == "fault"
    panel.clear("zone_fault", zone=4)
    assert panel.v["zone4_state"] == "quiet"
    assert not panel.v["common_fault"]


def test_disabled_zone_reports_nothing_else(panel: Panel) -> None:
    panel.inject("zone_disabled", zone=6)
    panel.inject("fire_alarm", zone=6, hold=300)
    panel.inject("zone_fault", zone=6)
    v = panel.v
    assert v["zone6_state"] == "disabled"
    assert v["zone6_disabled"]
    assert v["disabled_count"] == 1
    assert not v["zone6_fire"]
    assert not v["zone6_fault"]
    assert not v["common_fire"]
    panel.run(10)
    panel.clear("zone_disabled", zone=6)  # enabled again with smoke present
    assert panel.v["zone6_state"] == "fire_alarm"
    assert panel.v["zone6_fault"]


# --- sounders, silence, evacuation ----------------------------------------------------


def test_silence_resound_and_evacuation_on_a_second_zone(
        panel: Panel, profiles: dict[str, BacnetProfile | ModbusProfile]) -> None:
    alarms = {a.id: a for a in profiles["fire-panel-bacnet"].alarms}
    panel.inject("fire_alarm", zone=1)
    panel.inject("silence")
    v = panel.v
    assert v["silenced"]
    assert not v["sounders_active"]
    assert v["zone1_state"] == "fire_alarm"
    panel.run(600)  # silenced: no automatic evacuation
    assert not panel.v["evacuation_active"]

    panel.inject("fire_alarm", zone=7)  # a second zone resounds and confirms the fire
    v = panel.v
    assert not v["silenced"]
    assert v["sounders_active"]
    assert v["evacuation_active"]
    assert holds(alarms["evacuation_active"].when, v)

    panel.inject("silence")
    assert panel.v["silenced"]
    assert not panel.v["evacuation_active"]
    panel.clear("silence")  # resound
    assert panel.v["sounders_active"]
    assert not panel.v["silenced"]
    panel.run(120)
    panel.inject("reset")
    v = panel.v
    assert not v["common_fire"]
    assert not v["sounders_active"]
    assert not v["silenced"]


def test_unsilenced_fire_starts_evacuation_after_the_delay() -> None:
    panel = Panel(evacuation_delay=120)
    panel.inject("fire_alarm", zone=3, hold=1000)
    panel.run(119)
    assert not panel.v["evacuation_active"]
    panel.run(2)
    assert panel.v["evacuation_active"]
    panel.clear("evacuate")
    assert not panel.v["evacuation_active"]
    assert panel.v["silenced"]


def test_operator_evacuation_drill_ends_with_reset(panel: Panel) -> None:
    panel.inject("evacuate")
    assert panel.v["evacuation_active"]
    assert panel.v["sounders_active"]
    assert not panel.v["common_fire"]
    panel.inject("reset")
    assert not panel.v["evacuation_active"]
    assert not panel.v["sounders_active"]


# --- power ---------------------------------------------------------------------------


def test_mains_failure_drains_the_battery_and_recharges(
        panel: Panel, profiles: dict[str, BacnetProfile | ModbusProfile]) -> None:
    alarms = {a.id: a for a in profiles["fire-panel-modbus"].alarms}
    panel.inject("mains_failure")
    panel.run(60)
    v = panel.v
    assert v["mains_failure"]
    assert v["mains_voltage"] == 0.0
    assert v["common_fault"]
    assert holds(alarms["mains_failure"].when, v)
    on_battery = float(v["battery_voltage"])
    assert 24.5 < on_battery < 25.6
    assert not v["battery_fault"]

    readings = []
    for _ in range(48):  # two days in one-hour jumps
        panel.run(3600, step=3600)
        readings.append(float(panel.v["battery_voltage"]))
    assert all(b <= a + 0.05 for a, b in itertools.pairwise(readings))
    assert readings[-1] < 22.0
    assert panel.v["battery_fault"]
    assert readings[-1] >= 20.0
    assert holds(alarms["battery_fault"].when, panel.v)

    panel.clear("mains_failure")
    v = panel.v
    assert not v["mains_failure"]
    assert not v["battery_fault"]
    assert 212.0 < float(v["mains_voltage"]) < 232.0
    charging = float(v["battery_voltage"])
    panel.run(6 * 3600, step=600)
    assert charging < float(panel.v["battery_voltage"]) <= 27.6
    panel.run(24 * 3600, step=3600)
    assert 27.0 < float(panel.v["battery_voltage"]) < 27.6


def test_sounders_sag_the_battery(panel: Panel) -> None:
    panel.inject("mains_failure")
    quiet = float(panel.v["battery_voltage"])
    panel.inject("fire_alarm", zone=1)
    assert float(panel.v["battery_voltage"]) < quiet - 0.15


def test_battery_fault_reads_no_battery(panel: Panel) -> None:
    panel.inject("battery_fault")
    v = panel.v
    assert v["battery_fault"]
    assert v["battery_voltage"] == 0.0
    assert v["fault_count"] == 1
    panel.clear("battery_fault")
    assert not panel.v["battery_fault"]
    assert float(panel.v["battery_voltage"]) > 27.0


def test_supply_drifts_over_a_day(panel: Panel) -> None:
    mains, battery = set(), set()
    for _ in range(24):
        panel.run(3600, step=300)
        mains.add(panel.v["mains_voltage"])
        battery.add(panel.v["battery_voltage"])
    assert len(mains) > 10
    assert len(battery) > 5
    assert all(212.0 < float(m) < 232.0 for m in mains)
    assert all(27.0 < float(b) < 27.6 for b in battery)


# --- options and bad input ----------------------------------------------------------


@pytest.mark.parametrize(("options", "named"), [
    ({"zones": 9}, "zones"), ({"zones": 0}, "zones"), ({"zones": True}, "zones"),
    ({"evacuation_delay": -1}, "evacuation_delay"), ({"reset_time": 0}, "reset_time"),
    ({"floors": 3}, "floors"),
])
def test_bad_options_are_named(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Panel(**options)


def test_fewer_zones() -> None:
    panel = Panel(zones=4)
    assert panel.v["configured_zones"] == 4
    assert panel.v["zone8_state"] == "quiet"
    panel.inject("fire_alarm", zone=4)
    with pytest.raises(ValueError, match="zone"):
        panel.inject("fire_alarm", zone=5)


def test_bad_faults_and_writes_are_refused(panel: Panel) -> None:
    with pytest.raises(UnknownFault):
        panel.inject("flood")
    with pytest.raises(ValueError, match="zone"):
        panel.inject("zone_fault")
    with pytest.raises(ValueError, match="colour"):
        panel.inject("zone_fault", zone=1, colour="red")
    with pytest.raises(ValueError, match="hold"):
        panel.inject("fire_alarm", zone=1, hold=-5)
    with pytest.raises(ValueError, match="reset"):
        panel.clear("reset")
    with pytest.raises(WriteRefused):
        panel.model.write("zone1_state", "quiet")


def test_registered_as_fire_panel() -> None:
    assert model_class("fire_panel") is FirePanelModel
