"""API latency: latest values of 5,000 points and 24-hour trends, over HTTP.

The store holds one site with ``--gateways`` x ``--devices`` devices of ``--points``
points each (default 10 x 10 x 50 = 5,000 points, registered through birth messages so
the device endpoint lists them). Every point has a latest value; ``--history-series``
of them (default 50) also hold ``--days`` (default 30) of 1-minute data up to now:
30 days x 1,440 samples x 50 series = 2.16M samples. (30 days for all 5,000 points would
be 216M samples: too much to generate here; a trend query reads one series, so its cost
depends on that series' density, which is the real one.)

The API runs as ``CloudService(api=True, workers=0)`` (uvicorn, the real app) in its own
process on a free port; a single httpx client sends requests one at a time and times
each one. Measured, for each backend (SQLite relational + SqliteStore; PostgreSQL +
InfluxStore on InfluxDB 1.x):

- ``latest_batch``: ``GET /sites/{site}/latest?points=gw/dev/pt,...`` with 1,000 series
  per request (the API's maximum), 5 requests for all 5,000 points;
- ``latest_device``: ``GET /sites/{site}/devices/{gw}/{dev}`` (a device with the last
  value of each point), 100 requests for all 5,000 points;
- ``trend_1m``: ``GET .../points/{pt}/series?start=&end=&bucket=1m`` over 24 h (1,440
  buckets of mean/min/max/last/count) of a random history series and day;
- ``trend_raw``: the same without ``bucket`` (1,440 raw samples).

p50/p99 are per request; ``sweep_*`` is the time to fetch all 5,000 values one way.
Target: p99 < 100 ms. Prints one JSON object::

    python -m bench.api [--backends sqlite,influx] [--history-series 50] [--days 30]
        [--sweeps 10] [--trend-queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import multiprocessing as mp
import os
import pstats
import queue
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SITE = "bench-tower"
PROFILE = "bench-50pt"
PASSWORD = "bench horse battery staple"
MINUTE = 60_000
DAY = 86_400_000


# -- the data --------------------------------------------------------------------------
class Shape:
    def __init__(self, args: argparse.Namespace) -> None:
        self.gateways = [f"gw-{g:02d}" for g in range(args.gateways)]
        self.devices = [f"dev-{d:02d}" for d in range(args.devices)]
        self.points = [f"p{p:03d}" for p in range(args.points)]
        self.days = args.days
        self.now_ms = (int(time.time() * 1000) // MINUTE) * MINUTE
        every = [(g, d, p) for g in self.gateways for d in self.devices for p in self.points]
        # History series spread over gateways, devices and points.
        step = max(1, len(every) // max(1, args.history_series))
        self.history = every[::step][: args.history_series]
        self.every = every

    def describe(self) -> dict[str, Any]:
        n = len(self.history)
        per_series = self.days * 1440
        return {
            "site": SITE, "gateways": len(self.gateways),
            "devices": len(self.gateways) * len(self.devices),
            "points_per_device": len(self.points), "points": len(self.every),
            "latest_values": len(self.every),
            "history_series": n, "history_days": self.days,
            "history_interval": "1m", "history_samples_per_series": per_series,
            "samples_total": n * per_series + (len(self.every) - n),
            "note": "30 days x 1,440 x 5,000 = 216M samples is too many to generate here: "
                    "full history for the history series, a latest value for every point",
        }


def prepare_registry(url: str, shape: Shape) -> None:
    """Migrate; the admin; one birth per gateway naming its devices (points from a profile)."""
    from cloud.db import Database, PointSpec, create_admin, learn_birth, migrate
    from towerwatch.contract import Birth, DeviceDescriptor

    migrate(url)
    db = Database.from_url(url)
    specs = [PointSpec(id=p, name_en=f"Point {p}", name_zh=f"点 {p}", unit="none")
             for p in shape.points]
    try:
        with db.transaction() as session:
            create_admin(session, "admin", PASSWORD)
            for n, gateway in enumerate(shape.gateways):
                birth = Birth(state="online", boot_id=f"bench-boot-{n:04d}", version="bench",
                              ts=shape.now_ms, devices=[DeviceDescriptor(id=d, profile=PROFILE)
                                                        for d in shape.devices])
                learn_birth(session, SITE, gateway, birth, received_ms=shape.now_ms,
                            profiles={PROFILE: specs})
    finally:
        db.dispose()


async def fill_store(store: Any, shape: Shape, chunk: int = 100_000) -> dict[str, float]:
    """Latest values for every point, 1-minute history for the history series."""
    from cloud.timeseries.base import Sample, SeriesKey

    started = time.monotonic()
    history = set(shape.history)
    rng = random.Random(11)
    latest = [Sample(SeriesKey(SITE, g, d, p), shape.now_ms - rng.randrange(1, 300) * 1000,
                     round(rng.uniform(0, 100), 3), "good")
              for g, d, p in shape.every if (g, d, p) not in history]
    for first in range(0, len(latest), chunk):
        await store.write(latest[first:first + chunk])
    written = len(latest)
    start = shape.now_ms - shape.days * DAY
    minutes = shape.days * 1440
    batch: list[Any] = []
    for g, d, p in shape.history:
        key = SeriesKey(SITE, g, d, p)
        value = rng.uniform(10, 90)
        for m in range(minutes):
            value += rng.uniform(-0.5, 0.5)
            batch.append(Sample(key, start + (m + 1) * MINUTE, round(value, 3), "good"))
            if len(batch) >= chunk:
                await store.write(batch)
                written += len(batch)
                batch = []
    if batch:
        await store.write(batch)
        written += len(batch)
    elapsed = time.monotonic() - started
    return {"samples_written": written, "fill_s": round(elapsed, 1),
            "fill_samples_per_s": round(written / elapsed)}


# -- the API process -------------------------------------------------------------------
def api_main(settings_json: str, ready: Any, stop: Any, profile: str | None = None) -> None:
    from cloud.service import CloudService, settle_collector
    from cloud.settings import CloudSettings

    settings = CloudSettings.model_validate_json(settings_json)
    profiler = cProfile.Profile() if profile else None
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:  # the collector's pauses
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1000)

    async def run() -> None:
        service = CloudService(settings, workers=0, api=True)
        done = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():  # noqa: ASYNC110 - a multiprocessing Event
                await asyncio.sleep(0.1)
            done.set()

        def on_ready(svc: CloudService) -> None:
            settle_collector()  # as `towerwatch cloud serve` does once ready
            if profiler is not None:
                profiler.enable()
            gc.callbacks.append(on_gc)
            ready.put(svc.api_port)

        watcher = asyncio.create_task(watch())
        await service.run(done, on_ready=on_ready)
        watcher.cancel()

    try:
        asyncio.run(run())
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        ready.put({f"gen{g}": {"collections": len(p), "max_ms": round(max(p, default=0.0), 1),
                               "total_ms": round(sum(p), 1)} for g, p in pauses.items()})


# -- measuring -------------------------------------------------------------------------
def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    return {"n": len(values), "p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2),
            "max_ms": round(ordered[-1], 2), "mean_ms": round(statistics.fmean(values), 2)}


class CpuMeter:
    """CPU seconds of the API process and the store's server, summed per kind of request
    (a figure a loaded machine moves less than latency)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        from bench._servers import process_cpu

        self._read = process_cpu
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.totals: dict[str, dict[str, float]] = {}
        self.counts: dict[str, int] = {}

    def now(self) -> dict[str, float]:
        return {name: self._read(pid, children=False) for name, pid in self.pids.items()}

    def add(self, kind: str, before: dict[str, float]) -> None:
        after, into = self.now(), self.totals.setdefault(kind, {})
        for name, value in after.items():
            into[name] = into.get(name, 0.0) + value - before.get(name, value)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def per_request_ms(self, kind: str) -> dict[str, float]:
        n = max(1, self.counts.get(kind, 0))
        return {name: round(total / n * 1000, 2)
                for name, total in self.totals.get(kind, {}).items()}


