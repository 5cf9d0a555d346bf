"""``towerwatch edge check|plan|scan|run`` as an installer uses them.

``check``/``plan``/``run`` run in-process (``towerwatch.cli.main.main``); the scans ask a
simulated building served by ``towerwatch sim run`` in its own process.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.outbox import Outbox
from tests.servers.ports import free_port, free_udp_port
from towerwatch.cli.main import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "edge" / "site.example.yaml"
BACNET_NETWORK = "127.0.21.0"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- check -------------------------------------------------------------------------------
def test_check_accepts_the_example_site_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "edge", "check", "--config", str(EXAMPLE))
    assert code == 0, err
    assert "valid" in out and "10 device(s)" in out
    code, out, _ = run(capsys, "--lang", "zh", "edge", "check", "--config", str(EXAMPLE))
    assert code == 0 and "校验通过" in out


MISTAKES = """\
site: demo-tower
gateway: gw-1
devices:
  - id: booster
    profile: booster-pumpset-modbus
    modbus: {host: 127.0.0.1, port: 15020}
    writable: [rotation_remaining]
    poll: {turbo: 1s}
  - id: booster
    profile: elevator-ctl-modbus
    modbus: {host: 127.0.0.1, port: 15021}
  - id: lift-9
    profile: no-such-lift
    modbus: {host: 127.0.0.1, port: 15022}
  - id: fire-annex
    profile: fire-panel-modbus
    modbus: {host: 127.0.0.1, port: 15023}
    writable: [zone1_state]
  - id: lift-2
    profile: elevator-ctl-modbus
    modbus: {host: 127.0.0.1, port: 15024}
    disabled_points: [trip_count, no_such_point]
  - id: sump
    profile: sump-pump-modbus
    modbus: {serial: /dev/ttyUSB0, baud: 19200, unit: 1}
  - id: water
    profile: water-meter-modbus
    modbus: {serial: /dev/ttyUSB0, baud: 9600, unit: 2}
