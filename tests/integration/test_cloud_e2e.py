"""Simulator → edge gateway → Mosquitto → cloud on PostgreSQL + InfluxDB → the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cloud.db import Database, create_admin, create_user, grant_role, migrate, upsert_site
from cloud.service import CloudService, wait_ready
from cloud.settings import ApiSettings, CloudSettings, MqttSettings, TimeseriesSettings
from cloud.timeseries.latest_tables import LatestValue
from simulators.building import SimBuilding
from tests.integration.edge_rig import edge_config_file, running_gateway, start_building
from tests.servers.mosquitto import MosquittoServer

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


@pytest.fixture
async def building() -> AsyncIterator[SimBuilding]:
    sim = await start_building("127.0.33.0")
    try:
        yield sim
    finally:
        await sim.stop()


def _prepare(url: str) -> None:
    migrate(url)
    db = Database.from_url(url)
    try:
        with db.transaction() as session:
            create_admin(session, "admin", PASSWORD)
            upsert_site(session, "other-site", name="Other", timezone="Asia/Shanghai")
            viewer = create_user(session, "viewer", PASSWORD)
            grant_role(session, viewer, "viewer", "other-site")
    finally:
        db.dispose()


async def _token(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    reply = await client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


async def test_a_simulated_value_is_queryable_through_the_api(
        building: SimBuilding, mosquitto: MosquittoServer, postgres_db: Any, influx_db: Any,
        tmp_path: Path) -> None:
    await asyncio.to_thread(_prepare, postgres_db.sqlalchemy_url)
    settings = CloudSettings(
        database_url=postgres_db.sqlalchemy_url,
        timeseries=TimeseriesSettings(backend="influx", influx_url=influx_db.url,
                                      influx_database=influx_db.database),
        mqtt=MqttSettings(url=mosquitto.url), api=ApiSettings(listen="127.0.0.1:0"))
    service = CloudService(settings, workers=2)
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(stop, on_ready=lambda _s: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        assert await wait_ready(service)
        config = edge_config_file(building, tmp_path, mosquitto.url)
        async with running_gateway(config) as gateway, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{service.api_port}", timeout=10) as client:
            assert (await client.get("/api/v1/sites/demo-tower/devices")).status_code == 401
            admin = await _token(client, "admin")
            expected = building.values("booster")["pressure_setpoint"]
            value = None
            # Generous: one event loop carries the building, the gateway and the cloud;
            # on a loaded machine the first device connects (0.3 s timeout) can fail.
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                reply = await client.get("/api/v1/sites/demo-tower/devices/gw-1/booster",
                                         headers=admin)
                if reply.status_code == 200:
                    last = {p["id"]: p.get("last") for p in reply.json()["points"]}
                    # A device slow to answer at first is published stale (no value)
                    # until it answers: wait for the value itself.
                    point = last.get("pressure_setpoint") or {}
                    if point.get("value") is not None:
                        value = point["value"]
                        break
                await asyncio.sleep(0.3)
            if value is None:  # say where the value stopped
                store: Any = service.store
                direct = await store.latest_for_device("demo-tower", "gw-1", "booster")
                inner = await store.inner.latest_for_device("demo-tower", "gw-1", "booster")
                workers = [(w.name, w.link_up(), w.last_error, w.queue.qsize(), len(w.acks))
                           for w in service.workers]
                edge = [line for line in gateway.metrics.render()[0].decode().splitlines()
                        if line.startswith(("towerwatch_edge_messages_published",
                                            "towerwatch_edge_outbox_depth",
                                            "towerwatch_edge_mqtt_connected",
                                            'towerwatch_edge_device_online{device="booster"'))]
                pytest.fail(
                    f"no value through the API; edge: {edge}; "
                    f"workers (link up, last error, queued, acks "
                    f"waiting): {workers}; booster pressure_setpoint: "
                    f"{direct.get('pressure_setpoint')}; ingest: "
                    f"{[w.pipeline.stats for w in service.workers]}; index complete: "
                    f"{store._complete}; pending devices: {sorted(store._pending)}; "
                    f"store: {sorted(direct)}; InfluxDB: {sorted(inner)}; last reply: "
                    f"{reply.status_code} {reply.text[:800]}")
            assert value == pytest.approx(expected)
            devices = await client.get("/api/v1/sites/demo-tower/devices", headers=admin)
            assert {d["id"] for d in devices.json()} == set(building.devices)
            viewer = await _token(client, "viewer")
            refused = await client.get("/api/v1/sites/demo-tower/devices", headers=viewer)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "forbidden"
            sites = await client.get("/api/v1/sites", headers=viewer)
            assert [s["id"] for s in sites.json()] == ["other-site"]
            # /metrics shows the service's own ingest workers and the event outbox.
            exposition = (await client.get("/metrics")).text
            for worker in service.workers:
                assert f'towerwatch_ingest_connected{{worker="{worker.name}"}} 1.0' in exposition
            received = [line for line in exposition.splitlines()
                        if line.startswith("towerwatch_ingest_received_total{")]
            assert len(received) == 2 and sum(float(r.split()[-1]) for r in received) > 0
            assert "\ntowerwatch_pending_events " in exposition
        assert sum(w.pipeline.stats.samples for w in service.workers) > 0
        # With InfluxDB, latest values are served from the relational index ingest keeps.
        assert "latest-index-refresh" in [job.name for job in service.jobs]
        indexed = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not indexed:
            indexed = await service.db.run(lambda session: session.scalar(
                select(func.count()).select_from(LatestValue)
                .where(LatestValue.device_id == "booster")) or 0)
            await asyncio.sleep(0.2)
        assert indexed > 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