def timed(client: Any, url: str, params: Any = None, *, meter: CpuMeter | None = None,
          kind: str = "") -> tuple[float, Any]:
    before = meter.now() if meter is not None else {}
    t0 = time.perf_counter()
    reply = client.get(url, params=params)
    ms = (time.perf_counter() - t0) * 1000
    if meter is not None:
        meter.add(kind, before)
    if reply.status_code != 200:
        raise SystemExit(f"GET {url}: HTTP {reply.status_code} {reply.text[:300]}")
    return ms, reply.json()


def measure(port: int, shape: Shape, args: argparse.Namespace,
            meter: CpuMeter) -> dict[str, Any]:
    import httpx

    rng = random.Random(5)
    base = f"http://127.0.0.1:{port}/api/v1"
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
        if login.status_code != 200:
            raise SystemExit(f"login: HTTP {login.status_code} {login.text}")
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        names = [f"{g}/{d}/{p}" for g, d, p in shape.every]
        chunks = [names[i:i + 1000] for i in range(0, len(names), 1000)]
        devices = [(g, d) for g in shape.gateways for d in shape.devices]
        url_bytes = max(len(",".join(c)) for c in chunks)

        # Warm up every path once (connections, caches, first imports).
        for chunk in chunks:
            timed(client, f"/sites/{SITE}/latest", {"points": ",".join(chunk)})
        for g, d in devices[:5]:
            timed(client, f"/sites/{SITE}/devices/{g}/{d}")

        batch_ms: list[float] = []
        batch_sweeps: list[float] = []
        device_ms: list[float] = []
        device_sweeps: list[float] = []
        values_seen = 0
        for _ in range(args.sweeps):
            sweep = 0.0
            got = 0
            for chunk in chunks:
                ms, body = timed(client, f"/sites/{SITE}/latest", {"points": ",".join(chunk)},
                                 meter=meter, kind="latest_batch")
                batch_ms.append(ms)
                sweep += ms
                got += len(body["values"])
            batch_sweeps.append(sweep)
            values_seen = got
            sweep = 0.0
            got = 0
            for g, d in devices:
                ms, body = timed(client, f"/sites/{SITE}/devices/{g}/{d}", meter=meter,
                                 kind="latest_device")
                device_ms.append(ms)
                sweep += ms
                got += sum(1 for p in body["points"] if p.get("last"))
            device_sweeps.append(sweep)
            if got != len(shape.every) or values_seen != len(shape.every):
                raise SystemExit(f"expected {len(shape.every)} values, got {values_seen} "
                                 f"(batch) and {got} (per device)")

        trend: dict[str, list[float]] = {"1m": [], "raw": []}
        counts: dict[str, int] = {}
        for n in range(args.trend_queries):
            g, d, p = shape.history[rng.randrange(len(shape.history))]
            # Any full day of the history (the newest day half the time: dashboards).
            back = 0 if n % 2 == 0 else rng.randrange(0, max(1, shape.days - 1)) * DAY
            end = shape.now_ms - back + MINUTE
            start = end - DAY
            url = f"/sites/{SITE}/devices/{g}/{d}/points/{p}/series"
            for mode in ("1m", "raw"):
                params: dict[str, Any] = {"start": start, "end": end}
                if mode == "1m":
                    params["bucket"] = "1m"
                ms, body = timed(client, url, params, meter=meter, kind=f"trend_{mode}")
                trend[mode].append(ms)
                counts[mode] = len(body["buckets"] if mode == "1m" else body["samples"])

    return {
        "latest_batch": {
            "request": "GET /api/v1/sites/{site}/latest?points=<1000 x gw/dev/pt>",
            "series_per_request": 1000, "requests_per_sweep": len(chunks),
            "query_string_bytes": url_bytes + len("points="),
            **percentiles(batch_ms),
            "cpu_ms_per_request": meter.per_request_ms("latest_batch"),
            "sweep_5000_points": percentiles(batch_sweeps),
        },
        "latest_device": {
            "request": "GET /api/v1/sites/{site}/devices/{gw}/{dev}",
            "points_per_request": len(shape.points), "requests_per_sweep": len(devices),
            **percentiles(device_ms),
            "cpu_ms_per_request": meter.per_request_ms("latest_device"),
            "sweep_5000_points": percentiles(device_sweeps),
        },
        "trend_1m": {
            "request": "GET .../points/{pt}/series?start=&end=&bucket=1m (24 h)",
            "buckets_per_reply": counts.get("1m"), **percentiles(trend["1m"]),
            "cpu_ms_per_request": meter.per_request_ms("trend_1m"),
        },
        "trend_raw": {
            "request": "GET .../points/{pt}/series?start=&end= (24 h, raw)",
            "samples_per_reply": counts.get("raw"), **percentiles(trend["raw"]),
            "cpu_ms_per_request": meter.per_request_ms("trend_raw"),
        },
    }


