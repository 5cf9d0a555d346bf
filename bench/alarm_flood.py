"""An alarm flood: 1,000 alarms in 10 s from 200 devices, while the API is read; prints JSON.

200 door controllers behind 10 gateways (births retained first) each raise their five
alarms without on-delay once (``--alarms`` in all), paced evenly over ``--seconds``, as
edge events over Mosquitto to the cloud (``--workers`` ingest workers on one shared
subscription, PostgreSQL, the alarm service with the work-order policy). A share of the
messages (``--redeliver``) is published a second time, same seq (an edge replaying its
outbox), and ``--repeat`` more rounds re-raise every alarm with new seqs (a chattering
edge). Meanwhile ``--readers`` API clients read the alarm board, one device's alarms and
the work-order list in turn, as fast as they get answers (after ``--think`` s).

Checks: no loss (every (device, alarm) open), no duplicate open alarm or work order per
key (counted in the database), API p99 < 200 ms during the flood. ``drain_s`` is how long
after the last publish the last alarm became visible.

    .venv/bin/python -m bench.alarm_flood
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench._servers import Servers, machine_cpu, process_cpu

SITE = "flood-tower"


def pct(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1), "p90": at(0.9),
            "p99": at(0.99), "max": round(ordered[-1], 1)}


async def reader(client: Any, headers: dict[str, str], devices: int, think: float,
                 stop: asyncio.Event, out: dict[str, list[float]], seed: int) -> None:
    rng = random.Random(seed)
    base = f"/api/v1/sites/{SITE}"
    kinds = ("board", "device", "work_orders")
    n = 0
    while not stop.is_set():
        kind = kinds[n % len(kinds)]
        n += 1
        if kind == "board":
            path, params = f"{base}/alarms", {"limit": "100"}
        elif kind == "device":
            path = f"{base}/alarms"
            params = {"device": f"door-{rng.randrange(devices):03d}", "limit": "100"}
        else:
            path, params = f"{base}/work-orders", {"limit": "100"}
        started = time.perf_counter()
        reply = await client.get(path, params=params, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        out.setdefault(kind if reply.status_code == 200 else "errors", []).append(elapsed)
        await asyncio.sleep(think)


def ingest_main(url: str, mqtt_url: str, folder: str, workers: int, ready: Any,
                stop: Any) -> None:
    """``--split``: the ingest workers in a process of their own (``cloud ingest``)."""
    asyncio.run(_ingest(url, mqtt_url, Path(folder), workers, ready, stop))


async def _ingest(url: str, mqtt_url: str, folder: Path, workers: int, ready: Any,
                  stop: Any) -> None:
    from tests.integration.scenario_rig import running_cloud

    async with running_cloud(url, mqtt_url, folder, clock=time.time, workers=workers,
                             api=False):
        ready.set()
        await asyncio.to_thread(stop.wait)


@contextlib.contextmanager
def ingest_process(args: argparse.Namespace, url: str, mqtt_url: str,
                   folder: Path) -> Iterator[None]:
    if not args.split:
        yield
        return
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=ingest_main, args=(url, mqtt_url, str(folder), args.workers,
                                                 ready, stop), name="ingest")
    child.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the ingest process did not start within 60 s")
        yield
    finally:
        stop.set()
        child.join(30)
        if child.is_alive():
            child.kill()


async def measure(args: argparse.Namespace, servers: Servers, folder: Path) -> dict[str, Any]:
    from tests.integration.scenario_rig import FLOOD_ALARMS, flood_events, prepare_database

    assert servers.mosquitto is not None and servers.postgres is not None
    servers.postgres.drop_database("alarm_flood")
    servers.postgres.create_database("alarm_flood")
    url = servers.postgres.sqlalchemy_url_for("alarm_flood")
    await asyncio.to_thread(prepare_database, url, site=SITE)
    per_gateway_devices = args.devices // args.gateways
    devices = per_gateway_devices * args.gateways
    keys = devices * len(FLOOD_ALARMS)
    now = int(time.time() * 1000)
    per_gateway = flood_events(SITE, args.gateways, per_gateway_devices, now,
                               repeats=1 + args.repeat)
    # interleave the gateways, as 10 edges publishing at once would
    burst = [m for row in zip(*per_gateway, strict=True) for m in row]
    rng = random.Random(args.seed)
    again = [m for m in burst if rng.random() < args.redeliver]
    with ingest_process(args, url, servers.mosquitto.url, folder):
        return await _flood(args, servers, folder, url, keys, devices, per_gateway_devices,
                            burst, again, now)


async def _flood(args: argparse.Namespace, servers: Servers, folder: Path, url: str, keys: int,
                 devices: int, per_gateway_devices: int, burst: list[tuple[str, bytes]],
                 again: list[tuple[str, bytes]], now: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import func, select

    from cloud.alarms.tables import Alarm
    from cloud.workorders.tables import WorkOrder
    from tests.integration.scenario_rig import (
        flood_births,
        login,
        publish,
        running_cloud,
        wait_for,
    )

    assert servers.mosquitto is not None
    host, port = servers.mosquitto.host, servers.mosquitto.port
    async with running_cloud(url, servers.mosquitto.url, folder, clock=time.time,
                             workers=0 if args.split else args.workers) as cloud, \
            httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{cloud.api_port}", timeout=30,
            limits=httpx.Limits(max_connections=args.readers + 2)) as client:
        headers = await login(client)
        await asyncio.to_thread(publish, host, port,
                                flood_births(SITE, args.gateways, per_gateway_devices, now),
                                retain=True)

        async def known() -> bool:
            reply = await client.get(f"/api/v1/sites/{SITE}/devices", headers=headers)
            return reply.status_code == 200 and len(reply.json()) == devices

        await wait_for(known, limit=60, what="the flood devices in the registry")
        latencies: dict[str, list[float]] = {}
        stop = asyncio.Event()
        readers = [asyncio.create_task(reader(client, headers, devices, args.think, stop,
                                              latencies, n)) for n in range(args.readers)]
        cpu0, own0, servers0 = machine_cpu(), process_cpu(os.getpid()), servers.cpu_seconds()
        started = time.time()
        pace = args.seconds / len(burst)
        await asyncio.gather(
            asyncio.to_thread(publish, host, port, burst, pace=pace),
            asyncio.to_thread(publish, host, port, again, pace=args.seconds / max(1, len(again))))
        published = time.time()

        async def board_total() -> int | None:
            reply = await client.get(f"/api/v1/sites/{SITE}/alarms", params={"limit": 1},
                                     headers=headers)
            total = int(reply.json()["total"]) if reply.status_code == 200 else 0
            return total if total >= keys else None

        with contextlib.suppress(AssertionError):  # what is missing is reported below
            await wait_for(board_total, limit=args.timeout, every=0.05, what="every alarm")
        visible = time.time()
        stop.set()
        await asyncio.gather(*readers)
        cpu1, own1, servers1 = machine_cpu(), process_cpu(os.getpid()), servers.cpu_seconds()
        with cloud.db.transaction() as session:
            open_keys = session.execute(
                select(Alarm.gateway_id, Alarm.device_id, Alarm.name, func.count())
                .where(Alarm.site_id == SITE, Alarm.closed_ms.is_(None))
                .group_by(Alarm.gateway_id, Alarm.device_id, Alarm.name)).all()
            orders = session.execute(
                select(WorkOrder.open_key, func.count())
                .where(WorkOrder.site_id == SITE, WorkOrder.open_key.is_not(None))
                .group_by(WorkOrder.open_key)).all()
        stats = [w.pipeline.stats for w in cloud.workers]
        sink = cloud.sink
    busy = cpu1["busy"] - cpu0["busy"]
    ours = own1 - own0 + sum(servers1[k] - servers0.get(k, 0.0) for k in servers1)
    flood_reads = [v for k, vs in latencies.items() if k != "errors" for v in vs]
    api = pct(flood_reads)
    load = os.getloadavg()
    return {
        "bench": "alarm_flood", "alarms": keys, "devices": devices, "gateways": args.gateways,
        "events_published": len(burst), "redelivered": len(again),
        "repeat_rounds": args.repeat, "publish_s": round(published - started, 2),
        "drain_s": round(visible - published, 2),
        "alarms_open": len(open_keys), "lost": keys - len(open_keys),
        "duplicate_open_alarms": sum(n - 1 for *_k, n in open_keys if n > 1),
        "work_orders": len(orders),
        "duplicate_open_work_orders": sum(n - 1 for _k, n in orders if n > 1),
        "api_and_ingest": "separate processes" if args.split else "one process",
        "ingest": None if args.split else {
            "events": sum(s.events for s in stats),
            "duplicates_dropped": sum(s.duplicates for s in stats),
            "per_worker_events": [s.events for s in stats],
            "alarm_events_failed": getattr(sink, "failed", None)},
        "api_ms": api, "api_ms_by_request": {k: pct(v) for k, v in latencies.items()},
        "targets": {"no_loss": len(open_keys) == keys,
                    "no_duplicate_open": all(n == 1 for *_k, n in open_keys)
                    and all(n == 1 for _k, n in orders),
                    "api_p99_ms": 200, "api_p99_met": bool(api.get("p99", 1e9) < 200)},
        "machine": {"cores": os.cpu_count(), "loadavg_1m_at_end": round(load[0], 2),
                    "wall_s": round(visible - started, 2), "machine_busy_cpu_s": round(busy, 2),
                    "bench_and_servers_cpu_s": round(ours, 2),
                    "other_processes_cpu_s": round(max(0.0, busy - ours), 2)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="spread of the flood")
    parser.add_argument("--repeat", type=int, default=0,
                        help="extra rounds re-raising every alarm (new seqs)")
    parser.add_argument("--redeliver", type=float, default=0.1,
                        help="share of messages published twice with the same seq")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--split", action="store_true",
                        help="ingest workers in a process of their own, the API in this one "
                             "(as `cloud ingest` beside API replicas)")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.05, help="s between a reader's calls")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    if args.devices % args.gateways:
        parser.error("--devices must be a multiple of --gateways")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, Servers(mosquitto=True, postgres=True) as servers:
        result = asyncio.run(measure(args, servers, Path(tmp)))
    result["machine"]["loadavg_1m_at_start"] = round(load[0], 2)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