"""
# (line, path, English, Chinese): one issue each, at the line of the offending value
EXPECTED = [
    (7, "devices[0].writable[0]", "point 'rotation_remaining' is not writable",
     "点位 'rotation_remaining' 在设备模板 'booster-pumpset-modbus' 中不可写"),
    (8, "devices[0].poll.turbo", "has no poll group 'turbo'", "中没有轮询组 'turbo'"),
    (9, "devices[1].id", "device id 'booster' is used twice", "设备编号 'booster' 重复使用"),
    (13, "devices[2].profile", "unknown profile 'no-such-lift'", "未知设备模板 'no-such-lift'"),
    (18, "devices[3].writable[0]", "Fire_Alarm_Control_Panel points are never writable",
     "类设备的点位一律不可写"),
    (22, "devices[4].disabled_points[1]", "has no point 'no_such_point'",
     "中没有点位 'no_such_point'"),
    (28, "devices[6].modbus.baud", "serial line /dev/ttyUSB0 runs at 19200",
     "串口 /dev/ttyUSB0 的参数为 19200"),
]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_check_names_every_mistake_with_file_and_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, lang: str) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(MISTAKES)
    code, out, err = run(capsys, "--lang", lang, "edge", "check", "--config", str(config))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == (f"{config} is not valid:" if lang == "en" else f"{config} 有错误：")
    issues = lines[1:]
    assert len(issues) == len(EXPECTED), err
    for issue, (line, path, english, chinese) in zip(issues, EXPECTED, strict=True):
        assert issue.startswith(f"  {config}:{line}: {path}: "), (issue, line, path)
        assert (english if lang == "en" else chinese) in issue, issue
    assert "Traceback" not in err


def test_check_refuses_an_inline_password_at_its_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("site: s1\ngateway: g1\nmqtt:\n  url: mqtts://broker:8883\n"
                      "  username: s1.g1\n  password: hunter2\n"
                      "devices:\n  - id: m1\n    profile: no-such-meter\n"
                      "    modbus: {host: 10.0.0.5}\n")
    code, _, err = run(capsys, "edge", "check", "--config", str(config))
    assert code == 1
    assert f"{config}:6: mqtt.password: mqtt.password must not be written" in err
    assert "password_file" in err and "password_env" in err
    assert f"{config}:9: devices[0].profile: unknown profile" in err  # the rest still checked
    assert "hunter2" not in err
    code, _, err = run(capsys, "--lang", "zh", "edge", "check", "--config", str(config))
    assert f"{config}:6: mqtt.password: 配置文件中不得写入 mqtt.password" in err


def test_a_yaml_syntax_error_is_located(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("site: s1\ngateway: g1\ndevices:\n  - id: [m1\n")
    code, _, err = run(capsys, "edge", "check", "--config", str(config))
    assert code == 1
    assert re.search(rf"{re.escape(str(config))}:\d+: YAML", err), err


# -- plan --------------------------------------------------------------------------------
def test_plan_shows_a_table_per_modbus_device_and_a_line_per_bacnet_device(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "edge", "plan", "--config", str(EXAMPLE))
    assert code == 0, err
    modbus = ["booster", "lift-1", "lift-2", "fire-annex", "door-lobby", "meter-main",
              "sump-b2", "water-main"]
    for device in modbus:
        block = out.split(f"device {device}: profile ", 1)[1].split("\n\n", 1)[0]
        rows = block.splitlines()
        assert rows[1].split()[:4] == ["group", "interval", "table", "addresses"], block
        assert any(row.startswith("total: ") and "requests per cycle" in row for row in rows)
    assert "fast    2s" in out.split("device booster:", 1)[1]  # the site's poll override
    for device in ("lift-3", "fire-panel"):
        (line,) = [row for row in out.splitlines() if row.startswith(f"{device}: BACnet")]
        assert "read-property-multiple" in line
    code, out, _ = run(capsys, "--lang", "zh", "edge", "plan", "--config", str(EXAMPLE))
    assert code == 0 and "lift-3：BACnet" in out


# -- run ---------------------------------------------------------------------------------
def test_run_refuses_an_invalid_config_before_starting(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(MISTAKES)
    code, _, err = run(capsys, "edge", "run", "--config", str(config))
    assert code == 1
    assert f"{config}:9: devices[1].id" in err


def test_run_refuses_an_outbox_another_gateway_holds(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(f"site: s1\ngateway: g1\nmqtt: {{url: 'mqtt://127.0.0.1:{free_port()}'}}\n"
                      "outbox: {path: held.db}\nhttp: {listen: '127.0.0.1:0'}\n")
    held = Outbox(tmp_path / "held.db", max_messages=1000, overflow="refuse_new")
    try:
        code, _, err = run(capsys, "edge", "run", "--config", str(config))
    finally:
        held.close()
    assert code == 1
    assert err.startswith("cannot start: ") and "in use by another process" in err
    assert "Traceback" not in err


# -- scans of a running simulated building -----------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """``towerwatch sim run`` in its own process; the devices it serves."""
    path = tmp_path_factory.mktemp("sim") / "served.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "towerwatch", "sim", "run",
         "--site", str(ROOT / "simulators" / "sites" / "example.yaml"), "--speed", "0",
         "--base-port", "0", "--bacnet-network", BACNET_NETWORK, "--served", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.05)
        devices: list[dict[str, Any]] = json.loads(path.read_text())["devices"]
        yield devices
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _entry(served: list[dict[str, Any]], device: str) -> dict[str, Any]:
    return next(e for e in served if e["id"] == device)


def test_scan_modbus_lists_the_units_of_the_rs485_bus(
        capsys: pytest.CaptureFixture[str], served: list[dict[str, Any]]) -> None:
    bus = _entry(served, "sump-b2")
    assert _entry(served, "water-main")["port"] == bus["port"]
    code, out, err = run(capsys, "edge", "scan", "modbus", f"127.0.0.1:{bus['port']}",
                         "--units", "1-5", "--rtu")
    assert code == 0, err
    units = [int(m) for m in re.findall(r"^unit +(\d+) ", out, flags=re.MULTILINE)]
    assert units == [1, 2]
    assert "2 of 5 unit id(s) answered." in out


def test_scan_modbus_of_a_tcp_device(capsys: pytest.CaptureFixture[str],
                                     served: list[dict[str, Any]]) -> None:
    port = _entry(served, "booster")["port"]
    code, out, _ = run(capsys, "--lang", "zh", "edge", "scan", "modbus", f"127.0.0.1:{port}",
                       "--units", "1-3", "--timeout", "0.2")
    assert code == 0
    assert re.findall(r"^unit +(\d+) ", out, flags=re.MULTILINE) == ["1"]
    assert "3 个从站地址中有 1 个应答。" in out


def test_scan_modbus_of_a_closed_port_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "edge", "scan", "modbus", target, "--units", "1-3")
    assert code != 0
    assert err.startswith(f"cannot reach {target}: ") and "cannot connect" in err
    assert "Traceback" not in err and out == ""
    code, _, err = run(capsys, "--lang", "zh", "edge", "scan", "modbus", target)
    assert code != 0 and err.startswith(f"无法连接 {target}：")


@pytest.mark.parametrize("target", ["127.0.0.1:port", "127.0.0.1:70000", ":502", "[::1"])
def test_scan_modbus_refuses_a_malformed_target(capsys: pytest.CaptureFixture[str],
                                                target: str) -> None:
    code, _, err = run(capsys, "edge", "scan", "modbus", target)
    assert code == 2
    assert "is not HOST or HOST:PORT" in err


def test_scan_bacnet_finds_the_simulated_devices(
        capsys: pytest.CaptureFixture[str], served: list[dict[str, Any]]) -> None:
    code, out, err = run(capsys, "edge", "scan", "bacnet", "--bind",
                         f"127.0.0.1/8:{free_udp_port()}", "--wait", "1.5")
    assert code == 0, err
    for device in ("lift-3", "fire-panel"):
        entry = _entry(served, device)
        (line,) = [row for row in out.splitlines()
                   if row.startswith(f"device {entry['instance']} ")]
        assert f"{entry['address']}:47808" in line and f"'{device}'" in line
    assert re.search(r"^\d+ BACnet device\(s\) answered\.$", out, flags=re.MULTILINE)


def test_scan_bacnet_at_one_address(capsys: pytest.CaptureFixture[str],
                                    served: list[dict[str, Any]]) -> None:
    entry = _entry(served, "fire-panel")
    code, out, err = run(capsys, "edge", "scan", "bacnet", "--address", entry["address"],
                         "--bind", f"127.0.0.1/8:{free_udp_port()}", "--wait", "1.0")
    assert code == 0, err
    assert [row.split()[1] for row in out.splitlines() if row.startswith("device ")] == [
        str(entry["instance"])]