async def store_direct(store: Any, shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    """The same reads straight from the store in this process (no HTTP, no API layer),
    to tell the store's share of a request from the API's."""
    from cloud.timeseries.base import SeriesKey

    rng = random.Random(5)
    keys = [SeriesKey(SITE, g, d, p) for g, d, p in shape.every]
    devices = [(g, d) for g in shape.gateways for d in shape.devices]
    times: dict[str, list[float]] = {"latest_1000": [], "latest_for_device": [],
                                     "downsampled_24h_1m": [], "raw_24h": []}

    async def clock(name: str, call: Any) -> None:
        t0 = time.perf_counter()
        await call
        times[name].append((time.perf_counter() - t0) * 1000)

    await store.latest(keys[:1000])  # warm-up
    for _ in range(max(1, args.sweeps // 2)):
        for first in range(0, len(keys), 1000):
            await clock("latest_1000", store.latest(keys[first:first + 1000]))
    for g, d in devices:
        await clock("latest_for_device", store.latest_for_device(SITE, g, d))
    for n in range(max(1, args.trend_queries // 2)):
        g, d, p = shape.history[rng.randrange(len(shape.history))]
        back = 0 if n % 2 == 0 else rng.randrange(0, max(1, shape.days - 1)) * DAY
        end = shape.now_ms - back + MINUTE
        key = SeriesKey(SITE, g, d, p)
        await clock("downsampled_24h_1m", store.downsampled(key, end - DAY, end,
                                                             bucket_ms=MINUTE))
        await clock("raw_24h", store.raw(key, end - DAY, end, limit=100_000))
    return {name: percentiles(values) for name, values in times.items()}


def run_backend(backend: str, args: argparse.Namespace, servers: Any, folder: Path,
                shape: Shape) -> dict[str, Any]:
    from cloud.settings import ApiSettings, CloudSettings, MqttSettings, TimeseriesSettings
    from cloud.timeseries import SqliteStore, TimeSeriesStore
    from cloud.timeseries.indexed import IndexedStore

    if backend == "sqlite":
        url = f"sqlite:///{folder / 'cloud.db'}"
        ts_path = folder / "ts.db"
        timeseries = TimeseriesSettings(backend="sqlite", sqlite_path=ts_path)

        def make_store() -> TimeSeriesStore:
            return SqliteStore(ts_path)
    else:
        from cloud.db import Database
        from cloud.timeseries.influx import InfluxStore

        url = servers.postgres_database("bench_api")
        database = servers.influx_database("bench_api")
        timeseries = TimeseriesSettings(backend="influx", influx_url=servers.influx.url,
                                        influx_database=database)

        def make_store() -> TimeSeriesStore:
            # As the service builds it: latest values from the relational index.
            return IndexedStore(InfluxStore(servers.influx.url, database=database),
                                Database.from_url(url))
    prepare_registry(url, shape)
    store = make_store()

    async def fill() -> dict[str, float]:
        try:
            filled = await fill_store(store, shape)
            if isinstance(store, IndexedStore):
                await store.backfill()  # marks the index complete, as a first start does
            return filled
        finally:
            await store.close()
            if isinstance(store, IndexedStore):
                store.db.dispose()

    filled = asyncio.run(fill())
    settings = CloudSettings(
        database_url=url, timeseries=timeseries,
        mqtt=MqttSettings(url="mqtt://127.0.0.1:9"),  # commands only; never used here
        api=ApiSettings(listen="127.0.0.1:0"))
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    # The API signs tokens with a secret from the environment (inherited by the child).
    os.environ.setdefault("TW_API_SECRET", secrets.token_urlsafe(48))
    profile = str(Path(args.profile) / f"api-{backend}.pstats") if args.profile else None
    proc = ctx.Process(target=api_main,
                       args=(settings.model_dump_json(exclude_unset=True), ready, stop, profile),
                       name="bench-api")
    proc.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                port = ready.get(timeout=0.2)
                break
            except queue.Empty:
                if not proc.is_alive() or time.monotonic() > deadline:
                    raise SystemExit("the API process did not start") from None
        store_pid = None if backend == "sqlite" else servers.influx.pid
        results = measure(port, shape, args, CpuMeter({"api": proc.pid, "influxd": store_pid}))
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    gc_pauses: Any = None
    with contextlib.suppress(queue.Empty):
        gc_pauses = ready.get(timeout=5)
    direct_store = make_store()

    async def direct() -> dict[str, Any]:
        try:
            return await store_direct(direct_store, shape, args)
        finally:
            await direct_store.close()
            if isinstance(direct_store, IndexedStore):
                direct_store.db.dispose()

    results_direct = asyncio.run(direct())
    target = 100.0
    worst = max(v["p99_ms"] for v in results.values())
    machine_load = os.getloadavg()[0]
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
        results["profile_top"] = [ln.rstrip() for ln in out.getvalue().splitlines()
                                  if ln.strip()][-31:]
    return {
        "backend": ("SQLite relational + SqliteStore" if backend == "sqlite"
                    else "PostgreSQL + InfluxStore (InfluxDB 1.x, InfluxQL /query)"),
        "fill": filled,
        **results,
        "store_direct": results_direct,
        "api_gc_pauses": gc_pauses,
        "target_p99_ms": target,
        "target_met": {k: v["p99_ms"] < target for k, v in results.items()
                       if k != "profile_top"},
        "worst_p99_ms": worst,
        "loadavg_1m_after": round(machine_load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,influx", help="sqlite, influx or both")
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--devices", type=int, default=10, help="devices per gateway")
    parser.add_argument("--points", type=int, default=50, help="points per device")
    parser.add_argument("--history-series", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sweeps", type=int, default=10,
                        help="times all points' latest values are fetched, each way")
    parser.add_argument("--trend-queries", type=int, default=200,
                        help="24-hour trend queries of each kind (bucketed, raw)")
    parser.add_argument("--profile", metavar="DIR",
                        help="cProfile the API process (main thread) into DIR")
    args = parser.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or not set(backends) <= {"sqlite", "influx"}:
        parser.error("--backends takes sqlite and/or influx")

    from bench._servers import Servers

    started = time.monotonic()
    load = os.getloadavg()
    shape = Shape(args)
    out: dict[str, Any] = {}
    with Servers(postgres="influx" in backends, influx="influx" in backends) as servers:
        for backend in backends:
            with tempfile.TemporaryDirectory(prefix="tw-bench-api-") as tmp:
                out[backend] = run_backend(backend, args, servers, Path(tmp), shape)
            print(f"{backend}: worst p99 {out[backend]['worst_p99_ms']} ms", file=sys.stderr)
    print(json.dumps({
        "bench": "api",
        "command": " ".join(["python -m bench.api", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_1m_at_start": round(load[0], 2)},
        "data": shape.describe(),
        "client": "one httpx client, sequential requests (keep-alive), after a warm-up",
        "server": "CloudService(api=True, workers=0): uvicorn (h11) in its own process",
        "backends": out,
        "total_s": round(time.monotonic() - started, 1),
    }))


if __name__ == "__main__":
    main()
