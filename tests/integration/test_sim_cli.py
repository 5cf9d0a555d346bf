"""``towerwatch sim run`` as its own process: serves every device, stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_sim_run_serves_every_device_and_stops_cleanly(tmp_path: Path) -> None:
    served = tmp_path / "served.json"
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("events:\n  - {at: '1s', device: lift-1, fault: inspection}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "towerwatch", "sim", "run",
         "--site", str(ROOT / "simulators" / "sites" / "example.yaml"),
         "--scenario", str(scenario), "--speed", "5",
         "--base-port", "0", "--bacnet-network", "127.0.10.0", "--served", str(served)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen: list[str] = []

    def pump() -> None:  # every line as it comes, so the test can wait for one
        assert proc.stdout is not None
        seen.extend(proc.stdout)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not served.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        devices = json.loads(served.read_text())["devices"]
        assert len(devices) == 10
        for entry in devices:
            if entry["protocol"] == "modbus":
                with socket.create_connection((entry["host"], entry["port"]), timeout=2):
                    pass
            else:
                assert entry["address"].startswith("127.0.10.")
        # The scenario event is due after 1 simulated second (0.2 s real): wait for its
        # line rather than a fixed time (a loaded machine starts the clock late).
        deadline = time.monotonic() + 20
        while not any("lift-1: fault inspection" in line for line in seen):
            assert time.monotonic() < deadline, f"no scenario event in {seen}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        reader.join(timeout=5)
        assert proc.stderr is not None and proc.stdout is not None
        err = proc.stderr.read()
        proc.stderr.close()
        proc.stdout.close()
    out = "".join(seen)
    assert proc.returncode == 0, err
    assert "serving 10 device(s)" in out
    assert "lift-1: fault inspection" in out
    assert out.rstrip().endswith("Simulated building stopped.")
