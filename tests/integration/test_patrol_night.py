"""A simulated night of patrol rounds against the real API over HTTP (uvicorn on a free
loopback port) with a simulated clock, on SQLite and PostgreSQL.

Six rounds of one ordered four-checkpoint route, 20:00 to 06:00 site-local time:
clean; a missed checkpoint; out of order; a forged tap and a replayed tap; walked offline
and uploaded after the round was marked missed; not walked at all. The exceptions and
the completion figures must be exactly the expected ones.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn

from cloud.api import create_app
from cloud.api.routes.patrol_common import install_patrols
from cloud.db import Database, upgrade
from cloud.patrols.escalation import RecordingEscalation
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.settings import PatrolSettings
from cloud.security.passwords import PasswordHasher
from cloud.settings import ApiSettings, CloudSettings
from cloud.timeseries import SqliteStore
from simulators.clock import SimClock
from simulators.patrol.walker import Cues, PatrolWalker, load_patrol_site
from tests.cloud.api.support import PASSWORD, SECRET, RecordingSender, seed
from tests.cloud.db.conftest import db_url  # noqa: F401
from tests.servers.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Asia/Shanghai")
EVENING = datetime(2025, 6, 15, 19, 0, tzinfo=TZ)


def local_ms(day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(2025, 6, day, hour, minute, tzinfo=TZ).timestamp() * 1000)


class Server:
    def __init__(self, app: object, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "API did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def night(db_url: str, tmp_path: Path) -> Iterator[tuple[str, SimClock, RecordingEscalation]]:  # noqa: F811
    upgrade(db_url)
    database = Database.from_url(db_url)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with database.transaction() as session:
        seed(session, hasher)
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    key = tmp_path / "patrol-key"
    key.write_text("5ACE7E50AB65D5D51FD5BF5A16B8205B5ACE7E50AB65D5D51FD5BF5A16B8205B")
    clock = SimClock(start=EVENING.timestamp(), speed=0, timezone="Asia/Shanghai")
    store = SqliteStore(tmp_path / "ts.db")
    settings = CloudSettings(api=ApiSettings(secret_file=secret, secret_env=None,
                                             token_ttl=2 * 86400.0))
    app = create_app(settings, db=database, store=store, commands=RecordingSender(),
                     clock=clock.now, hasher=hasher)
    escalation = RecordingEscalation()
    install_patrols(app, PatrolRuntime.from_settings(
        PatrolSettings(master_key_file=key, master_key_env=None), escalation))
    port = free_port()
    try:
        with Server(app, port):
            yield f"http://127.0.0.1:{port}", clock, escalation
    finally:
        database.dispose()


def login(http: httpx.Client, username: str) -> str:
    response = http.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_a_night_of_rounds(night: tuple[str, SimClock, RecordingEscalation]) -> None:
    base_url, clock, escalation = night
    with httpx.Client(base_url=base_url, timeout=30) as http:
        supervisor, guard = login(http, "supervisor-a"), login(http, "guard-a")
        walker = PatrolWalker(http, "alpha", clock.advance, lambda: int(clock.now() * 1000))
        walker.enrol(load_patrol_site(ROOT / "simulators/sites/tower-a-patrol.yaml"), supervisor)

        def go_to(at_ms: int) -> None:
            clock.advance((at_ms - clock.now() * 1000) / 1000)

        def round_at(at_ms: int, cues: Cues | None = None) -> list[dict[str, object]]:
            go_to(at_ms)
            [tour] = [t for t in walker.due(guard) if t["scheduled"] == at_ms]
            return walker.walk(guard, tour, cues or Cues())

        results = round_at(local_ms(15, 20))
        assert [r["result"] for r in results] == ["accepted"] * 4
        round_at(local_ms(15, 22), Cues(miss=frozenset({"cp-3"})))
        swapped = round_at(local_ms(16, 0), Cues(swap=("cp-2", "cp-3")))
        assert [r["exceptions"] for r in swapped] == [[], [], ["out_of_order"], []]
        tricks = round_at(local_ms(16, 2), Cues(forge="cp-2", replay="cp-1"))
        assert [r["result"] for r in tricks] == ["accepted", "bad_mac", "accepted", "accepted",
                                                 "accepted", "replay"]
        round_at(local_ms(16, 4), Cues(offline=True))
        go_to(local_ms(16, 5))
        tours = http.get("/api/v1/sites/alpha/patrol/tours", params={"status": "missed"},
                         headers={"Authorization": f"Bearer {supervisor}"}).json()
        assert [t["scheduled"] for t in tours] == [local_ms(16, 4)]
        go_to(local_ms(16, 5, 30))
        uploaded = walker.upload(guard, "night-offline")
        assert [(r["result"], r["time"]) for r in uploaded] == [
            ("accepted", local_ms(16, 4) + i * 300_000) for i in range(4)]
        go_to(local_ms(16, 7))

        auth = {"Authorization": f"Bearer {supervisor}"}
        every = http.get("/api/v1/sites/alpha/patrol/exceptions", headers=auth).json()
        by_status = Counter((e["kind"], e["status"]) for e in every)
        assert by_status == Counter({
            ("missed_checkpoint", "open"): 1, ("out_of_order", "open"): 1,
            ("bad_mac", "open"): 1, ("replay", "open"): 1,
            ("tour_not_started", "open"): 1, ("tour_not_started", "withdrawn"): 1})
        [missed] = [e for e in every if e["kind"] == "missed_checkpoint"]
        assert missed["escalation"] == "alarm"
        assert Counter(r.kind.value for r in escalation.requests) == Counter({
            "missed_checkpoint": 1, "bad_mac": 1, "replay": 1, "tour_not_started": 2})

        closed = http.get("/api/v1/sites/alpha/patrol/tours", headers=auth, params={
            "status": ["completed", "completed_with_exceptions", "missed"]}).json()
        assert [(datetime.fromtimestamp(t["scheduled"] / 1000, TZ).hour, t["status"])
                for t in closed] == [
            (20, "completed"), (22, "completed_with_exceptions"),
            (0, "completed_with_exceptions"), (2, "completed"), (4, "completed"), (6, "missed")]
        stats = http.get("/api/v1/sites/alpha/patrol/stats", headers=auth, params={
            "start": local_ms(15, 12), "end": local_ms(16, 12)}).json()
        assert stats == [{
            "key": "alpha", "due": 6, "completed": 5, "on_time": 4, "missed": 1,
            "abandoned": 0, "with_exceptions": 2, "completion_rate": 0.8333,
            "on_time_rate": 0.6667, "checkpoints_expected": 24, "checkpoints_visited": 19,
            "checkpoint_rate": 0.7917}]
        by_guard = http.get("/api/v1/sites/alpha/patrol/stats", headers=auth, params={
            "start": local_ms(15, 12), "end": local_ms(16, 12), "by": "guard"}).json()
        assert [(r["key"], r["due"], r["completed"]) for r in by_guard] == [
            ("-", 1, 0), ("guard-a", 5, 5)]
