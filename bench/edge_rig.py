"""The edge benchmark rig: simulator and gateway processes, a Mosquitto, the measuring.

Used by :mod:`bench.edge_poll` and :mod:`bench.edge_outage`. ``towerwatch sim run``
serves the load profiles in ``bench/profiles``; ``towerwatch edge run`` (or, profiled or
bare, the small script in :data:`GATEWAY`) polls them. The gateway's CPU comes from
``/proc/<pid>/stat``, its memory from ``/proc/<pid>/status``, points and cycle lateness
from its ``/metrics`` (lateness percentiles interpolated in the histogram buckets) and
``/status.json`` (per-device p99 over the last 256 cycles); :class:`SeqWatch` checks
that every ``seq`` of every boot arrives.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.sim_scale import cpu_seconds, rss_mb
from tests.servers.mosquitto import MosquittoServer
from towerwatch.demo.gateway_config import gateway_config, write_config

ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = ROOT / "bench" / "profiles"
MODBUS_PROFILE = "bench-40reg-modbus"
BACNET_PROFILE = "bench-20pt-bacnet"
BACNET_NETWORK = "127.0.20.0"
SITE = "bench"
POINTS_READ = "towerwatch_edge_points_read_total"
TICKS = os.sysconf("SC_CLK_TCK")
# The gateway run by this script instead of ``towerwatch edge run`` when it is profiled
# (cProfile on CPU time, on from SIGUSR1 to SIGUSR2) or run bare (argv[3] == "bare": no
# duties after decoding, the baseline its per-point cost is compared with).
GATEWAY = """
import asyncio, cProfile, logging, signal, sys, time
from pathlib import Path
from edge.daemon import run_gateway
from edge.runtime import DeviceRuntime
if sys.argv[3] == "bare":
    DeviceRuntime.collect = lambda self, now: []
profiler = cProfile.Profile(time.process_time)
async def main() -> None:
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if sys.argv[2]:
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, profiler.disable)
    await run_gateway(Path(sys.argv[1]), stop=stop, sighup=False)
logging.basicConfig(level=logging.WARNING)
asyncio.run(main())
if sys.argv[2]:
    profiler.dump_stats(sys.argv[2])
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def machine() -> dict[str, Any]:
    """How busy and how fast the machine is (it may be shared): load averages, and the
    CPU time of a fixed pure-Python loop (lower is faster)."""
    started = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return {"loadavg": [round(x, 2) for x in os.getloadavg()],
            "python_loop_ms": round((time.process_time() - started) * 1000, 1)}


def base_port() -> int:
    """A first Modbus port for the simulator, below the ephemeral range (the simulator
    takes consecutive free ports from it; with ``--base-port 0`` it probes each port
    separately and the kernel may hand out the same one twice)."""
    return random.randrange(20_000, 30_000, 1000)


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def user_sys(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (Mosquitto runs under ``runuser``)."""
    total = 0.0
    with contextlib.suppress(OSError):
        total = cpu_seconds(pid)
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_cpu(int(child))
    return total


class Child:
    """A process of ours (simulator or gateway), logging to a file."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT)
        self.pid = self.proc.pid

    def check(self, what: str) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{what} exited ({self.proc.returncode}):\n{tail}")

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- the simulated building ------------------------------------------------------------

def device_entries(profile: str, count: int, change: float, prefix: str) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{{n}}" if count > 1 else f"{prefix}-1", "profile": profile,
             "model": "generic", "count": count, "options": {"change": change}}]


@contextlib.contextmanager
def simulator(folder: Path, devices: list[dict[str, Any]],
              ) -> Iterator[tuple[Child, list[dict[str, Any]]]]:
    """``towerwatch sim run`` serving ``devices``; yields it and its served devices."""
    site = {"site": SITE, "timezone": "UTC",
            "bacnet": {"network": BACNET_NETWORK}, "devices": devices}
    site_path, served = folder / "site.yaml", folder / "served.json"
    site_path.write_text(yaml.safe_dump(site, sort_keys=False), encoding="utf-8")
    served.unlink(missing_ok=True)
    sim = Child([sys.executable, "-m", "towerwatch", "sim", "run", "--site", str(site_path),
                 "--profiles", str(PROFILE_DIR), "--served", str(served),
                 "--base-port", str(base_port()),
                 "--bacnet-network", BACNET_NETWORK], folder / "sim.log")
    try:
        deadline = time.monotonic() + 180
        while not served.exists() or not served.read_text().endswith("\n"):
            sim.check("simulator")
            if time.monotonic() > deadline:
                raise SystemExit("the simulator did not start within 180 s")
            time.sleep(0.05)
        yield sim, json.loads(served.read_text())["devices"]
    finally:
        sim.stop()


