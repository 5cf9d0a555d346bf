"""The ``towerwatch`` command as an operator or installer uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerwatch.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "device_profiles" / "data" / "broken"


def test_validate_shipped_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "validate", str(ROOT / "device_profiles")]) == 0
    out = capsys.readouterr().out
    assert "9 profile(s) valid" in out
    assert "fire-panel-bacnet" in out


def test_validate_lists_every_error_with_file_and_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "validate", str(BROKEN)]) == 1
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(lines) == 11
    assert all(line.split(":")[0].endswith(".yaml") and line.split(":")[1].isdigit()
               for line in lines)
    assert "many-mistakes.yaml:32: points[3].bit: bit 17 is out of range" in err


def test_validate_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", "zh", "profiles", "validate", str(BROKEN)]) == 1
    assert "发现 11 处问题" in capsys.readouterr().err


def test_validate_nothing_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "validate", str(tmp_path)]) == 2
    assert "no profile files" in capsys.readouterr().err


def test_show_profile_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "booster-pumpset-modbus"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("outlet_pressure "))
    assert "input 2" in row
    assert "MPa" in row
    assert "low_outlet_pressure" in out


def test_show_profile_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", "zh", "profiles", "show", "fire-panel-bacnet"]) == 0
    out = capsys.readouterr().out
    assert "点位" in out
    assert "3号防区火警" in out


def test_show_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "no-such-thing"]) == 2
    assert "known profiles:" in capsys.readouterr().err
