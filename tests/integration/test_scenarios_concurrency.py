"""Two ingest workers on one shared subscription and a burst of duplicate alarm events
(repeats with new seqs, and exact redeliveries of the same seqs) never open two alarms,
nor two work orders, for one (site, device, alarm): PostgreSQL decides, through the API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud.alarms.tables import Alarm
from cloud.workorders.tables import WorkOrder
from tests.integration.scenario_rig import (
    FLOOD_ALARMS,
    SITE,
    flood_births,
    flood_events,
    login,
    prepare_database,
    publish,
    running_cloud,
    wait_for,
)
from tests.servers.mosquitto import MosquittoServer

pytestmark = pytest.mark.integration
GATEWAYS, DEVICES, REPEATS = 4, 10, 3


async def test_a_duplicate_burst_on_two_workers_opens_one_alarm_per_key(
        mosquitto: MosquittoServer, postgres_db: Any, tmp_path: Path) -> None:
    import httpx

    url = postgres_db.sqlalchemy_url
    await asyncio.to_thread(prepare_database, url)
    now = int(time.time() * 1000)
    births = flood_births(SITE, GATEWAYS, DEVICES, now)
    per_gateway = flood_events(SITE, GATEWAYS, DEVICES, now, repeats=REPEATS)
    burst = [m for items in per_gateway for m in items]
    async with running_cloud(url, mosquitto.url, tmp_path, clock=time.time) as cloud, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{cloud.api_port}",
                              timeout=20) as client:
        headers = await login(client)
        await asyncio.to_thread(publish, mosquitto.host, mosquitto.port, births, retain=True)

        async def devices_known() -> bool:
            reply = await client.get(f"/api/v1/sites/{SITE}/devices", headers=headers)
            return reply.status_code == 200 and len(reply.json()) == GATEWAYS * DEVICES

        await wait_for(devices_known, what="every flood device in the registry")
        # the same burst from two publishers at once: every message twice, same seq
        await asyncio.gather(*(asyncio.to_thread(publish, mosquitto.host, mosquitto.port,
                                                 burst) for _ in range(2)))
        keys = GATEWAYS * DEVICES * len(FLOOD_ALARMS)

        async def all_handled() -> bool:
            handled = sum(w.pipeline.stats.events + w.pipeline.stats.duplicates
                          for w in cloud.workers)
            return handled >= 2 * len(burst)

        await wait_for(all_handled, limit=60, what="every event handled by the workers")
        assert all(w.pipeline.stats.events > 0 for w in cloud.workers), \
            "both workers must have taken part"

        async def board() -> dict[str, Any] | None:
            reply = await client.get(f"/api/v1/sites/{SITE}/alarms",
                                     params={"limit": 500}, headers=headers)
            page: dict[str, Any] = reply.json()
            return page if page["total"] >= keys else None

        page = await wait_for(board, limit=60, every=0.5, what=f"{keys} alarms on the board")
        assert page["total"] == keys
        assert cloud.sink.failed == 0  # type: ignore[attr-defined]
        seen = {(a["gateway"], a["device"], a["name"]) for a in page["items"]}
        assert len(seen) == keys
        assert all(a["occurrences"] == 1 and a["state"] == "unack_active" for a in page["items"])
        with cloud.db.transaction() as session:
            doubled_alarms = session.execute(
                select(Alarm.gateway_id, Alarm.device_id, Alarm.name, func.count())
                .where(Alarm.closed_ms.is_(None))
                .group_by(Alarm.gateway_id, Alarm.device_id, Alarm.name)
                .having(func.count() > 1)).all()
            orders = session.execute(
                select(WorkOrder.open_key, func.count()).where(WorkOrder.open_key.is_not(None))
                .group_by(WorkOrder.open_key)).all()
        assert doubled_alarms == []
        assert len(orders) == keys and all(n == 1 for _key, n in orders)
