"""A simulated building, a real Mosquitto and an edge gateway, wired for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from device_profiles.loader import load_profiles
from edge.daemon import Gateway
from edge.loading import load_config
from simulators.building import SimBuilding
from simulators.clock import SimClock
from simulators.site import load_site, with_overrides
from towerwatch.demo.gateway_config import gateway_config, write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "simulators" / "sites" / "example.yaml"
MORNING = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool
    at: float


@dataclass
class Collector:
    """Every message under ``tw/v1/#``, as the cloud would see them."""

    messages: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str, device: str | None = None) -> list[Received]:
        found = []
        for m in self.messages:
            parts = m.topic.split("/")
            status = kind == "status" and len(parts) == 5 and parts[4] == "status"
            other = len(parts) > 5 and parts[4] == kind and device in (None, parts[5])
            if status or other:
                found.append(m)
        return found

    async def wait_for(self, predicate: Callable[[], Any], limit: float = 15.0) -> Any:
        deadline = time.monotonic() + limit
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {limit}s waiting for {predicate}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))

    def latest_values(self, device: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for m in self.of("telemetry", device):
            values.update(m.payload["values"])
        return values

    def latest_quality(self, device: str) -> dict[str, str]:
        quality: dict[str, str] = {}
        for m in self.of("telemetry", device):
            quality.update({k: m.payload["quality"].get(k, "good") for k in m.payload["values"]})
        return quality

    def alarms(self, device: str, name: str) -> list[str]:
        return [m.payload["state"] for m in self.of("event", device)
                if m.payload["kind"] == "alarm" and m.payload["name"] == name]


@contextlib.asynccontextmanager
async def collect(host: str, port: int, topic: str = "tw/v1/#",
                  **client_args: Any) -> AsyncIterator[Collector]:
    collector = Collector()
    async with aiomqtt.Client(host, port, identifier=f"collector-{time.monotonic_ns()}",
                              **client_args) as client:
        await client.subscribe(topic, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                collector.messages.append(Received(
                    str(message.topic), json.loads(payload) if payload else {},
                    bool(message.retain), time.monotonic()))
                collector.changed.set()

        task = asyncio.create_task(pump())
        try:
            yield collector
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def start_building(bacnet_network: str, *, start: float = MORNING) -> SimBuilding:
    site, raw = load_site(EXAMPLE)
    site = with_overrides(site, base_port=0, bacnet_network=bacnet_network)
    building = SimBuilding(site, load_profiles(),
                           clock=SimClock(start=start, speed=0, timezone=site.timezone),
                           site_raw=raw)
    await building.start()
    building.clock.advance(5)
    building.tick()
    return building


def edge_config_file(building: SimBuilding, folder: Path, mqtt_url: str,
                     **extra: Any) -> Path:
    config = gateway_config(building.served(), site=building.site.site, gateway="gw-1",
                            mqtt_url=mqtt_url, outbox=folder / "outbox.db",
                            bacnet_bind=f"127.0.0.1/8:{free_udp_port()}", timeout=0.3,
                            **extra)
    return write_config(config, folder / "edge.yaml")


@contextlib.asynccontextmanager
async def running_gateway(config_path: Path) -> AsyncIterator[Gateway]:
    gateway = Gateway(load_config(config_path))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="gateway")
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
