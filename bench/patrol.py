"""Patrol scans verified and recorded through the API: scans/s and request latency.

The API (``create_app`` with the patrol runtime, uvicorn) runs in its own process on a
free loopback port over a SQLite store (or PostgreSQL with ``--database-url``). The bench
enrols ``--tags`` NTAG 424 DNA checkpoints with derived keys, then sends ``--scans`` SUN
taps produced by simulated tags (each verified: PICCData decrypted, session key derived,
CMAC checked, read counter checked and advanced, scan row written):

- ``batch``: ``POST /patrol/scans`` with ``--batch`` taps per request (offline uploads);
- ``single``: one tap per request (``--single`` requests), p50/p99 per request.

The scans do not join rounds (no schedules): this measures verification and recording.
Target: >= 1,000 scans/s. Prints one JSON object::

    python -m bench.patrol [--scans 10000] [--batch 100] [--single 1000] [--tags 50]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
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


def run(args: argparse.Namespace, http: httpx.Client) -> dict[str, Any]:
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

    def make(count: int) -> list[dict[str, Any]]:
        nonlocal serial
        scans = []
        for _ in range(count):
            code, tag = tags[serial % len(tags)]
            tap = tag.read()
            scans.append({"scan_id": f"b-{serial}", "device_time": int(time.time() * 1000),
                          "method": "ntag424_sun", "checkpoint": code,
                          "picc_data": tap.picc_data, "cmac": tap.cmac})
            serial += 1
        return scans

    def send(scans: list[dict[str, Any]]) -> float:
        began = time.perf_counter()
        answer = http.post(f"{base}/scans", headers=guard, json={"scans": scans})
        elapsed = time.perf_counter() - began
        answer.raise_for_status()
        results = answer.json()["results"]
        if any(r["result"] != "accepted" for r in results):
            raise RuntimeError(f"a bench scan was not accepted: {results}")
        return elapsed

    batches = [make(args.batch) for _ in range(args.scans // args.batch)]
    began = time.perf_counter()
    batch_times = [send(b) for b in batches]
    batch_wall = time.perf_counter() - began
    singles = [make(1) for _ in range(args.single)]
    began = time.perf_counter()
    single_times = [send(s) for s in singles]
    single_wall = time.perf_counter() - began
    batch_count = len(batches) * args.batch
    return {
        "batch": {"scans": batch_count, "per_request": args.batch,
                  "scans_per_s": round(batch_count / batch_wall, 1),
                  "request": percentiles(batch_times),
                  "per_scan_ms": round(batch_wall / batch_count * 1000, 3)},
        "single": {"scans": len(singles), "scans_per_s": round(len(singles) / single_wall, 1),
                   "request": percentiles(single_times)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--single", type=int, default=1000)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    from tests.servers.ports import free_port

    with tempfile.TemporaryDirectory(prefix="tw-bench-patrol-") as folder:
        url = args.database_url or f"sqlite:///{folder}/towerwatch.db"
        prepare(url)
        port = free_port()
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        process = ctx.Process(target=serve, args=(url, folder, port, ready), daemon=True)
        process.start()
        try:
            if not ready.wait(60):
                sys.exit("the API did not start")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                figures = run(args, http)
        finally:
            process.terminate()
            process.join(10)
    target = 1000.0
    print(json.dumps({
        "bench": "patrol", "path": "HTTP API (uvicorn, own process) -> SUN verification -> "
        "scan rows", "database": "postgresql" if args.database_url else "sqlite",
        "tags": args.tags, **figures, "target_scans_per_s": target,
        "target_met": figures["batch"]["scans_per_s"] >= target}, indent=2))


if __name__ == "__main__":
    main()
