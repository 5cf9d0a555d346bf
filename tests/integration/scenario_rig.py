"""The whole system for alarm and work-order scenarios: a simulated building, an edge
gateway polling it fast on real time, Mosquitto, and the cloud service (ingest workers,
alarm service with the work-order policy, periodic jobs, REST API) on a clock that tests
move by hand.

The cloud clock is a :class:`~simulators.clock.SimClock` running at real speed, so what
ingest stamps (real receive times) and what the alarm timers compare against stay on one
time line; :meth:`ScenarioRig.later` jumps it forward (an escalation due in 5 minutes is
reached in a millisecond) and runs the periodic jobs at the new time. The building has its
own manual clock: :meth:`ScenarioRig.fault` injects a fault and steps the building's time
until the device shows it.

Used by ``tests/integration/test_scenarios_*.py`` and by ``bench/alarm_latency.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.alarms.settings import AlarmSettings
from cloud.db import Database, create_admin, migrate, upsert_site
from cloud.service import CloudService, wait_ready
from cloud.settings import (
    ApiSettings,
    CloudSettings,
    IngestSettings,
    MqttSettings,
    TimeseriesSettings,
)
from simulators.building import SimBuilding
from simulators.clock import SimClock
from simulators.models.base import Value
from tests.cloud.alarms.support import RecordingNotifier
from tests.cloud.db.conftest import ENGINES
from tests.integration.edge_rig import MORNING, edge_config, running_building, running_gateway
from tests.servers.mosquitto import MosquittoServer
from towerwatch.contract import Birth, DeviceDescriptor, Event, encode, event_topic, status_topic
from towerwatch.demo.gateway_config import write_config

__all__ = ["ADMIN", "FAST_POLL", "PASSWORD", "SITE", "WORK_ORDER_JOB", "ScenarioRig",
           "running_cloud",
           "running_scenario", "wait_for"]

SITE: Final = "demo-tower"
ADMIN: Final = "admin"
PASSWORD: Final = "correct horse battery"
FAST_POLL: Final[Mapping[str, str]] = {"fast": "200ms", "normal": "500ms", "slow": "2s"}
"""Poll-group intervals of every device in the scenarios (the profiles say 1 s / 5 s / 60 s)."""
WORK_ORDER_JOB: Final = "work-orders"
"""The service's periodic job that generates due maintenance and records SLA breaches."""
T = TypeVar("T")


async def wait_for(probe: Callable[[], Awaitable[T | None]], *, limit: float = 20.0,
                   every: float = 0.05, what: str = "a condition") -> T:
    """The first truthy result of ``probe()``, polled every ``every`` s for ``limit`` s."""
    deadline = time.monotonic() + limit
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {limit}s waiting for {what} (last: {last!r})")


def database_url(request: pytest.FixtureRequest, folder: Path) -> str:
    """For a fixture parametrized with ``tests.cloud.db.conftest.ENGINES``: a SQLite file
    in ``folder`` or a fresh PostgreSQL database (the ``postgres_db`` fixture)."""
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'cloud.db'}"
    return str(request.getfixturevalue("postgres_db").sqlalchemy_url)


def prepare_database(url: str, *, site: str = SITE, timezone: str = "Asia/Shanghai") -> None:
    """Migrate, create the admin and the site (with its time zone, before any birth)."""
    migrate(url)
    db = Database.from_url(url)
    try:
        with db.transaction() as session:
            create_admin(session, ADMIN, PASSWORD)
            upsert_site(session, site, name="Demo Tower", timezone=timezone)
    finally:
        db.dispose()


