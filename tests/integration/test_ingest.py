"""Cloud ingest from a real Mosquitto into PostgreSQL + InfluxDB (and SQLite + SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from cloud.db import Database, list_dead_letters, list_gateways, migrate
from cloud.ingest.pipeline import IngestedEvent, IngestPipeline
from cloud.ingest.worker import IngestWorker
from cloud.settings import IngestSettings, MqttSettings
from cloud.timeseries import SeriesKey, SqliteStore, TimeSeriesStore
from cloud.timeseries.influx import InfluxStore
from tests.servers.mosquitto import MosquittoServer
from towerwatch.contract import (
    Birth,
    DeviceDescriptor,
    Event,
    Telemetry,
    encode,
    event_topic,
    status_topic,
    telemetry_topic,
)

pytestmark = pytest.mark.integration
SITE, GW, BOOT = "tower-a", "gw-1", "boot-0001-aaaa"


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[IngestedEvent] = []

    async def handle(self, events: Sequence[IngestedEvent]) -> None:
        self.events.extend(events)


@dataclass
class Backend:
    db: Database
    store: TimeSeriesStore


@pytest.fixture(params=["postgres+influx", "sqlite+sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres+influx":
        pg = request.getfixturevalue("postgres_db")
        influx = request.getfixturevalue("influx_db")
        url = pg.sqlalchemy_url
        store: TimeSeriesStore = InfluxStore(influx.url, database=influx.database)
    else:
        url = f"sqlite:///{tmp_path / 'cloud.db'}"
        store = SqliteStore(tmp_path / "ts.db")
    migrate(url)
    db = Database.from_url(url)
    try:
        yield Backend(db, store)
    finally:
        db.dispose()


@contextlib.asynccontextmanager
async def workers(broker: MosquittoServer, backend: Backend, count: int,
                  sink: RecordingSink) -> AsyncIterator[list[IngestWorker]]:
    mqtt = MqttSettings(url=broker.url)
    running = []
    for n in range(count):
        pipeline = IngestPipeline(backend.db, backend.store, sink)
        running.append(IngestWorker(mqtt, IngestSettings(batch_size=500, batch_wait=0.05),
                                    pipeline, name=f"ingest-{n + 1}"))
    tasks = [asyncio.create_task(w.run()) for w in running]
    deadline = time.monotonic() + 10
    while not all(w.connected for w in running):
        assert time.monotonic() < deadline, "workers did not connect"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # subscriptions settle
    try:
        yield running
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await backend.store.close()


def telemetry(seq: int, value: float) -> bytes:
    return encode(Telemetry(seq=seq, boot_id=BOOT, ts=1_800_000_000_000 + seq * 1000,
                            values={"pressure": value, "running": True},
                            quality={"pressure": "good", "running": "good"}))


async def until(predicate: Callable[[], bool], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_ingest_stores_dedupes_and_dead_letters(
        mosquitto: MosquittoServer, backend: Backend) -> None:
    sink = RecordingSink()
    async with workers(mosquitto, backend, 1, sink) as (worker,), \
            aiomqtt.Client(mosquitto.host, mosquitto.port) as gw:
        birth = Birth(state="online", boot_id=BOOT, version="t", ts=1_800_000_000_000,
                      devices=[DeviceDescriptor(id="pump", profile="booster-pumpset-modbus")])
        await gw.publish(status_topic(SITE, GW), encode(birth), qos=1, retain=True)
        topic = telemetry_topic(SITE, GW, "pump")
        for seq in range(1, 11):
            await gw.publish(topic, telemetry(seq, 0.3 + seq / 100), qos=1)
        await gw.publish(topic, telemetry(5, 0.35), qos=1)  # an exact redelivery
        await gw.publish(topic, b'{"seq": "one"}', qos=1)  # malformed
        event = Event(seq=11, boot_id=BOOT, ts=1_800_000_011_000, event_id="pump:11",
                      kind="alarm", name="pump1_tripped", state="active", severity="medium",
                      value=True, detail={})
        await gw.publish(event_topic(SITE, GW, "pump"), encode(event), qos=1)
        await gw.publish(event_topic(SITE, GW, "pump"), encode(event), qos=1)  # again
        await until(lambda: worker.pipeline.stats.received >= 15)  # all 15 published
        stats = worker.pipeline.stats
        assert stats.duplicates == 2
        assert stats.dead_letters == 1
        assert stats.samples == 20
        assert [e.event.name for e in sink.events] == ["pump1_tripped"]
        latest = await backend.store.latest_for_device(SITE, GW, "pump")
        assert latest["pressure"].value == pytest.approx(0.40)
        assert latest["running"].value is True
        with backend.db.transaction() as session:
            letters = list_dead_letters(session)
            gateways = list_gateways(session, SITE)
        assert len(letters) == 1
        assert "seq" in letters[0].reason
        assert gateways[0].online
        assert gateways[0].boot_id == BOOT


async def test_two_workers_share_the_load_without_loss_or_duplicates(
        mosquitto: MosquittoServer, backend: Backend) -> None:
    sink = RecordingSink()
    async with workers(mosquitto, backend, 2, sink) as pair, \
            aiomqtt.Client(mosquitto.host, mosquitto.port) as gw:
        topic = telemetry_topic(SITE, GW, "pump")
        total = 600
        for seq in range(1, total + 1):
            await gw.publish(topic, telemetry(seq, seq / 1000), qos=1)
        for seq in range(1, 51):  # a burst of redeliveries
            await gw.publish(topic, telemetry(seq, seq / 1000), qos=1)
        await until(lambda: sum(w.pipeline.stats.received for w in pair) >= total + 50)
        assert all(w.shared for w in pair)
        assert all(w.pipeline.stats.received > 0 for w in pair)  # the broker split the load
        stored = sum(w.pipeline.stats.samples for w in pair)
        assert stored == total * 2
        assert sum(w.pipeline.stats.duplicates for w in pair) == 50
        series = await backend.store.raw(
            _series("pressure"), 1_800_000_000_000, 1_800_001_000_000, limit=10_000)
        assert len(series) == total


def _series(point: str) -> SeriesKey:
    return SeriesKey(SITE, GW, "pump", point)
