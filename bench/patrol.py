"""Patrol scans verified and recorded through the API: scans/s and request latency.

The API (``create_app`` with the patrol runtime, uvicorn) runs in its own process on a
free loopback port over a SQLite store, or PostgreSQL (``--postgres`` starts one from
``tests/servers`` on a free port; ``--database-url`` uses one you give). The bench enrols
``--tags`` NTAG 424 DNA checkpoints with derived keys, then sends ``--scans`` SUN taps
produced by simulated tags (each verified: PICCData decrypted, session key derived, CMAC
checked, read counter checked and advanced, scan row written):

- ``batch``: ``POST /patrol/scans`` with ``--batch`` taps per request (offline uploads),
  from ``--clients`` phones at once (each with its own tags, so no tap is a replay);
- ``single``: one tap per request (``--single`` requests), p50/p99 per request.

Afterwards the store is counted: every tap must be recorded as ``accepted``. The server's
CPU time per scan is printed too (steadier than wall time on a shared machine). The scans
do not join rounds (no schedules): this measures verification and recording.
Target: >= 1,000 scans/s. Prints one JSON object::

    python -m bench.patrol [--scans 10000] [--batch 100] [--single 1000] [--tags 50]
                           [--clients 1] [--postgres | --database-url URL]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

SITE = "bench-tower"
PASSWORD = "bench horse battery staple"
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
MASTER = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def prepare(url: str) -> None:
    from cloud.db import Database, create_user, grant_role, upgrade, upsert_site
    from cloud.security.passwords import PasswordHasher

    upgrade(url)
    database = Database.from_url(url)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with database.transaction() as session:
        upsert_site(session, SITE, name="Bench Tower", timezone="Asia/Shanghai")
        for name, role in (("bench-guard", "guard"), ("bench-supervisor", "supervisor")):
            user = create_user(session, name, PASSWORD, now_ms=0, hasher=hasher)
            grant_role(session, user, role, SITE)
    database.dispose()


def serve(url: str, folder: str, port: int, ready: Any) -> None:
    import uvicorn

    from cloud.api import create_app
    from cloud.api.routes.patrol_common import install_patrols
    from cloud.db import Database
    from cloud.patrols.escalation import RecordingEscalation
    from cloud.patrols.runtime import PatrolRuntime
    from cloud.patrols.settings import PatrolSettings
    from cloud.security.passwords import PasswordHasher
    from cloud.settings import ApiSettings, CloudSettings
    from cloud.timeseries import SqliteStore
    from tests.cloud.api.support import RecordingSender

    base = Path(folder)
    (base / "secret").write_text(SECRET)
    (base / "key").write_text(MASTER)
    settings = CloudSettings(api=ApiSettings(secret_file=base / "secret", secret_env=None))
    app = create_app(settings, db=Database.from_url(url), store=SqliteStore(base / "ts.db"),
                     commands=RecordingSender(),
                     hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    install_patrols(app, PatrolRuntime.from_settings(
        PatrolSettings(master_key_file=base / "key", master_key_env=None, max_batch=1000),
        RecordingEscalation()))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets)
        ready.set()

    server.startup = startup  # type: ignore[method-assign]
    server.run()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "mean_ms":
            round(statistics.fmean(ordered) * 1000, 2), "max_ms": pick(1.0)}


def recorded(url: str) -> dict[str, int]:
    """Scan rows in the store by result."""
    from sqlalchemy import func, select

    from cloud.db import Database
    from cloud.patrols.tables import PatrolScan

    database = Database.from_url(url)
    try:
        with database.transaction() as session:
            rows = session.execute(select(PatrolScan.result, func.count())
                                   .group_by(PatrolScan.result)).all()
    finally:
        database.dispose()
    return {str(result): int(count) for result, count in rows}


def run(args: argparse.Namespace, http: httpx.Client, cpu: Any) -> dict[str, Any]:
    from simulators.patrol.ntag import SimTag

    def token(user: str) -> dict[str, str]:
        answer = http.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    supervisor, guard = token("bench-supervisor"), token("bench-guard")
    base = f"/api/v1/sites/{SITE}/patrol"
    tags: list[tuple[str, SimTag]] = []
    for index in range(args.tags):
        uid = bytes.fromhex(f"04B1{index:010X}")
        answer = http.post(f"{base}/checkpoints", headers=supervisor, json={
            "code": f"cp-{index}", "name": f"Checkpoint {index}", "tag_type": "ntag424_sun",
            "uid": uid.hex().upper()})
        answer.raise_for_status()
        keys = answer.json()["keys"]
        tags.append((f"cp-{index}", SimTag(uid, bytes.fromhex(keys["meta_read"]),
                                           bytes.fromhex(keys["file_read"]))))
    serial = 0

    def make(count: int, phone: int = 0) -> list[dict[str, Any]]:
        nonlocal serial
        own = tags[phone::args.clients]  # a phone taps its own checkpoints
        scans = []
        for _ in range(count):
            code, tag = own[serial % len(own)]
            tap = tag.read()
            scans.append({"scan_id": f"b-{serial}", "device_time": int(time.time() * 1000),
                          "method": "ntag424_sun", "checkpoint": code,
                          "picc_data": tap.picc_data, "cmac": tap.cmac})
            serial += 1
        return scans

    def send(client: httpx.Client, scans: list[dict[str, Any]]) -> float:
        began = time.perf_counter()
        answer = client.post(f"{base}/scans", headers=guard, json={"scans": scans})
        elapsed = time.perf_counter() - began
        answer.raise_for_status()
        results = answer.json()["results"]
        if any(r["result"] != "accepted" for r in results):
            raise RuntimeError(f"a bench scan was not accepted: {results}")
        return elapsed

    def phone(batches: list[list[dict[str, Any]]]) -> list[float]:
        with httpx.Client(base_url=http.base_url, timeout=120) as client:
            return [send(client, b) for b in batches]

    per_phone = args.scans // args.batch // args.clients
    queues = [[make(args.batch, p) for _ in range(per_phone)] for p in range(args.clients)]
    cpu_before = cpu()
    began = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        batch_times = [t for times in pool.map(phone, queues) for t in times]
    batch_wall = time.perf_counter() - began
    batch_cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu().items()}
    singles = [make(1) for _ in range(args.single)]
    began = time.perf_counter()
    single_times = [send(http, s) for s in singles]
    single_wall = time.perf_counter() - began
    batch_count = len(batch_times) * args.batch
    return {
        "batch": {"scans": batch_count, "per_request": args.batch, "clients": args.clients,
                  "scans_per_s": round(batch_count / batch_wall, 1),
                  "request": percentiles(batch_times),
                  "per_scan_ms": round(batch_wall / batch_count * 1000, 3),
                  "server_cpu_ms_per_scan": {k: round(v / batch_count * 1000, 3)
                                             for k, v in batch_cpu.items()}},
        "single": {"scans": len(singles), "scans_per_s": round(len(singles) / single_wall, 1),
                   "request": percentiles(single_times)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--clients", type=int, default=1, help="phones uploading at once")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--postgres", action="store_true",
                        help="start a PostgreSQL server (tests/servers) for the store")
    engine.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if args.clients < 1 or args.tags < args.clients:
        parser.error("--clients must be at least 1 and at most --tags")
    from bench._servers import Servers, process_cpu
    from tests.servers.ports import free_port

    with tempfile.TemporaryDirectory(prefix="tw-bench-patrol-") as folder, \
            Servers(postgres=args.postgres) as servers:
        url = (servers.postgres_database("bench_patrol") if args.postgres
               else args.database_url or f"sqlite:///{folder}/towerwatch.db")
        prepare(url)
        port = free_port()
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        process = ctx.Process(target=serve, args=(url, folder, port, ready), daemon=True)
        process.start()

        def cpu() -> dict[str, float]:  # the API process and, for PostgreSQL, the server
            return {"api": process_cpu(process.pid), **servers.cpu_seconds()}

        try:
            if not ready.wait(60):
                sys.exit("the API did not start")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                figures = run(args, http, cpu)
        finally:
            process.terminate()
            process.join(10)
        rows = recorded(url)
    expected = figures["batch"]["scans"] + figures["single"]["scans"]
    if rows != {"accepted": expected}:
        sys.exit(f"the store holds {rows}, not {expected} accepted scans")
    target = 1000.0
    print(json.dumps({
        "bench": "patrol", "path": "HTTP API (uvicorn, own process) -> SUN verification -> "
        "scan rows", "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "tags": args.tags, **figures, "recorded": rows, "target_scans_per_s": target,
        "target_met": figures["batch"]["scans_per_s"] >= target}, indent=2))


if __name__ == "__main__":
    main()