@contextlib.asynccontextmanager
async def running_cloud(database_url: str, mqtt_url: str, folder: Path, *,
                        clock: Callable[[], float], workers: int = 2,
                        alarm_settings: AlarmSettings | None = None,
                        notifier: RecordingNotifier | None = None,
                        ingest: IngestSettings | None = None,
                        api: bool = True) -> AsyncIterator[CloudService]:
    """The cloud service as production wires it (work orders from alarms, maintenance
    coverage, the periodic jobs), with SQLite for the time series, a recording notifier,
    and ``clock`` for every job and the API."""
    settings = CloudSettings(
        database_url=database_url,
        timeseries=TimeseriesSettings(backend="sqlite", sqlite_path=folder / "ts.db"),
        mqtt=MqttSettings(url=mqtt_url), api=ApiSettings(listen="127.0.0.1:0"),
        ingest=ingest or IngestSettings())
    service = CloudService(settings, workers=workers, api=api,
                           alarm_settings=alarm_settings, notifier=notifier, clock=clock)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, on_ready=lambda _s: ready.set()),
                               name="cloud")
    try:
        done, _ = await asyncio.wait([task, asyncio.create_task(ready.wait())], timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert ready.is_set(), "the cloud service did not start within 30 s"
        assert await wait_ready(service), "the ingest workers did not connect"
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class ScenarioRig:
    building: SimBuilding
    cloud: CloudService
    clock: SimClock
    """The cloud's clock (real time plus the jumps of :meth:`later`)."""
    client: httpx.AsyncClient
    notifier: RecordingNotifier
    headers: dict[str, str] = field(default_factory=dict)
    site: str = SITE

    # -- the building ---------------------------------------------------------------------
    def step(self, seconds: float, *, every: float = 1.0) -> None:
        """Move the building's time on by ``seconds``, ticking every ``every`` s."""
        left = seconds
        while left > 0:
            span = min(every, left)
            self.building.clock.advance(span)
            self.building.tick()
            left -= span

    def fault(self, device: str, fault: str, args: Mapping[str, Any] | None = None, *,
              until: Callable[[Mapping[str, Value]], bool] | None = None,
              within: float = 600.0, every: float = 1.0) -> None:
        """Inject ``fault`` and step simulated time until ``until(values)`` holds."""
        self.building.inject(device, fault, dict(args or {}))
        self.settle(device, until, within=within, every=every)

    def repair(self, device: str, fault: str, args: Mapping[str, Any] | None = None, *,
               until: Callable[[Mapping[str, Value]], bool] | None = None,
               within: float = 600.0) -> None:
        self.building.clear(device, fault, dict(args or {}))
        self.settle(device, until, within=within)

    def settle(self, device: str, until: Callable[[Mapping[str, Value]], bool] | None, *,
               within: float, every: float = 1.0) -> None:
        waited = 0.0
        self.step(every, every=every)
        while until is not None and not until(self.building.values(device)):
            if waited >= within:
                raise AssertionError(f"{device} did not reach the expected state within "
                                     f"{within} simulated s: {self.building.values(device)}")
            self.step(every, every=every)
            waited += every

    # -- the cloud clock and jobs ---------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def run_job(self, name: str) -> Any:
        """Run the cloud's periodic job ``name`` once, at the cloud clock's now."""
        for job in self.cloud.jobs:
            if job.name == name:
                return await job.run(self.now_ms())
        raise KeyError(f"no periodic job {name!r}; jobs: {[j.name for j in self.cloud.jobs]}")

    async def later(self, seconds: float, *jobs: str) -> int:
        """Jump the cloud clock ``seconds`` on, run ``jobs`` (in order); the new now (ms)."""
        self.clock.advance(seconds)
        for name in jobs:
            await self.run_job(name)
        return self.now_ms()

    # -- the API --------------------------------------------------------------------------
    async def get(self, path: str, **params: Any) -> Any:
        reply = await self.client.get(path, params=params, headers=self.headers)
        assert reply.status_code == 200, f"GET {path} {params}: {reply.status_code} {reply.text}"
        return reply.json()

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, path, json=body, headers=self.headers)

    @property
    def base(self) -> str:
        return f"/api/v1/sites/{self.site}"

    async def alarms(self, **params: Any) -> list[dict[str, Any]]:
        """The site's alarm list as the API gives it (board order unless ``sort``)."""
        page = await self.get(f"{self.base}/alarms", **params)
        items = page["items"] if isinstance(page, dict) else page
        assert isinstance(items, list)
        return items

    async def alarm(self, device: str, name: str, *,
                    where: Callable[[dict[str, Any]], bool] = lambda _a: True,
                    limit: float = 20.0, **params: Any) -> dict[str, Any]:
        """Wait until the API lists the alarm ``(device, name)`` satisfying ``where``."""
        async def probe() -> dict[str, Any] | None:
            for item in await self.alarms(device=device, name=name, **params):
                if where(item):
                    return item
            return None

        return await wait_for(probe, limit=limit, what=f"alarm {device}/{name} via the API")

    async def work_orders(self, **params: Any) -> list[dict[str, Any]]:
        orders = await self.get(f"{self.base}/work-orders", **params)
        assert isinstance(orders, list)
        return orders

    async def work_order_of(self, alarm_id: int, *, limit: float = 20.0) -> dict[str, Any]:
        """Wait until the API links a work order to alarm ``alarm_id``; the newest."""
        async def probe() -> dict[str, Any] | None:
            orders = await self.get(f"{self.base}/alarms/{alarm_id}/work-orders")
            return orders[0] if orders else None

        return await wait_for(probe, limit=limit, what=f"a work order of alarm {alarm_id}")


