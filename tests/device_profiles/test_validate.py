"""The validator reports every mistake at once, each with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles.loader import check_profiles, load_profiles
from device_profiles.schema import ModbusPoint
from towerwatch.sourced_yaml import SourceError

DATA = Path(__file__).parent / "data"


def _issues(path: Path) -> list[tuple[int, str, str]]:
    _, issues = check_profiles([path])
    return [(i.location.line, i.path, i.message) for i in issues]


def test_every_mistake_is_reported_with_its_line() -> None:
    found = _issues(DATA / "broken" / "many-mistakes.yaml")
    lines = {(line, path) for line, path, _ in found}
    assert lines == {
        (16, "points[1].id"),          # duplicate id
        (19, "points[1].address"),     # overlaps the f32 at 0-1
        (21, "points[1].count"),       # u32 is two registers, not one
        (22, "points[1].writable"),    # fire panels are read-only
        (26, "points[2].enum"),        # 70000 does not fit u16
        (32, "points[3].bit"),         # bit 17 of a u16
        (39, "points[4].count"),       # a 130-register string
        (45, "points[5].enum"),        # dangling enum reference
        (50, "alarms[0].when.point"),  # alarm on an unknown point
        (55, "alarms[1].when.eq"),     # 'manual' is no state of enum 'mode'
    }
    messages = " | ".join(m for _, _, m in found)
    assert "duplicate id 'voltage'" in messages
    assert "does not fit u16" in messages
    assert "spans 130 registers" in messages


def test_field_errors_carry_lines_too() -> None:
    found = _issues(DATA / "broken" / "units-and-refs.yaml")
    assert (10, "points[0].unit") in {(line, path) for line, path, _ in found}
    assert any("unknown unit 'storeys'" in m for _, _, m in found)


def test_semantic_errors_of_bacnet_profiles(tmp_path: Path) -> None:
    # the unit error stops that profile at the schema stage; fix it to see the semantic ones
    text = (DATA / "broken" / "units-and-refs.yaml").read_text().replace("storeys", "floor")
    tmp = tmp_path / "p.yaml"
    tmp.write_text(text)
    found = {(line, path, msg) for line, path, msg in _issues(tmp)}
    assert {(line, path) for line, path, _ in found} == {
        (15, "points[1].enum"),     # unknown enum 'modes'
        (19, "points[2].kind"),     # binary-input is a bool
        (24, "points[3].object"),   # same object read twice
    }


def test_extends_overrides_by_point_id_and_inherits_the_rest() -> None:
    profiles, issues = check_profiles([DATA / "family"])
    assert "meter-variant" in profiles
    variant = profiles.get("meter-variant")
    assert variant.manufacturer == "Generic"          # inherited
    assert variant.model == "M200"                    # overridden
    assert [p.id for p in variant.points] == ["voltage", "current", "energy"]
    current = variant.point("current")
    assert isinstance(current, ModbusPoint)
    assert current.address == 6                       # replaced by id
    assert [a.id for a in variant.alarms] == ["overvoltage"]
    by_file = {(Path(i.location.file).name, i.location.line, i.message) for i in issues}
    # the child's new point overlaps the parent's voltage: reported in the child's file
    assert any(f == "bad-child.yaml" and line == 9 and "overlaps 'voltage'" in m
               for f, line, m in by_file)
    assert not any(f == "base.yaml" for f, _, _ in by_file)  # the parent is not blamed
    assert any(f in ("cycle-a.yaml", "cycle-b.yaml") and "cycle" in m for f, _, m in by_file)


def test_load_profiles_raises_with_every_issue() -> None:
    with pytest.raises(SourceError) as caught:
        load_profiles([DATA / "broken"])
    assert len(caught.value.issues) >= 11
    assert all(":" in str(i) for i in caught.value.issues)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\npoints:\n  - id: [unclosed\n")
    found = check_profiles([bad])[1]
    assert len(found) == 1
    assert found[0].location.file == str(bad)
    assert found[0].message.startswith("YAML:")


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "dup.yaml"
    bad.write_text("id: x\nid: y\n")
    found = check_profiles([bad])[1]
    assert found[0].location.line == 2
    assert "duplicate key 'id'" in found[0].message


def test_shipped_profiles_are_clean() -> None:
    profiles = load_profiles()
    assert len(profiles) >= 9
