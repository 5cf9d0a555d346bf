"""The Server-Sent Events stream over a real socket (uvicorn on a free loopback port): a
change arrives, heartbeats flow, streams are scoped to the user's sites,
``Last-Event-ID`` resumes, and a change committed in this process is sent at once rather
than at the next poll."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import cloud.alarms.stream as alarm_stream
from cloud.alarms import AlarmService, AlarmSpec
from cloud.db import Database
from cloud.notify.base import LogNotifier
from tests.cloud.api.support import T0_MS, FakeClock, bearer, login
from tests.servers.ports import free_port


@pytest.fixture
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
def alarms(app: FastAPI, clock: FakeClock) -> AlarmService:
    service = AlarmService(clock=clock, notifier=LogNotifier())
    app.state.alarms = service
    return service


def raise_in(database: Database, service: AlarmService, site: str, name: str) -> int:
    gateway, device = ("gw1", "pump-1") if site == "alpha" else ("gw9", "meter-1")
    with database.transaction() as session:
        return service.raise_(session, AlarmSpec(site, gateway, device, name, "edge", "high",
                                                 "water", "en", "中文"), T0_MS).id


async def read_events(response: httpx.Response, wanted: int,
                      comments: list[str] | None = None) -> list[dict[str, Any]]:
    """The next ``wanted`` events of an SSE response (each as its fields)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":") and comments is not None:
            comments.append(line)
        elif line.startswith(("id:", "event:", "data:")):
            key, _, value = line.partition(":")
            current[key] = value.strip()
        elif line == "" and current:
            if "data" in current:
                current["data"] = json.loads(current["data"])
                events.append(current)
            current = {}
            if len(events) >= wanted:
                return events
    raise AssertionError("the stream ended")


async def test_a_change_arrives_with_heartbeats_and_only_from_the_users_sites(
        base_url: str, database: Database, alarms: AlarmService) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        token = await login(http, "viewer-a")
        comments: list[str] = []
        async with http.stream("GET", "/api/v1/sites/-/alarms/stream",
                               params={"heartbeat": 0.2}, headers=bearer(token)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")

            async def raise_later() -> None:
                await asyncio.sleep(1.2)  # after a keepalive or two
                await asyncio.to_thread(raise_in, database, alarms, "beta", "meter_offline")
                await asyncio.to_thread(raise_in, database, alarms, "alpha", "pump1_tripped")

            task = asyncio.create_task(raise_later())
            events = await asyncio.wait_for(read_events(response, 1, comments), 15)
            await task
        assert events[0]["event"] == "alarm"
        data = events[0]["data"]
        assert (data["change"], data["alarm"]["site"], data["alarm"]["name"]) == (
            "raised", "alpha", "pump1_tripped")
        assert any(c.startswith(": keepalive") for c in comments)


async def test_last_event_id_resumes_and_a_foreign_site_is_refused(
        base_url: str, database: Database, alarms: AlarmService) -> None:
    first = raise_in(database, alarms, "alpha", "pump1_tripped")
    with database.transaction() as session:
        alarms.acknowledge(session, first, site="alpha", user="engineer-a", comment=None,
                           now_ms=T0_MS + 1000)
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        token = await login(http, "viewer-a")
        async with http.stream("GET", "/api/v1/sites/alpha/alarms/stream",
                               headers={**bearer(token), "Last-Event-ID": "0"}) as response:
            events = await asyncio.wait_for(read_events(response, 2), 15)
        assert [(e["id"], e["data"]["change"]) for e in events] == [
            ("1", "raised"), ("2", "acknowledged")]
        async with http.stream("GET", "/api/v1/sites/alpha/alarms/stream",
                               headers={**bearer(token), "Last-Event-ID": "1"}) as response:
            events = await asyncio.wait_for(read_events(response, 1), 15)
        assert events[0]["id"] == "2"
        refused = await http.get("/api/v1/sites/beta/alarms/stream", headers=bearer(token))
        assert refused.status_code == 403
        anonymous = await http.get("/api/v1/sites/alpha/alarms/stream")
        assert anonymous.status_code == 401
        bad = await http.get("/api/v1/sites/alpha/alarms/stream",
                             headers={**bearer(token), "Last-Event-ID": "x"})
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["path"] == "header.last-event-id"


async def test_an_in_process_change_is_sent_at_once_not_at_the_next_poll(
        base_url: str, database: Database, alarms: AlarmService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alarm_stream, "POLL", 60.0)  # only the commit's wake can be in time
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        token = await login(http, "viewer-a")
        async with http.stream("GET", "/api/v1/sites/alpha/alarms/stream",
                               params={"heartbeat": 60}, headers=bearer(token)) as response:
            comments: list[str] = []
            reading = asyncio.ensure_future(read_events(response, 1, comments))
            while not comments:  # the opening comment: the stream has begun
                assert not reading.done(), "the stream ended before it began"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # its first read is done; it waits
            started = time.monotonic()
            await asyncio.to_thread(raise_in, database, alarms, "alpha", "pump1_tripped")
            events = await asyncio.wait_for(reading, 30)
            elapsed = time.monotonic() - started
    assert events[0]["data"]["alarm"]["name"] == "pump1_tripped"
    assert elapsed < 30 < alarm_stream.POLL
