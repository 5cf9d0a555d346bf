"""``towerwatch demo``: live values from the simulated building in the API within 15 s."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _read_lines(stream: object, lines: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)


def test_demo_serves_live_values_through_the_api(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "towerwatch", "demo", "--base-port", "0",
         "--bacnet-network", "127.0.32.0", "--api-port", "0", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        api = password = None
        while api is None or password is None:
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() - started < 60, "".join(lines)
            text = "".join(lines)
            found_api = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1/docs", text)
            found_pw = re.search(r"demo / (\S+)", text)
            api = found_api.group(1) if found_api else None
            password = found_pw.group(1) if found_pw else None
            time.sleep(0.1)
        ready = time.monotonic()
        with httpx.Client(base_url=api, timeout=5) as client:
            assert client.get("/api/v1/sites").status_code == 401
            login = client.post("/api/v1/auth/login",
                                json={"username": "demo", "password": password})
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            values: dict[str, object] = {}
            while time.monotonic() - ready < 15:
                reply = client.get("/api/v1/sites/demo-tower/devices/gw-1/booster",
                                   headers=headers)
                if reply.status_code == 200:
                    values = {p["id"]: p["last"]["value"] for p in reply.json()["points"]
                              if p.get("last")}
                    if "outlet_pressure" in values:
                        break
                time.sleep(0.5)
            assert "outlet_pressure" in values, "".join(lines)
            pressure = values["outlet_pressure"]
            assert isinstance(pressure, float)
            assert 0.05 < pressure < 1.6
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=5)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0, "".join(lines)
    assert "Demo stopped." in "".join(lines)
