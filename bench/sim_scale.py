"""Start-up time and idle cost of a 200-device simulated building.

Runs ``towerwatch sim run`` as its own process on a generated site (every device
class, Modbus and BACnet), waits until every device is served, then samples the
process' CPU time and memory while it idles. Prints one JSON object.

    python -m bench.sim_scale [--devices 200] [--idle 15]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# (profile, share of the building); BACnet devices are the expensive ones to start.
MIX: list[tuple[str, float]] = [
    ("elevator-ctl-modbus", 0.18),
    ("elevator-mon-bacnet", 0.04),
    ("booster-pumpset-modbus", 0.08),
    ("sump-pump-modbus", 0.08),
    ("fire-panel-modbus", 0.05),
    ("fire-panel-bacnet", 0.03),
    ("door-controller-modbus", 0.24),
    ("energy-meter-3p-modbus", 0.16),
    ("water-meter-modbus", 0.14),
]
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def site_file(devices: int, folder: Path) -> Path:
    counts = [max(1, round(devices * share)) for _, share in MIX]
    counts[-1] += devices - sum(counts)
    entries = [{"id": f"{profile.split('-')[0]}-{profile.split('-')[-1]}-{{n}}",
                "profile": profile, "count": count}
               for (profile, _), count in zip(MIX, counts, strict=True)]
    site = {"site": "bench-tower", "timezone": "Asia/Shanghai",
            "modbus": {"base_port": 0}, "bacnet": {"network": "127.0.6.0"}, "devices": entries}
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False), encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle sampling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site = site_file(args.devices, folder)
        served = folder / "served.json"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "towerwatch", "sim", "run", "--site", str(site),
             "--served", str(served)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while not served.exists():
                if proc.poll() is not None:
                    detail = proc.stderr.read() if proc.stderr else ""
                    raise SystemExit(f"simulator exited: {detail}")
                if time.monotonic() - started > 120:
                    raise SystemExit("simulator did not start within 120 s")
                time.sleep(0.02)
            startup = time.monotonic() - started
            devices = json.loads(served.read_text())["devices"]
            time.sleep(2.0)  # let start-up work settle before sampling the idle cost
            cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.idle)
            cpu1, wall1 = cpu_seconds(proc.pid), time.monotonic()
            rss = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    idle = (cpu1 - cpu0) / (wall1 - wall0) * 100
    result = {
        "bench": "sim_scale",
        "devices": len(devices),
        "modbus_devices": sum(1 for d in devices if d["protocol"] == "modbus"),
        "bacnet_devices": sum(1 for d in devices if d["protocol"] == "bacnet"),
        "startup_s": round(startup, 2),
        "startup_target_s": 5.0,
        "idle_cpu_percent_of_core": round(idle, 2),
        "idle_cpu_target_percent": 5.0,
        "rss_mb": round(rss, 1),
        "idle_sample_s": args.idle,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
