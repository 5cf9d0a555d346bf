"""A simulated building, a real Mosquitto and an edge gateway, wired for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.loader import ProfileSet, load_profiles
from edge.daemon import Gateway, run_gateway
from edge.loading import load_config
from simulators.building import SimBuilding
from simulators.clock import SimClock
from simulators.site import load_site, with_overrides
from tests.servers.ports import free_udp_port
from towerwatch.demo.gateway_config import gateway_config, write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "simulators" / "sites" / "example.yaml"
MORNING = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


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


def badge(building: SimBuilding, credential: int) -> None:
    """One granted card at door 1 of the lobby door controller."""
    building.inject("door-lobby", "badge", {"door": 1, "credential": credential,
                                            "granted": True})
    building.tick()


def access_events(seen: Collector) -> list[dict[str, Any]]:
    """Access events, exact redeliveries of one (boot_id, seq) removed."""
    unique: dict[tuple[str, int], dict[str, Any]] = {}
    for m in seen.of("event", "door-lobby"):
        if m.payload["kind"] == "access":
            unique.setdefault((m.payload["boot_id"], m.payload["seq"]), m.payload)
    return list(unique.values())


def credentials(seen: Collector) -> list[int]:
    return [int(e["detail"]["credential"]) for e in access_events(seen)]


@contextlib.asynccontextmanager
async def traffic(building: SimBuilding, badges: list[int] | None = None, *, first: int = 1000,
                  every: float = 0.05, step: float = 10.0) -> AsyncIterator[list[int]]:
    """People badging in at the lobby door: every ``every`` s one more card (appended to
    the list yielded), and the simulated clock ``step`` seconds on (values change)."""
    made = [] if badges is None else badges

    async def run() -> None:
        while True:
            building.clock.advance(step)
            credential = first + len(made)
            badge(building, credential)
            made.append(credential)
            await asyncio.sleep(every)

    task = asyncio.create_task(run(), name="sim-traffic")
    try:
        yield made
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def start_building(bacnet_network: str, *, start: float = MORNING, warm: float = 5.0,
                         profiles: ProfileSet | None = None) -> SimBuilding:
    """The example building on free Modbus ports and BACnet addresses in
    ``bacnet_network``, its clock at ``start`` and then ``warm`` simulated seconds on."""
    site, raw = load_site(EXAMPLE)
    site = with_overrides(site, base_port=0, bacnet_network=bacnet_network)
    building = SimBuilding(site, profiles or load_profiles(),
                           clock=SimClock(start=start, speed=0, timezone=site.timezone),
                           site_raw=raw)
    await building.start()
    building.clock.advance(warm)
    building.tick()
    return building


@contextlib.asynccontextmanager
async def running_building(bacnet_network: str, *, start: float = MORNING, warm: float = 5.0,
                           profiles: ProfileSet | None = None) -> AsyncIterator[SimBuilding]:
    """:func:`start_building`, stopped on leaving (requests a silent unit holds released)."""
    building = await start_building(bacnet_network, start=start, warm=warm, profiles=profiles)
    try:
        yield building
    finally:
        for device in building.devices.values():
            if device.modbus is not None:
                device.modbus.set_comms("normal")
        await building.stop()


def edge_config(building: SimBuilding, folder: Path, mqtt_url: str, *,
                only: Collection[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A site config dict for ``building`` (``only``: just these device ids)."""
    served = [e for e in building.served() if only is None or e["id"] in only]
    return gateway_config(served, site=building.site.site, gateway="gw-1",
                          mqtt_url=mqtt_url, outbox=folder / "outbox.db",
                          bacnet_bind=f"127.0.0.1/8:{free_udp_port()}", timeout=0.3, **extra)


def edge_config_file(building: SimBuilding, folder: Path, mqtt_url: str, *,
                     only: Collection[str] | None = None, **extra: Any) -> Path:
    config = edge_config(building, folder, mqtt_url, only=only, **extra)
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


@contextlib.asynccontextmanager
async def collect_persistent(host: str, port: int, client_id: str, topic: str = "tw/v1/#",
                             **tls: Any) -> AsyncIterator[Collector]:
    """A cloud-like subscriber that survives broker restarts: a persistent session
    (``clean_session=False``, fixed ``client_id``, QoS 1) that reconnects by itself.

    ``tls``: ``ca_file=PATH`` connects with TLS verified against that CA.
    """
    loop = asyncio.get_running_loop()
    collector = Collector()
    subscribed = asyncio.Event()

    def add(received: Received) -> None:
        collector.messages.append(received)
        collector.changed.set()

    def on_connect(client: paho.Client, *_: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_message(_client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        received = Received(message.topic, json.loads(payload) if payload else {},
                            bool(message.retain), time.monotonic())
        loop.call_soon_threadsafe(add, received)

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=paho.MQTTv311)
    if tls.get("ca_file"):
        client.tls_set_context(ssl.create_default_context(cafile=str(tls["ca_file"])))
    client.reconnect_delay_set(1, 1)
    client.on_connect = on_connect
    def on_subscribe(*_: Any) -> None:
        loop.call_soon_threadsafe(subscribed.set)

    client.on_subscribe = on_subscribe
    client.on_message = on_message
    await asyncio.to_thread(client.connect, host, port, 10)
    client.loop_start()
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        yield collector
    finally:
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)


def seqs_by_boot(messages: Collection[Received]) -> dict[str, list[int]]:
    """Telemetry and event ``seq`` per ``boot_id`` in arrival order, redeliveries removed."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, list[int]] = {}
    for m in messages:
        boot, seq = m.payload.get("boot_id"), m.payload.get("seq")
        if not isinstance(boot, str) or not isinstance(seq, int) or (boot, seq) in seen:
            continue
        seen.add((boot, seq))
        out.setdefault(boot, []).append(seq)
    return out


@contextlib.asynccontextmanager
async def running_daemon(config_path: Path) -> AsyncIterator[list[Gateway]]:
    """``run_gateway`` (reloads included); the list holds every gateway it started."""
    gateways: list[Gateway] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_gateway(config_path, stop=stop, sighup=False, on_start=gateways.append),
        name="daemon")
    try:
        while not gateways:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        yield gateways
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


class GatewayProcess:
    """``python -m towerwatch edge run --config FILE`` as a child process."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config_path.parent / "gateway.log"

    def start(self) -> GatewayProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "towerwatch", "-v", "edge", "run",
                 "--config", str(self.config_path)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(
                    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)})
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, within: float = 15.0) -> int:
        assert self.proc is not None
        proc = self.proc
        return await asyncio.to_thread(proc.wait, within)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def close(self) -> None:
        if self.running:
            self.signal(signal.SIGKILL)
            await self.wait()
