"""The whole system in one process on embedded defaults.

The example building (simulators) → an edge gateway → an MQTT broker (amqtt,
in-process, unless ``--mqtt-url``) → the cloud (SQLite, unless ``--database-url`` /
``--influx-url``) with its API. Every port falls back to a free one when taken, and
the demo says which. Ctrl-C stops everything in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    site: Path
    scenario: Path | None
    speed: float = 1.0
    seed: int = 0
    mqtt_url: str | None = None
    database_url: str | None = None
    influx_url: str | None = None
    api_port: int = 8080
    broker_port: int = 11883
    edge_port: int = 9105
    base_port: int = 15020
    bacnet_network: str = "127.0.1.0"
    workdir: Path | None = None


def free_port(host: str, wanted: int, kind: int = socket.SOCK_STREAM) -> int:
    """``wanted`` when it is free, else any free port."""
    for port in (wanted, 0):
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            got: int = probe.getsockname()[1]
            return got
    raise OSError(f"no free port on {host}")


async def start_broker(port: int) -> Any:
    from amqtt.broker import Broker

    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                    {"allow_anonymous": True}},
    })
    await broker.start()
    return broker


@dataclass
class DemoReady:
    api_url: str
    edge_url: str
    broker_url: str
    username: str
    password: str
    devices: int
    workdir: Path


async def run_demo(options: DemoOptions, stop: asyncio.Event,
                   on_ready: Any = None) -> None:
    from cloud.db import Database, create_admin, migrate
    from cloud.db.errors import UserExists
    from cloud.db.users import get_user, set_password
    from cloud.service import CloudService
    from cloud.settings import ApiSettings, CloudSettings, MqttSettings, TimeseriesSettings
    from device_profiles.loader import load_profiles
    from edge.daemon import Gateway
    from edge.loading import load_config
    from simulators.building import SimBuilding
    from simulators.clock import SimClock
    from simulators.scenario import load_scenario
    from simulators.site import load_site, with_overrides
    from towerwatch.demo.gateway_config import gateway_config, write_config

    with contextlib.ExitStack() as stack:
        work = options.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="towerwatch-demo-")))
        broker = None
        edge_mqtt: dict[str, Any] = {}
        if options.mqtt_url is None:
            port = free_port("127.0.0.1", options.broker_port)
            broker = await start_broker(port)
            mqtt_url = f"mqtt://127.0.0.1:{port}"
            # amqtt speaks MQTT 3.1.1 only, and stalls on a v5 CONNECT carrying a will.
            edge_mqtt = {"protocol": "3.1.1"}
            logging.getLogger("amqtt").setLevel(logging.ERROR)
        else:
            mqtt_url = options.mqtt_url
        os.environ.setdefault("TW_API_SECRET", secrets.token_urlsafe(48))
        site, raw = load_site(options.site)
        site = with_overrides(site, base_port=options.base_port,
                              bacnet_network=options.bacnet_network)
        scenario, scenario_raw = (load_scenario(options.scenario) if options.scenario
                                  else (None, None))
        profiles = load_profiles()
        building = SimBuilding(site, profiles, scenario=scenario, seed=options.seed,
                               clock=SimClock(speed=options.speed, timezone=site.timezone),
                               site_raw=raw, scenario_raw=scenario_raw)
        await building.start()
        sim_stop = asyncio.Event()
        sim_task = asyncio.create_task(building.run(sim_stop), name="simulator")

        database_url = options.database_url or f"sqlite:///{work / 'cloud.db'}"
        timeseries = (TimeseriesSettings(backend="influx", influx_url=options.influx_url)
                      if options.influx_url else
                      TimeseriesSettings(backend="sqlite", sqlite_path=work / "timeseries.db"))
        api_port = free_port("127.0.0.1", options.api_port)
        settings = CloudSettings(database_url=database_url, timeseries=timeseries,
                                 mqtt=MqttSettings(url=mqtt_url),
                                 api=ApiSettings(listen=f"127.0.0.1:{api_port}"))
        await asyncio.to_thread(migrate, database_url)
        password = secrets.token_urlsafe(12)
        db = Database.from_url(database_url)
        try:
            with db.transaction() as session:
                try:
                    create_admin(session, "demo", password)
                except UserExists:
                    set_password(session, get_user(session, "demo"), password)
        finally:
            db.dispose()
        cloud = CloudService(settings, profiles=profiles)
        cloud_stop = asyncio.Event()
        cloud_ready = asyncio.Event()
        cloud_task = asyncio.create_task(
            cloud.run(cloud_stop, on_ready=lambda _svc: cloud_ready.set()), name="cloud")

        edge_port = free_port("127.0.0.1", options.edge_port)
        bacnet_port = free_port("127.0.0.1", 47809, socket.SOCK_DGRAM)
        config = gateway_config(building.served(), site=site.site, gateway="gw-1",
                                mqtt_url=mqtt_url, outbox=work / "outbox.db",
                                http_listen=f"127.0.0.1:{edge_port}",
                                bacnet_bind=f"127.0.0.1/8:{bacnet_port}",
                                extra_mqtt=edge_mqtt)
        gateway = Gateway(load_config(write_config(config, work / "edge.yaml")))
        edge_stop = asyncio.Event()
        edge_task = asyncio.create_task(gateway.run(edge_stop), name="edge")
        try:
            waiter = asyncio.create_task(cloud_ready.wait())
            done, _ = await asyncio.wait({waiter, cloud_task},
                                         return_when=asyncio.FIRST_COMPLETED)
            if cloud_task in done:
                waiter.cancel()
                cloud_task.result()
            if on_ready is not None:
                on_ready(DemoReady(f"http://127.0.0.1:{cloud.api_port}",
                                   f"http://127.0.0.1:{gateway.http.port}", mqtt_url, "demo",
                                   password, len(building.devices), work))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({stopper, cloud_task, edge_task, sim_task},
                               return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
        finally:
            edge_stop.set()
            await asyncio.gather(edge_task, return_exceptions=True)
            cloud_stop.set()
            await asyncio.gather(cloud_task, return_exceptions=True)
            sim_stop.set()
            await asyncio.gather(sim_task, return_exceptions=True)
            await building.stop()
            if broker is not None:
                await broker.shutdown()
        for task in (edge_task, cloud_task, sim_task):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
