"""End-to-end ingest throughput: telemetry through a real Mosquitto into the cloud.

A publisher process (paho-mqtt, QoS 1, ``--inflight`` messages in flight per
connection, one MQTT connection per simulated gateway) sends a fixed volume of valid
``Telemetry`` payloads built with the ``towerwatch.contract`` models: ``--gateways``
gateways, each with its own boot id and a contiguous ``seq`` from 1, round-robin over
its ``--devices-per-gateway`` devices, ``--points-per-message`` points each (floats,
ints and bools, every point with a quality, as the edge sends them).

Ingest workers (:class:`~cloud.ingest.worker.IngestWorker` with an
:class:`~cloud.ingest.pipeline.IngestPipeline`) each run in their own process
(``multiprocessing`` spawn), so two workers really run on two cores; they share the
MQTT 5 subscription ``$share/tw-ingest/tw/v1/#``. Configurations, each on fresh
databases:

- ``sqlite``: relational store on SQLite + :class:`~cloud.timeseries.SqliteStore`
  (the workers share both files);
- ``influx``: PostgreSQL + :class:`~cloud.timeseries.influx.InfluxStore` (InfluxDB 1.x,
  v1 ``/write``);

each with 1 and 2 workers (``--workers``). One Mosquitto serves all of them
(persistence on, ``max_queued_messages`` 2,000,000, ``max_inflight_messages`` 1000).

Timing: from the first publish to the end of the store write that completed the
volume (each worker stamps the wall clock after every stored batch). Then the store
itself is queried: ``points_stored`` is the count of samples in it (SQLite
``count(*)``; InfluxDB ``count(value) + count(value_str)``: every line carries one), and
``points_lost = points_published - points_stored`` (must be 0). ``seq_counters`` are
the database's per-boot sequence counters summed over the gateways: ``missing`` must be
0; ``gaps``/``late`` count messages processed out of order (two workers).

CPU: every process's CPU seconds during the run (workers, publisher, servers) and the
machine's, so ``other_processes`` shows load from outside the bench; throughput on a
shared 2-core machine moves with it.

Prints one JSON object::

    python -m bench.ingest [--messages 20000] [--points-per-message 50]
        [--backends sqlite,influx] [--workers 1,2] [--profile DIR]

``--profile DIR`` runs each worker under cProfile (the event-loop thread; database and
store threads are not profiled) and adds its top functions to the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SITE = "bench-tower"
BOOT_IDS = [str(uuid.UUID(int=random.Random(n).getrandbits(128))) for n in range(1000)]


# -- payloads --------------------------------------------------------------------------
def point_ids(count: int) -> list[str]:
    return [f"p{n:03d}" for n in range(count)]


def build_messages(messages: int, points: int, gateways: int, devices: int,
                   base_ts: int) -> list[list[tuple[str, bytes]]]:
    """Per gateway, its ``(topic, payload)`` list in seq order (seq 1, 2, ...).

    Message ``n`` goes to gateway ``n % gateways``; a gateway's messages go round-robin
    to its devices, each device's next message one second after its previous one, so
    every ``(series, ts)`` is distinct and the store must keep every sample.
    """
    from towerwatch.contract import Telemetry, encode, telemetry_topic

    ids = point_ids(points)
    rng = random.Random(7)
    out: list[list[tuple[str, bytes]]] = [[] for _ in range(gateways)]
    for n in range(messages):
        g = n % gateways
        items = out[g]
        seq = len(items) + 1
        device = f"dev-{(seq - 1) % devices:03d}"
        tick = (seq - 1) // devices
        values: dict[str, Any] = {}
        for j, pid in enumerate(ids):
            if j % 10 == 0:
                values[pid] = rng.random() < 0.5
            elif j % 10 == 1:
                values[pid] = rng.randrange(0, 100_000)
            else:
                values[pid] = round(rng.uniform(0, 1000), 3)
        payload = Telemetry(seq=seq, boot_id=BOOT_IDS[g], ts=base_ts + tick * 1000,
                            values=values, quality=dict.fromkeys(ids, "good"))
        items.append((telemetry_topic(SITE, f"gw-{g:03d}", device), encode(payload)))
    return out


# -- publisher process -----------------------------------------------------------------
def publisher_main(cfg: dict[str, Any], results: Any) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    per_gateway = build_messages(cfg["messages"], cfg["points"], cfg["gateways"],
                                 cfg["devices"], cfg["base_ts"])
    total = sum(len(items) for items in per_gateway)
    acked = 0
    lock = threading.Lock()
    done = threading.Event()

    def on_publish(_c: Any, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == total:
                done.set()

    clients = []
    for g in range(len(per_gateway)):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-gw-{g:03d}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.max_inflight_messages_set(cfg["inflight"])
        client.max_queued_messages_set(0)
        client.on_publish = on_publish
        client.connect(cfg["host"], cfg["port"], keepalive=60)
        client.loop_start()
        clients.append(client)
    deadline = time.monotonic() + 10
    while not all(c.is_connected() for c in clients):
        if time.monotonic() > deadline:
            raise SystemExit("publisher could not connect")
        time.sleep(0.01)
    cpu_ready = time.process_time()
    results.put({"ready": True})
    first = time.time()
    longest = max(len(items) for items in per_gateway)
    for i in range(longest):  # the gateways interleaved, as the broker would see them
        for client, items in zip(clients, per_gateway, strict=True):
            if i < len(items):
                topic, payload = items[i]
                client.publish(topic, payload, qos=1)
    enqueued = time.time() - first
    done.wait(cfg["timeout"])
    all_acked = time.time()
    cpu = time.process_time() - cpu_ready
    for client in clients:
        client.disconnect()
        client.loop_stop()
    results.put({"first_publish": first, "enqueued_s": enqueued, "acked": acked,
                 "all_acked": all_acked, "messages": total, "cpu_s": cpu})


# -- worker process --------------------------------------------------------------------
def worker_main(cfg: dict[str, Any], shared: dict[str, Any], stop: Any) -> None:
    profiler = cProfile.Profile() if cfg.get("profile") else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(_worker(cfg, shared, stop))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(cfg["profile"])


async def _worker(cfg: dict[str, Any], shared: dict[str, Any], stop: Any) -> None:
    from cloud.db import Database
    from cloud.ingest.pipeline import IngestPipeline, LogEventSink
    from cloud.ingest.worker import IngestWorker
    from cloud.service import make_store, settle_collector
    from cloud.settings import IngestSettings, MqttSettings, TimeseriesSettings

    class ReportingPipeline(IngestPipeline):
        """Publishes its counters after every stored batch, with the time it ended."""

        async def process(self, batch: Any) -> None:
            await super().process(batch)
            now = time.time()
            with shared["samples"].get_lock():
                shared["samples"].value = self.stats.samples
                shared["messages"].value = self.stats.received
                shared["batches"].value = self.stats.batches
                shared["last_store"].value = now

    db = Database.from_url(cfg["database_url"])
    # The store exactly as the service builds it (InfluxDB: with the latest-value index).
    if cfg["backend"] == "sqlite":
        timeseries = TimeseriesSettings(backend="sqlite", sqlite_path=cfg["ts_path"])
    else:
        timeseries = TimeseriesSettings(backend="influx", influx_url=cfg["influx_url"],
                                        influx_database=cfg["influx_database"])
    store = make_store(timeseries, db)
    pipeline = ReportingPipeline(db, store, LogEventSink())
    worker = IngestWorker(
        MqttSettings(url=cfg["mqtt_url"], shared="yes"),
        IngestSettings(batch_size=cfg["batch_size"], batch_wait=cfg["batch_wait"]),
        pipeline, name=cfg["name"], pipeline_depth=cfg["depth"])
    settle_collector()  # as the service does once it has started
    task = asyncio.create_task(worker.run())
    try:
        while not stop.is_set():
            shared["connected"].value = 1 if worker.connected else 0
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stats = pipeline.stats
        for name in ("duplicates", "dead_letters", "failed_batches"):
            shared[name].value = getattr(stats, name)
        await store.close()
        db.dispose()


def _shared(ctx: Any) -> dict[str, Any]:
    counters = ("samples", "messages", "batches", "duplicates", "dead_letters",
                "failed_batches")
    return {"connected": ctx.Value("i", 0), "last_store": ctx.Value("d", 0.0),
            **{name: ctx.Value("q", 0) for name in counters}}


# -- measuring -------------------------------------------------------------------------
def count_sqlite(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])
    except sqlite3.OperationalError:  # no table: nothing was stored
        return 0
    finally:
        conn.close()


def count_influx(server: Any, database: str) -> int:
    from cloud.timeseries.base import MAX_TS_MS
    from cloud.timeseries.influxql import count_before_query, parse_count

    answer = server.query(count_before_query(MAX_TS_MS + 1), database)
    return parse_count(answer["results"][0].get("series") or [])


def count_claimed(url: str) -> tuple[int, dict[str, int]]:
    """Messages claimed, and the sequence counters summed over every gateway boot."""
    from sqlalchemy import func, select

    from cloud.db import Database, SeenMessage, seq_streams

    db = Database.from_url(url)
    try:
        with db.transaction() as session:
            claimed = int(session.scalar(select(func.count()).select_from(SeenMessage)) or 0)
            streams = seq_streams(session)
            counters = {name: sum(getattr(s, name) for s in streams)
                        for name in ("messages", "gaps", "late", "missing")}
            return claimed, counters
    finally:
        db.dispose()


def top_functions(path: str, limit: int = 25) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    lines = [ln.rstrip() for ln in out.getvalue().splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return [ln for ln in lines[start:] if ln.strip()]


# -- one configuration -----------------------------------------------------------------
def run_config(args: argparse.Namespace, servers: Any, backend: str, workers: int,
               folder: Path) -> dict[str, Any]:
    from bench._servers import machine_cpu, process_cpu, sqlite_urls

    tag = f"{backend}_w{workers}"
    base: dict[str, Any] = {
        "backend": backend, "mqtt_url": servers.mosquitto.url,
        "batch_size": args.batch_size, "batch_wait": args.batch_wait,
        "depth": args.pipeline_depth,
    }
    if backend == "sqlite":
        url, ts_path = sqlite_urls(folder, tag)
        base |= {"database_url": url, "ts_path": str(ts_path)}
    else:
        url = servers.postgres_database(f"bench_{tag}")
        base |= {"database_url": url, "influx_url": servers.influx.url,
                 "influx_database": servers.influx_database(f"bench_{tag}")}
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    shared = [_shared(ctx) for _ in range(workers)]
    procs = []
    for n in range(workers):
        cfg = dict(base, name=f"ingest-{n + 1}")
        if args.profile:
            cfg["profile"] = str(Path(args.profile) / f"{tag}-{n + 1}.pstats")
        procs.append(ctx.Process(target=worker_main, args=(cfg, shared[n], stop),
                                 name=f"bench-ingest-{n + 1}"))
    for proc in procs:
        proc.start()
    results = ctx.Queue()
    publisher = None
    try:
        deadline = time.monotonic() + 60
        while not all(s["connected"].value for s in shared):
            if any(not p.is_alive() for p in procs) or time.monotonic() > deadline:
                raise SystemExit(f"{tag}: the workers did not connect")
            time.sleep(0.05)
        time.sleep(0.3)  # subscriptions settle
        pub_cfg = {"host": servers.mosquitto.host, "port": servers.mosquitto.port,
                   "messages": args.messages, "points": args.points_per_message,
                   "gateways": args.gateways, "devices": args.devices_per_gateway,
                   "base_ts": int(time.time() * 1000) - 86_400_000,
                   "inflight": args.inflight, "timeout": args.timeout}
        publisher = ctx.Process(target=publisher_main, args=(pub_cfg, results),
                                name="bench-publisher")
        publisher.start()
        results.get(timeout=300)  # payloads built, connected: the clock starts next
        cpu0 = {"workers": [process_cpu(p.pid, children=False) for p in procs],
                **servers.cpu_seconds()}
        sys0, wall0 = machine_cpu(), time.time()
        published = results.get(timeout=args.timeout + 300)
        expected = published["acked"] * args.points_per_message
        last_total, last_change = -1, time.monotonic()
        while True:  # until the workers report the volume stored, or stall
            total = sum(s["samples"].value for s in shared)
            if total != last_total:
                last_total, last_change = total, time.monotonic()
            if total >= expected or time.monotonic() - last_change > args.stall:
                break
            time.sleep(0.02)
        sys1, wall1 = machine_cpu(), time.time()
        cpu1 = {"workers": [process_cpu(p.pid, children=False) for p in procs],
                **servers.cpu_seconds()}
        end = max(s["last_store"].value for s in shared)
    finally:
        stop.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
        if publisher is not None:
            publisher.join(10)
            if publisher.is_alive():
                publisher.terminate()

    if backend == "sqlite":
        stored = count_sqlite(Path(base["ts_path"]))
    else:
        stored = count_influx(servers.influx, base["influx_database"])
    claimed, streams = count_claimed(base["database_url"])
    elapsed = end - published["first_publish"]
    points_s = stored / elapsed if elapsed > 0 else 0.0
    worker_cpu = [round(b - a, 2) for a, b in zip(cpu0["workers"], cpu1["workers"],
                                                   strict=True)]
    server_cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0 if k != "workers"}
    machine = {k: round(sys1[k] - sys0[k], 2) for k in sys0}
    ours = sum(worker_cpu) + published["cpu_s"] + sum(server_cpu.values())
    machine["other_processes"] = round(max(0.0, machine["busy"] - ours), 2)
    span = wall1 - wall0
    us_per_point = {"workers": sum(worker_cpu) / max(stored, 1) * 1e6,
                    "publisher": published["cpu_s"] / max(stored, 1) * 1e6,
                    **{k: v / max(stored, 1) * 1e6 for k, v in server_cpu.items()}}
    target = 50_000 if backend == "influx" else 30_000
    return {
        "backend": ("SQLite relational + SqliteStore" if backend == "sqlite"
                    else "PostgreSQL + InfluxStore (InfluxDB 1.x, v1 /write)"),
        "workers": workers,
        "worker_mode": ("one process" if workers == 1 else
                        f"{workers} separate processes, MQTT 5 shared subscription"),
        "messages_published": published["acked"],
        "points_published": expected,
        "points_stored": stored,
        "points_lost": expected - stored,
        "messages_claimed": claimed,
        "duplicates": sum(s["duplicates"].value for s in shared),
        "dead_letters": sum(s["dead_letters"].value for s in shared),
        "failed_batches_retried": sum(s["failed_batches"].value for s in shared),
        "seq_counters": streams,
        "elapsed_s": round(elapsed, 3),
        "points_per_s": round(points_s),
        "points_per_s_per_worker": round(points_s / workers),
        "messages_per_s": round(published["acked"] / elapsed) if elapsed > 0 else 0,
        "target_points_per_s_per_worker": target,
        "target_met": bool(points_s / workers >= target and expected == stored),
        "publish_s": round(published["all_acked"] - published["first_publish"], 3),
        "per_worker_messages": [s["messages"].value for s in shared],
        "per_worker_batches": [s["batches"].value for s in shared],
        "cpu_s": {"wall_s": round(span, 2), "cores": os.cpu_count(),
                  "workers": worker_cpu, "publisher": round(published["cpu_s"], 2),
                  **server_cpu, "machine": machine},
        "cpu_us_per_point": {k: round(v, 2) for k, v in us_per_point.items()},
        "worker_points_per_cpu_s": round(1e6 / us_per_point["workers"] * workers)
        if us_per_point["workers"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--points-per-message", type=int, default=50)
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--devices-per-gateway", type=int, default=25)
    parser.add_argument("--backends", default="sqlite,influx", help="sqlite, influx or both")
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2")
    parser.add_argument("--batch-size", type=int, default=5000,
                        help="IngestSettings.batch_size (messages per batch)")
    parser.add_argument("--batch-wait", type=float, default=0.2,
                        help="IngestSettings.batch_wait (s)")
    parser.add_argument("--pipeline-depth", type=int, default=2,
                        help="batches in progress per worker (IngestWorker pipeline_depth)")
    parser.add_argument("--inflight", type=int, default=1000,
                        help="QoS 1 messages in flight per publisher connection")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--stall", type=float, default=30.0,
                        help="give up when nothing is stored for this many seconds")
    parser.add_argument("--profile", metavar="DIR", help="cProfile each worker into DIR")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if not set(backends) <= {"sqlite", "influx"} or not counts:
        parser.error("--backends takes sqlite and/or influx; --workers at least one count")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    from bench._servers import Servers

    started = time.monotonic()
    load = os.getloadavg()
    configs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tw-bench-ingest-") as tmp, Servers(
            mosquitto=True, postgres="influx" in backends, influx="influx" in backends,
    ) as servers:
        for backend in backends:
            for workers in counts:
                key = f"{backend}/{workers}w"
                configs[key] = run_config(args, servers, backend, workers, Path(tmp))
                if args.profile:
                    configs[key]["profile_top"] = {
                        f"worker-{n + 1}": top_functions(
                            str(Path(args.profile) / f"{backend}_w{workers}-{n + 1}.pstats"))
                        for n in range(workers)}
                print(f"{key}: {configs[key]['points_per_s']} points/s, "
                      f"{configs[key]['points_lost']} lost", file=sys.stderr)
    sample = build_messages(1, args.points_per_message, 1, 1, 1_700_000_000_000)[0][0][1]
    result = {
        "bench": "ingest",
        "command": " ".join(["python -m bench.ingest", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_1m_at_start": round(load[0], 2)},
        "volume": {
            "messages": args.messages, "points_per_message": args.points_per_message,
            "points": args.messages * args.points_per_message, "gateways": args.gateways,
            "devices_per_gateway": args.devices_per_gateway, "qos": 1,
            "payload_bytes": len(sample),
        },
        "broker": "Mosquitto 2.0 (persistence true, max_queued_messages 2000000, "
                  "max_inflight_messages 1000); publisher paho-mqtt MQTT 3.1.1, "
                  f"{args.inflight} in flight per gateway connection",
        "ingest": {"batch_size": args.batch_size, "batch_wait_s": args.batch_wait,
                   "pipeline_depth": args.pipeline_depth},
        "timing": "first publish -> end of the store write that completed the volume; "
                  "points_stored counted in the store afterwards",
        "configs": configs,
        "total_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result))
    if any(c["points_lost"] for c in configs.values()):
        sys.exit(1)  # a lost point is a failure, whatever the speed


if __name__ == "__main__":
    main()
