"""A simulated building stepped by a manual clock: scenarios, cues and config errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from device_profiles.loader import ProfileSet, load_profiles
from simulators.building import SimBuilding
from simulators.clock import SimClock
from simulators.scenario import load_scenario
from simulators.site import load_site
from towerwatch.sourced_yaml import SourceError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "simulators" / "sites" / "example.yaml"
DEMO = ROOT / "simulators" / "scenarios" / "demo.yaml"
NIGHT = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles()


def _building(profiles: ProfileSet, scenario: Path | None = DEMO) -> SimBuilding:
    site, raw = load_site(EXAMPLE)
    story, story_raw = load_scenario(scenario) if scenario else (None, None)
    clock = SimClock(start=NIGHT, speed=0, timezone=site.timezone)
    return SimBuilding(site, profiles, clock=clock, scenario=story, site_raw=raw,
                       scenario_raw=story_raw)


def _run_until(building: SimBuilding, seconds: float, step: float = 1.0) -> None:
    for _ in range(int(seconds / step)):
        building.clock.advance(step)
        building.tick()


def test_example_building_has_every_profile(profiles: ProfileSet) -> None:
    building = _building(profiles, scenario=None)
    assert {d.profile.id for d in building.devices.values()} == set(profiles.ids())
    assert len(building.devices) == 10


def test_demo_scenario_plays_in_order(profiles: ProfileSet) -> None:
    building = _building(profiles)
    _run_until(building, 3 * 60 + 40)
    panel = building.values("fire-panel")
    assert panel["zone3_state"] == "fire_alarm"
    assert panel["zone1_state"] == "quiet"
    booster = building.values("booster")
    assert booster["pump1_fault"] is True
    assert isinstance(booster["pumps_running"], int)
    assert booster["pumps_running"] >= 1  # the standby took over
    assert building.values("lift-2")["passenger_trapped"] is True
    _run_until(building, 6 * 60)
    assert building.values("booster")["pump1_fault"] is False
    assert building.values("lift-2")["passenger_trapped"] is False
    assert building.values("fire-panel")["zone3_state"] == "quiet"  # reset after the smoke
    played = [line.split(" ", 1)[1] for line in building.log]
    assert played[:3] == ["water-main: fault leak (rate=0.4)", "lift-2: fault passenger_trapped",
                          "booster: fault pump_trip (pump=1)"]
    assert len(building.log) == 14  # all but the sump events, still ahead


def test_same_seed_same_building(profiles: ProfileSet) -> None:
    first, second = _building(profiles, None), _building(profiles, None)
    _run_until(first, 600, step=5)
    _run_until(second, 600, step=5)
    assert first.values("lift-1") == second.values("lift-1")
    assert first.values("door-lobby") == second.values("door-lobby")


def test_scenario_mistakes_are_located(profiles: ProfileSet, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("events:\n"
                   "  - {at: '00:01', device: lift-9, fault: passenger_trapped}\n"
                   "  - {at: '00:02', device: lift-1, fault: levitate}\n"
                   "  - {at: 'soon', device: lift-1, clear: inspection}\n")
    with pytest.raises(SourceError) as caught:
        load_scenario(bad)
    assert [(i.location.line, i.path) for i in caught.value.issues] == [(4, "events[2].at")]
    bad.write_text(bad.read_text().replace("'soon'", "'00:03'"))
    with pytest.raises(SourceError) as caught:
        _building(profiles, bad)
    found = [(i.location.line, i.path, i.message) for i in caught.value.issues]
    assert [(line, path) for line, path, _ in found] == [(2, "events[0].device"),
                                                         (3, "events[1].fault")]
    assert "no device 'lift-9'" in found[0][2]
    assert "no fault 'levitate'" in found[1][2]


def test_site_mistakes_are_located(profiles: ProfileSet, tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("site: t\n"
                   "devices:\n"
                   "  - {id: a, profile: no-such-profile}\n"
                   "  - {id: b, profile: elevator-ctl-modbus, options: {floors: -4}}\n"
                   "  - {id: 'c-{n}', count: 2, profile: water-meter-modbus}\n")
    site, raw = load_site(bad)
    with pytest.raises(SourceError) as caught:
        SimBuilding(site, profiles, site_raw=raw)
    lines = [(i.location.line, i.path) for i in caught.value.issues]
    assert lines == [(3, "devices[0].profile"), (4, "devices[1].profile")]
    assert "floors" in caught.value.issues[1].message
    bad.write_text("site: t\ndevices:\n  - {id: a, profile: x, count: 3}\n")
    with pytest.raises(SourceError) as caught:
        load_site(bad)
    assert caught.value.issues[0].location.line == 3
    assert "{n}" in caught.value.issues[0].message
