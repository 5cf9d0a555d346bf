"""Ingest acknowledges a QoS 1 message only once it is on record (real Mosquitto).

A worker in a child process is SIGKILLed while a batch is being written; a new worker
with the same client id takes over the persistent session, the broker delivers what
the dead one had not acknowledged, and every message is stored exactly once.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import func, select

from cloud.db import Database, migrate
from cloud.db.models import SeenMessage
from cloud.ingest.pipeline import IngestPipeline, LogEventSink
from cloud.ingest.worker import IngestWorker
from cloud.settings import IngestSettings, MqttSettings
from cloud.timeseries import SqliteStore
from cloud.timeseries.base import Sample
from tests.servers.mosquitto import MosquittoServer
from towerwatch.contract import Telemetry, encode, telemetry_topic

pytestmark = pytest.mark.integration
SITE, GW, BOOT = "tower-a", "gw-1", "boot-0001-aaaa"
MESSAGES = 400
POINTS = 2
BATCH = 50
CLIENT_ID = "tw-ack-test"


class SlowStore(SqliteStore):
    """A time-series store that takes its time, says when a write is under way, and
    hangs from the second batch on (so the kill lands mid-write, deterministically)."""

    def __init__(self, path: Path, state: Any, delay: float) -> None:
        super().__init__(path)
        self.state, self.delay = state, delay

    async def write(self, samples: Sequence[Sample]) -> None:
        self.state["writing"].value = 1
        if self.state["written"].value >= 1:
            await asyncio.Event().wait()  # stuck after the first batch, until killed
        await asyncio.sleep(self.delay)
        await super().write(samples)
        self.state["writing"].value = 0
        self.state["written"].value += 1


def _child(db_url: str, ts_path: str, mqtt_url: str, state: Any) -> None:
    """The first worker (a process of its own, so that it can be SIGKILLed)."""

    async def main() -> None:
        db = Database.from_url(db_url)
        store = SlowStore(Path(ts_path), state, 0.3)
        worker = _worker(mqtt_url, IngestPipeline(db, store, LogEventSink()))
        task = asyncio.create_task(worker.run())
        while True:
            state["connected"].value = int(worker.connected)
            if task.done():
                task.result()
            await asyncio.sleep(0.02)

    asyncio.run(main())


def _worker(mqtt_url: str, pipeline: IngestPipeline) -> IngestWorker:
    return IngestWorker(MqttSettings(url=mqtt_url, client_id=CLIENT_ID),
                        IngestSettings(batch_size=BATCH, batch_wait=0.05), pipeline,
                        name="ingest-1")


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cloud.db'}"
    else:
        url = request.getfixturevalue("postgres_db").sqlalchemy_url
    migrate(url)
    return url


def telemetry(seq: int) -> bytes:
    return encode(Telemetry(seq=seq, boot_id=BOOT, ts=1_800_000_000_000 + seq * 1000,
                            values={"pressure": seq / 1000, "running": seq % 2 == 0},
                            quality={"pressure": "good", "running": "good"}))


async def publish_burst(broker: MosquittoServer) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="gw-burst") as gw:
        topic = telemetry_topic(SITE, GW, "pump")
        await asyncio.gather(*(gw.publish(topic, telemetry(seq), qos=1)
                               for seq in range(1, MESSAGES + 1)))


def stored_samples(ts_path: Path) -> int:
    if not ts_path.exists():
        return 0
    with sqlite3.connect(ts_path) as conn:
        return int(conn.execute("SELECT count(*) FROM samples").fetchone()[0])


def claimed(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(SeenMessage)) or 0)


async def until(predicate: Callable[[], bool], limit: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_batch_loses_nothing(
        mosquitto: MosquittoServer, db_url: str, tmp_path: Path) -> None:
    ts_path = tmp_path / "ts.db"
    ctx = mp.get_context("spawn")
    state = {"connected": ctx.Value("i", 0), "writing": ctx.Value("i", 0),
             "written": ctx.Value("i", 0)}
    child = ctx.Process(target=_child, args=(db_url, str(ts_path), mosquitto.url, state),
                        daemon=True)
    child.start()
    db = Database.from_url(db_url)
    try:
        await until(lambda: bool(state["connected"].value), what="the first worker")
        await asyncio.sleep(0.3)  # its subscription settles
        await publish_burst(mosquitto)
        # Killed while a batch is being written, after at least one batch was stored and
        # once messages are claimed whose samples are not stored yet (so not acknowledged
        # either: the broker must deliver them again, and the claims must drop them).
        await until(lambda: state["written"].value >= 1 and bool(state["writing"].value)
                    and claimed(db) * POINTS > stored_samples(ts_path),
                    what="a batch claimed and in progress")
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        before = stored_samples(ts_path)
        assert before < MESSAGES * POINTS, "the burst was stored before the kill"

        store = SqliteStore(ts_path)
        pipeline = IngestPipeline(db, store, LogEventSink())
        worker = _worker(mosquitto.url, pipeline)
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: stored_samples(ts_path) >= MESSAGES * POINTS,
                        what="every message stored")
            await until(lambda: len(worker.acks) == 0, what="every message acknowledged")
            await asyncio.sleep(0.5)  # nothing more arrives
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await store.close()
        assert stored_samples(ts_path) == MESSAGES * POINTS
        assert claimed(db) == MESSAGES
        # What the dead worker had claimed but not acknowledged came again and was dropped.
        assert pipeline.stats.duplicates >= 1
    finally:
        if child.is_alive():
            child.kill()
        db.dispose()
