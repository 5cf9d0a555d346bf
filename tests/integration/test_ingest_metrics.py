"""``towerwatch cloud ingest`` (workers without the API) serves its Prometheus metrics on
``ingest.metrics_listen``: each worker's connection and counters, and the ingest outbox
(real Mosquitto, SQLite)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud.db import migrate
from cloud.service import CloudError, CloudService
from cloud.settings import CloudSettings, IngestSettings, MqttSettings, TimeseriesSettings
from tests.integration.test_ingest import telemetry
from tests.servers.mosquitto import MosquittoServer
from towerwatch.contract import telemetry_topic

pytestmark = pytest.mark.integration


def _value(text: str, line_start: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.split()[-1])


async def test_cloud_ingest_serves_its_metrics(mosquitto: MosquittoServer,
                                               tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    migrate(url)
    settings = CloudSettings(
        database_url=url, mqtt=MqttSettings(url=mosquitto.url),
        timeseries=TimeseriesSettings(backend="sqlite", sqlite_path=tmp_path / "ts.db"),
        ingest=IngestSettings(batch_wait=0.05, metrics_listen="127.0.0.1:0"))
    service = CloudService(settings, workers=1, api=False)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, on_ready=lambda _s: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        assert service.metrics_port is not None and service.api_port is None
        metrics = f"http://127.0.0.1:{service.metrics_port}/metrics"
        connected = 'towerwatch_ingest_connected{worker="ingest-1"}'
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(metrics)).text
            deadline = time.monotonic() + 20
            while _value(text, connected) != 1.0:  # subscribed: what comes now is taken
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.1)
                text = (await client.get(metrics)).text
        async with aiomqtt.Client("127.0.0.1", int(mosquitto.url.rpartition(":")[2])) as pub:
            for seq in range(1, 6):
                await pub.publish(telemetry_topic("tower-a", "gw-1", "pump-1"),
                                  telemetry(seq, float(seq)), qos=1)
        received = 0.0
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=5) as client:
            while received < 5:
                assert time.monotonic() < deadline, f"received {received} of 5"
                await asyncio.sleep(0.1)
                text = (await client.get(metrics)).text
                received = _value(text, 'towerwatch_ingest_received_total{worker="ingest-1"}')
        assert _value(text, 'towerwatch_ingest_samples_total{worker="ingest-1"}') == 10.0
        assert _value(text, "towerwatch_pending_events ") == 0.0
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    with pytest.raises(httpx.ConnectError):  # the server went with the service
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(metrics)


def test_a_bad_metrics_address_is_named() -> None:
    with pytest.raises(ValueError, match="host:port"):
        IngestSettings(metrics_listen="127.0.0.1")


async def test_a_metrics_port_in_use_is_named(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    migrate(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = CloudSettings(
            database_url=url, mqtt=MqttSettings(url=mosquitto.url),
            timeseries=TimeseriesSettings(backend="sqlite", sqlite_path=tmp_path / "ts.db"),
            ingest=IngestSettings(metrics_listen=listen))
        with pytest.raises(CloudError, match=f"cannot serve metrics on {listen}"):
            await CloudService(settings, workers=1, api=False).run(asyncio.Event())