# ---- the gateway -----------------------------------------------------------------------

class GatewayProc(Child):
    def __init__(self, folder: Path, served: list[dict[str, Any]], mqtt_url: str, *,
                 name: str, interval: float | None, profile_to: Path | None = None,
                 bare: bool = False,
                 timeout: float = 1.0) -> None:
        self.http = free_port()
        config = gateway_config(served, site=SITE, gateway=name, mqtt_url=mqtt_url,
                                outbox=folder / f"{name}.db", http_listen=f"127.0.0.1:{self.http}",
                                bacnet_bind=f"127.0.0.1/8:{free_port(socket.SOCK_DGRAM)}",
                                timeout=timeout, writable={})
        config["profiles"] = [str(PROFILE_DIR)]
        config["polling"]["offline_after"] = 3
        if interval is not None:
            for device in config["devices"]:
                device["poll"] = {"fast": interval}
        path = write_config(config, folder / f"{name}.yaml")
        self.profiled = profile_to is not None
        argv = ([sys.executable, "-c", GATEWAY, str(path), str(profile_to or ""),
                 "bare" if bare else "full"] if profile_to or bare
                else [sys.executable, "-m", "towerwatch", "edge", "run", "--config", str(path)])
        super().__init__(argv, folder / f"{name}.log")
        self.devices = len(served)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
            body: bytes = r.read()
        return body

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.get("/status.json"))
        return data

    def metrics(self) -> dict[str, float]:
        """Samples summed over labels, except histogram buckets (kept per ``le``)."""
        found: dict[str, float] = {}
        for line in self.get("/metrics").decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name, _, labels = name_labels.partition("{")
            if name.endswith("_bucket"):
                le = labels.split('le="', 1)[1].split('"', 1)[0]
                name = f"{name}:{le}"
            found[name] = found.get(name, 0.0) + float(value)
        return found

    def wait_online(self, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while True:
            self.check("gateway")
            with contextlib.suppress(OSError, ValueError):
                devices = self.status()["devices"]
                if devices and all(d["online"] for d in devices):
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"devices not all online after {limit} s; see {self.log}")
            time.sleep(0.5)


# ---- the subscriber --------------------------------------------------------------------

class SeqWatch:
    """Telemetry and events of every gateway under ``tw/v1/bench``: every seq must arrive."""

    def __init__(self, host: str, port: int, *, client_id: str = "bench-watch") -> None:
        self.lock = threading.Lock()
        self.seqs: dict[str, set[int]] = {}
        self.messages = self.duplicates = self.values = 0
        self.last_at = time.monotonic()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.subscribed = threading.Event()
        self.client.connect(host, port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise SystemExit("subscriber could not connect")

    def _connected(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(f"tw/v1/{SITE}/+/telemetry/#", 1), (f"tw/v1/{SITE}/+/event/#", 1)])
        self.subscribed.set()

    def _message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = json.loads(message.payload)
        boot, seq = payload["boot_id"], int(payload["seq"])
        with self.lock:
            self.messages += 1
            self.values += len(payload.get("values", ()))
            self.last_at = time.monotonic()
            seen = self.seqs.setdefault(boot, set())
            if seq in seen:
                self.duplicates += 1
            seen.add(seq)

    def settle(self, quiet: float = 1.0, limit: float = 60.0) -> None:
        """Until nothing arrived for ``quiet`` s."""
        deadline = time.monotonic() + limit
        while time.monotonic() - self.last_at < quiet and time.monotonic() < deadline:
            time.sleep(0.1)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            lost = sum(max(s) - min(s) + 1 - len(s) for s in self.seqs.values() if s)
            firsts = sorted(min(s) for s in self.seqs.values() if s)
            return {"messages_received": self.messages, "messages_lost": lost,
                    "duplicates": self.duplicates, "boots": len(self.seqs),
                    "first_seq": firsts[0] if firsts else None}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ---- measuring -------------------------------------------------------------------------

def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile on cumulative ``{le: count}``."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in sorted(buckets):
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


def lateness(before: dict[str, float], after: dict[str, float]) -> dict[float, float]:
    prefix = "towerwatch_edge_cycle_lateness_seconds_bucket:"
    return {float(k[len(prefix):].replace("+Inf", "inf")): v - before.get(k, 0.0)
            for k, v in after.items() if k.startswith(prefix)}