async def login(client: httpx.AsyncClient, user: str = ADMIN,
                password: str = PASSWORD) -> dict[str, str]:
    reply = await client.post("/api/v1/auth/login", json={"username": user, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def scenario_edge_config(building: SimBuilding, folder: Path, mqtt_url: str, *,
                         only: Collection[str] | None = None,
                         poll: Mapping[str, str] = FAST_POLL) -> Path:
    """The edge config of :func:`~tests.integration.edge_rig.edge_config` with every
    device polled at ``poll``."""
    config = edge_config(building, folder, mqtt_url, only=only)
    for device in config["devices"]:
        device["poll"] = dict(poll)
    return write_config(config, folder / "edge.yaml")


@contextlib.asynccontextmanager
async def running_scenario(building: SimBuilding, database_url: str, mqtt_url: str,
                           folder: Path, *, only: Collection[str] | None = None,
                           workers: int = 2, alarm_settings: AlarmSettings | None = None,
                           poll: Mapping[str, str] = FAST_POLL) -> AsyncIterator[ScenarioRig]:
    """Cloud, API client (logged in as the admin) and edge gateway around ``building``;
    returns once the cloud has heard of every device the gateway polls."""
    await asyncio.to_thread(prepare_database, database_url)
    clock = SimClock(speed=1.0, timezone=building.site.timezone)
    notifier = RecordingNotifier()
    async with running_cloud(database_url, mqtt_url, folder, clock=clock.now, workers=workers,
                             alarm_settings=alarm_settings, notifier=notifier) as cloud:
        config = scenario_edge_config(building, folder, mqtt_url, only=only, poll=poll)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cloud.api_port}",
                                     timeout=20) as client, running_gateway(config):
            rig = ScenarioRig(building, cloud, clock, client, notifier,
                              headers=await login(client))
            wanted = set(only) if only is not None else set(building.devices)

            async def listed() -> bool:
                devices = await rig.get(f"{rig.base}/devices")
                return wanted <= {d["id"] for d in devices}

            await wait_for(listed, limit=30, what=f"devices {sorted(wanted)} in the API")
            yield rig


# -- synthetic alarm traffic (many gateways, duplicates): concurrency test and flood bench --
FLOOD_PROFILE: Final = "door-controller-modbus"
FLOOD_ALARMS: Final = ("door1_forced", "door2_forced", "door3_forced", "door4_forced",
                       "cabinet_tamper")
"""Alarms of :data:`FLOOD_PROFILE` with no on-delay: five per device."""


def flood_boot_id(gateway: int) -> str:
    return str(uuid.UUID(int=random.Random(f"flood-{gateway}").getrandbits(128)))


def flood_births(site: str, gateways: int, devices: int, ts_ms: int) -> list[tuple[str, bytes]]:
    """Retained births announcing ``devices`` door controllers per gateway ``gw-NNN``."""
    return [(status_topic(site, f"gw-{g:03d}"), encode(Birth(
        boot_id=flood_boot_id(g), version="flood", ts=ts_ms,
        devices=[DeviceDescriptor(id=f"door-{d:03d}", profile=FLOOD_PROFILE)
                 for d in range(devices)])))
        for g in range(gateways)]


def flood_events(site: str, gateways: int, devices: int, ts_ms: int, *,
                 repeats: int = 1) -> list[list[tuple[str, bytes]]]:
    """Per gateway, in seq order: every (device, alarm) raised ``repeats`` times (each a
    new seq and event id: a chattering edge or an edge replaying after a restart)."""
    out: list[list[tuple[str, bytes]]] = []
    for g in range(gateways):
        items: list[tuple[str, bytes]] = []
        for _round in range(repeats):
            for d in range(devices):
                for name in FLOOD_ALARMS:
                    seq = len(items) + 1
                    device = f"door-{d:03d}"
                    payload = Event(seq=seq, boot_id=flood_boot_id(g), ts=ts_ms + seq,
                                    event_id=f"{device}:{seq}", kind="alarm", name=name,
                                    state="active", severity="high")
                    items.append((event_topic(site, f"gw-{g:03d}", device), encode(payload)))
        out.append(items)
    return out


def publish(host: str, port: int, messages: list[tuple[str, bytes]], *, retain: bool = False,
            pace: float = 0.0, client_id: str | None = None) -> list[float]:
    """Publish with QoS 1 and wait for every PUBACK; ``pace`` s between messages. Returns
    the time (``time.time()``) each message was handed to the broker."""
    client = paho.Client(CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"flood-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(host, port, 30)
    client.loop_start()
    sent: list[float] = []
    try:
        infos = []
        start = time.monotonic()
        for n, (topic, payload) in enumerate(messages):
            if pace:
                delay = start + n * pace - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent.append(time.time())
            infos.append(client.publish(topic, payload, qos=1, retain=retain))
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


def scenario_fixtures(bacnet_network: str, devices: Collection[str], *,
                      start: float = MORNING) -> tuple[Any, Any]:
    """A scenario module's ``building`` and ``rig`` fixtures: the example building on
    ``bacnet_network`` from ``start`` (simulated time), and the rig over ``devices``, once
    per database engine. Use as ``building, rig = scenario_fixtures(...)``."""

    @pytest.fixture
    async def building() -> AsyncIterator[SimBuilding]:
        async with running_building(bacnet_network, start=start) as sim:
            yield sim

    @pytest.fixture(params=ENGINES)
    async def rig(request: pytest.FixtureRequest, building: SimBuilding,
                  mosquitto: MosquittoServer, tmp_path: Path) -> AsyncIterator[ScenarioRig]:
        url = database_url(request, tmp_path)
        async with running_scenario(building, url, mosquitto.url, tmp_path,
                                    only=list(devices)) as scenario:
            yield scenario

    return building, rig