def measure(gw: GatewayProc, duration: float, *, sim: Child | None = None,
            broker: int | None = None, slice_s: float = 5.0) -> dict[str, Any]:
    """Gateway figures over ``duration`` s, also per ``slice_s`` slice (the CPU of the
    metrics scrapes at slice ends is left out)."""
    if gw.profiled:
        os.kill(gw.pid, signal.SIGUSR1)
    marks: list[tuple[float, float, float, dict[str, float]]] = []

    def mark() -> None:
        before = gw.cpu()
        scraped = gw.metrics()
        marks.append((time.monotonic(), before, gw.cpu(), scraped))

    u0, k0 = user_sys(gw.pid)
    s0 = sim.cpu() if sim else 0.0
    b0 = tree_cpu(broker) if broker else 0.0
    busy0 = machine_busy()
    mark()
    start = marks[0][0]
    rss = [rss_mb(gw.pid)]
    while (left := duration - (time.monotonic() - start)) > 0:
        time.sleep(min(1.0, left, max(0.01, marks[-1][0] + slice_s - time.monotonic())))
        rss.append(rss_mb(gw.pid))
        now = time.monotonic()
        if now - marks[-1][0] >= slice_s - 0.01 or now - start >= duration:
            mark()
    u1, k1 = user_sys(gw.pid)
    s1 = sim.cpu() if sim else 0.0
    b1 = tree_cpu(broker) if broker else 0.0
    busy1 = machine_busy()
    if gw.profiled:
        os.kill(gw.pid, signal.SIGUSR2)
    m0, m1 = marks[0][3], marks[-1][3]
    wall = marks[-1][0] - start
    cpu = sum(b[1] - a[2] for a, b in pairwise(marks))

    def rate(name: str) -> float:
        return (m1.get(name, 0.0) - m0.get(name, 0.0)) / wall

    read = rate(POINTS_READ)
    slices = [(b[1] - a[2]) / (b[3][POINTS_READ] - a[3][POINTS_READ]) * 1e6
              for a, b in pairwise(marks)
              if b[3].get(POINTS_READ, 0) > a[3].get(POINTS_READ, 0)]
    buckets = lateness(m0, m1)
    p99s = [d["lateness_p99"] for d in gw.status()["devices"]
            if isinstance(d.get("lateness_p99"), float)]
    result: dict[str, Any] = {
        "seconds": round(wall, 1),
        "points_read_per_s": round(read),
        "points_published_per_s": round(rate("towerwatch_edge_points_published_total")),
        "cycles_per_s": round(rate("towerwatch_edge_cycles_total"), 1),
        "gateway_cpu_percent_of_core": round(cpu / wall * 100, 1),
        "gateway_cpu_user_system_s": [round(u1 - u0, 2), round(k1 - k0, 2)],
        "cpu_us_per_point": round(cpu / (read * wall) * 1e6, 2) if read else None,
        "cpu_us_per_point_slices": {"n": len(slices), "min": _r(min(slices, default=None)),
                                    "median": _r(statistics.median(slices) if slices else None),
                                    "max": _r(max(slices, default=None))},
        "lateness_p50_ms": _ms(quantile(buckets, 0.5)),
        "lateness_p99_ms": _ms(quantile(buckets, 0.99)),
        "device_lateness_p99_ms_last_256_cycles": {
            "median": _ms(statistics.median(p99s)) if p99s else None,
            "max": _ms(max(p99s)) if p99s else None},
        "rss_mb": {"start": round(rss[0], 1), "max": round(max(rss), 1),
                   "end": round(rss[-1], 1)},
        "outbox_depth_end": int(m1.get("towerwatch_edge_outbox_depth", 0)),
    }
    if sim:
        result["sim_cpu_percent_of_core"] = round((s1 - s0) / wall * 100, 1)
    if broker:
        result["broker_cpu_percent_of_core"] = round((b1 - b0) / wall * 100, 1)
    # The machine may be shared: what everything else (not gateway, simulator, broker) used.
    ours = (u1 - u0) + (k1 - k0) + (s1 - s0) + (b1 - b0)
    result["machine_busy_cores"] = round((busy1 - busy0) / wall, 2)
    result["other_processes_cores"] = round(max(0.0, busy1 - busy0 - ours) / wall, 2)
    return result


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run_gateway(folder: Path, served: list[dict[str, Any]], broker: MosquittoServer,
                watch: SeqWatch, *, name: str, interval: float | None, duration: float,
                warmup: float, sim: Child, profile_to: Path | None = None,
                bare: bool = False) -> dict[str, Any]:
    gw = GatewayProc(folder, served, broker.url, name=name, interval=interval,
                     profile_to=profile_to, bare=bare)
    try:
        gw.wait_online()
        time.sleep(warmup)
        result = measure(gw, duration, sim=sim, broker=broker.pid)
    finally:
        gw.stop()
    return result
