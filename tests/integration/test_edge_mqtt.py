"""The outbox + MQTT publisher against a real Mosquitto, watched by paho subscribers.

Network faults are made with a small TCP relay in front of the broker (close every
connection abruptly; answer an MQTT 5 CONNECT the way a 3.1.1-only broker does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import MqttConfig
from edge.errors import BrokerUnavailable
from edge.mqtt import MqttPublisher
from edge.outbox import Outbox, OutItem
from tests.integration.outbox_writer import TOPIC
from tests.servers.mosquitto import MosquittoServer
from tests.servers.plugin import MosquittoFactory
from tests.servers.ports import free_port
from tests.servers.tls import CertificateAuthority
from towerwatch.contract import (
    Birth,
    Will,
    command_topic,
    encode,
    new_boot_id,
    new_request_id,
    status_topic,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SITE, GATEWAY = "site1", "gw1"
STATUS = status_topic(SITE, GATEWAY)
TELEMETRY_FILTER = f"tw/v1/{SITE}/{GATEWAY}/telemetry/#"
BOOT = new_boot_id()


# -- helpers -------------------------------------------------------------------------------
class Collector:
    """A paho subscriber on its own thread; records (topic, payload) in arrival order."""

    def __init__(self, server: MosquittoServer, topic_filter: str, *, client_id: str = "",
                 persistent: bool = False, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._filter = topic_filter
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent, protocol=paho.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if server.tls:
            self.client.tls_set_context(ssl.create_default_context(cafile=str(server.ca_path)))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(server.host, server.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "collector did not subscribe"

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(self._filter, qos=1)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def payloads(self, topic: str | None = None) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if topic is None or t == topic]

    def numbers(self) -> list[int]:
        return [int(p) for t, p in list(self.messages) if "/telemetry/" in t]

    def statuses(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads(STATUS)]

    async def wait(self, done: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + within
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or done}: "
                                     f"{len(self.messages)} messages")
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def collecting(server: MosquittoServer, topic_filter: str, **kwargs: Any) -> Iterator[Collector]:
    collector = Collector(server, topic_filter, **kwargs)
    try:
        yield collector
    finally:
        collector.close()


class Relay:
    """TCP relay to the broker: ``cut()`` drops every connection without a word;
    ``refuse_v5`` answers an MQTT 5 CONNECT as a 3.1.1-only broker does."""

    def __init__(self, server: MosquittoServer, *, refuse_v5: bool = False) -> None:
        self.target = (server.host, server.port)
        self.refuse_v5 = refuse_v5
        self.port = free_port()
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()
        if self._handlers:  # let them end: a cancelled handler makes 3.11's asyncio log
            await asyncio.wait(self._handlers, timeout=5)

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            first = await reader.read(4096)
            if self.refuse_v5 and _protocol_level(first) == 5:
                self.refused += 1
                writer.write(b"\x20\x02\x00\x01")  # CONNACK: unacceptable protocol version
                await writer.drain()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            up_writer.write(first)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


def _protocol_level(packet: bytes) -> int | None:
    """The protocol level of a CONNECT packet: 0x10, remaining length, "\0\4MQTT", level."""
    if packet[:1] != b"\x10":
        return None
    index = 1
    while index < len(packet) and packet[index] & 0x80:
        index += 1
    level = index + 1 + 6
    return packet[level] if level < len(packet) else None


def _will(reason: str = "connection lost") -> bytes:
    return encode(Will(boot_id=BOOT, ts=int(time.time() * 1000), reason=reason))


def _birth() -> bytes:
    return encode(Birth(boot_id=BOOT, version="test", ts=int(time.time() * 1000), devices=[]))


WILL = _will()


def _publisher(url: str, outbox: Outbox, **kwargs: Any) -> MqttPublisher:
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k in MqttConfig.model_fields}
    config = MqttConfig(url=url, **extra)
    return MqttPublisher(config, site=SITE, gateway=GATEWAY, outbox=outbox, birth=_birth,
                         will=WILL, **kwargs)


@contextlib.asynccontextmanager
async def running(publisher: MqttPublisher, *, stop: bool = True) -> AsyncIterator[None]:
    task = asyncio.create_task(publisher.run())
    try:
        yield
    finally:
        if stop:
            await asyncio.wait_for(publisher.stop(), 15)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", max_messages=1_000_000, overflow="refuse_new")
    yield box
    box.close()


def _put(outbox: Outbox, start: int, count: int) -> None:
    outbox.put_many([OutItem(TOPIC, str(i).encode()) for i in range(start, start + count)])


async def _until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        await asyncio.sleep(0.02)


# -- 1. order ------------------------------------------------------------------------------
async def test_publishes_everything_in_order_and_empties_the_outbox(
    mosquitto: MosquittoServer, outbox: Outbox
) -> None:
    _put(outbox, 0, 2000)
    publisher = _publisher(mosquitto.url, outbox)
    with collecting(mosquitto, TELEMETRY_FILTER) as sub:
        async with running(publisher):
            await sub.wait(lambda: len(sub.numbers()) >= 2000, what="2000 messages")
            await _until(lambda: outbox.depth() == 0)
            assert publisher.connected
            assert publisher.since is not None
            assert publisher.protocol_version == "5"
            _put(outbox, 2000, 10)  # woken by notify(), not by polling
            publisher.notify()
            await sub.wait(lambda: len(sub.numbers()) >= 2010, what="10 more")
    assert sub.numbers() == list(range(2010))
    assert publisher.published == 2010
    assert outbox.depth() == 0


# -- 2. broker outage ----------------------------------------------------------------------
async def test_broker_restart_loses_nothing_and_keeps_order(
    mosquitto: MosquittoServer, outbox: Outbox
) -> None:
    publisher = _publisher(mosquitto.url, outbox)
    total = 4500
    with collecting(mosquitto, TELEMETRY_FILTER, client_id="watch-restart",
                    persistent=True) as sub:
        async with running(publisher):
            await publisher.wait_connected()
            _put(outbox, 0, 3000)
            publisher.notify()
            await sub.wait(lambda: len(sub.numbers()) >= 300, what="the first messages")
            await asyncio.to_thread(mosquitto.stop)  # mid-stream: publishes are in flight
            assert outbox.depth() > 0
            for batch in range(20):  # 1,000 more over 2 s while the broker is down
                _put(outbox, 3000 + batch * 50, 50)
                publisher.notify()
                await asyncio.sleep(0.1)
            assert not publisher.connected
            assert outbox.depth() >= 1000
            await asyncio.to_thread(mosquitto.start)
            _put(outbox, 4000, 500)
            publisher.notify()
            await sub.wait(lambda: set(sub.numbers()) >= set(range(total)), within=20,
                           what=f"all {total} after the restart")
            await _until(lambda: outbox.depth() == 0)
            assert publisher.reconnects >= 1
            assert publisher.last_error is not None
    numbers = sub.numbers()
    first_seen = list(dict.fromkeys(numbers))
    assert first_seen == list(range(total)), "lost or reordered"
    print(f"broker restart: {len(numbers) - total} duplicate(s), "
          f"{publisher.reconnects} reconnect(s)")


# -- 3. SIGKILL of the writer --------------------------------------------------------------
def _wal_exists(path: Path) -> bool:
    return Path(f"{path}-wal").stat().st_size > 0


async def test_sigkilled_writer_loses_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    path = tmp_path / "killed.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.outbox_writer", str(path), "3000",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.startswith(b"ready"), line
        await asyncio.sleep(0.2)  # it keeps writing: the kill lands mid-stream
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _wal_exists(path), "the kill should leave an un-checkpointed WAL"
    outbox = Outbox(path, max_messages=10_000_000, overflow="refuse_new")
    try:
        total = outbox.depth()
        assert total >= 3000
        # transactions are whole: the cursor committed with the last batch matches it
        assert outbox.cursor("writer") == total - 1
        publisher = _publisher(mosquitto.url, outbox)
        with collecting(mosquitto, TELEMETRY_FILTER) as sub:
            async with running(publisher):
                await sub.wait(lambda: len(sub.numbers()) >= total, what=f"{total} messages")
                await _until(lambda: outbox.depth() == 0)
        assert sub.numbers() == list(range(total))
    finally:
        outbox.close()


# -- 4. TLS --------------------------------------------------------------------------------
async def test_tls_with_the_right_ca_delivers(
    mosquitto_tls: MosquittoServer, outbox: Outbox
) -> None:
    _put(outbox, 0, 100)
    publisher = _publisher(mosquitto_tls.url, outbox, ca_file=mosquitto_tls.ca_path)
    with collecting(mosquitto_tls, TELEMETRY_FILTER) as sub:
        async with running(publisher):
            await sub.wait(lambda: len(sub.numbers()) >= 100)
    assert sub.numbers() == list(range(100))


async def test_tls_with_a_wrong_ca_never_connects_and_sends_nothing(
    mosquitto_tls: MosquittoServer, wrong_ca: CertificateAuthority, outbox: Outbox
) -> None:
    _put(outbox, 0, 10)
    publisher = _publisher(mosquitto_tls.url, outbox, ca_file=wrong_ca.cert_path)
    with collecting(mosquitto_tls, "#") as sub:
        async with running(publisher):
            await _until(lambda: publisher.last_error is not None)
            await asyncio.sleep(1.0)  # a retry or two
            assert not publisher.connected
            assert publisher.since is not None
        assert isinstance(publisher.last_failure, BrokerUnavailable)
        assert publisher.last_error is not None
        assert publisher.last_error.startswith("TLS verification failed:")
        assert sub.messages == []
    assert outbox.depth() == 10
    assert publisher.published == 0


async def test_tls_never_falls_back_to_plaintext(
    mosquitto: MosquittoServer, outbox: Outbox
) -> None:
    """mqtts:// to a plaintext listener: a client that fell back would get through."""
    _put(outbox, 0, 10)
    publisher = _publisher(f"mqtts://127.0.0.1:{mosquitto.port}", outbox)
    with collecting(mosquitto, "#") as sub:
        async with running(publisher):
            await _until(lambda: publisher.last_error is not None)
            await asyncio.sleep(1.0)
            assert not publisher.connected
        assert "TLS" in (publisher.last_error or "")
        assert sub.messages == []
    assert outbox.depth() == 10
    assert publisher.client_id not in mosquitto.log_tail(200)


# -- 5. credentials ------------------------------------------------------------------------
ACL = f"user {GATEWAY}\ntopic readwrite tw/v1/{SITE}/{GATEWAY}/#\n\nuser watcher\ntopic read tw/#\n"


@pytest.fixture
def auth_broker(mosquitto_factory: MosquittoFactory) -> MosquittoServer:
    return mosquitto_factory(users={GATEWAY: "gw-secret", "watcher": "watch-secret"}, acl=ACL)


async def test_username_and_password_from_a_file(
    auth_broker: MosquittoServer, outbox: Outbox, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("gw-secret\n")
    _put(outbox, 0, 50)
    publisher = _publisher(auth_broker.url, outbox, username=GATEWAY, password_file=secret)
    with collecting(auth_broker, TELEMETRY_FILTER, username="watcher",
                    password="watch-secret") as sub:
        async with running(publisher):
            await sub.wait(lambda: len(sub.numbers()) >= 50)
    assert sub.numbers() == list(range(50))


async def test_a_wrong_password_is_reported_and_nothing_is_sent(
    auth_broker: MosquittoServer, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_TEST_MQTT_PASSWORD", "not-the-password")
    _put(outbox, 0, 10)
    publisher = _publisher(auth_broker.url, outbox, username=GATEWAY,
                           password_env="TW_TEST_MQTT_PASSWORD")
    with collecting(auth_broker, "#", username="watcher", password="watch-secret") as sub:
        async with running(publisher):
            await _until(lambda: publisher.last_error is not None)
            await asyncio.sleep(0.7)
            assert not publisher.connected
        assert isinstance(publisher.last_failure, BrokerUnavailable)
        error = (publisher.last_error or "").lower()
        assert "refused the connection" in error
        assert "not authorized" in error or "password" in error  # Mosquitto says 135
        assert sub.messages == []
    assert outbox.depth() == 10


# -- 6. birth and will ---------------------------------------------------------------------
async def test_birth_will_on_a_dropped_connection_and_offline_on_stop(
    mosquitto: MosquittoServer, outbox: Outbox
) -> None:
    with collecting(mosquitto, STATUS) as sub:
        async with Relay(mosquitto) as relay:
            publisher = _publisher(f"mqtt://127.0.0.1:{relay.port}", outbox)
            async with running(publisher):
                await sub.wait(lambda: [s["state"] for s in sub.statuses()] == ["online"])
                relay.cut()  # the network goes away mid-session: the broker sends the will
                await sub.wait(lambda: len(sub.statuses()) >= 2, what="the will")
                assert sub.statuses()[1] == json.loads(WILL)
                await sub.wait(lambda: len(sub.statuses()) >= 3, what="a new birth")
                assert sub.statuses()[2]["state"] == "online"
                await publisher.wait_connected()
                assert publisher.reconnects == 1
            # running() called stop(): the offline status replaces the birth
            await sub.wait(lambda: len(sub.statuses()) >= 4, what="offline at stop")
            offline = sub.statuses()[3]
            assert (offline["state"], offline["reason"], offline["boot_id"]) == (
                "offline", "shutdown", BOOT)
            assert not publisher.connected
    with collecting(mosquitto, STATUS) as late:  # retained for whoever comes later
        await late.wait(lambda: len(late.statuses()) == 1)
        assert late.statuses()[0]["reason"] == "shutdown"


@pytest.mark.parametrize("how", ["cancel", "stop(graceful=False)"])
async def test_an_ungraceful_end_leaves_the_will(
    mosquitto: MosquittoServer, outbox: Outbox, how: str
) -> None:
    publisher = _publisher(mosquitto.url, outbox)
    with collecting(mosquitto, STATUS) as sub:
        async with running(publisher, stop=False):
            await publisher.wait_connected()
            await sub.wait(lambda: len(sub.statuses()) == 1)
            if how != "cancel":
                await publisher.stop(graceful=False)
        await sub.wait(lambda: len(sub.statuses()) >= 2, what="the will")
        assert sub.statuses()[1]["reason"] == "connection lost"


# -- 7. commands ---------------------------------------------------------------------------
async def test_commands_reach_on_command_also_when_sent_while_offline(
    mosquitto: MosquittoServer, outbox: Outbox
) -> None:
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def on_command(topic: str, payload: bytes) -> None:
        await received.put((topic, payload))

    sender = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    sender.connect(mosquitto.host, mosquitto.port)
    sender.loop_start()
    try:
        first = command_topic(SITE, GATEWAY, new_request_id())
        publisher = _publisher(mosquitto.url, outbox, on_command=on_command)
        async with running(publisher):
            await publisher.wait_connected()
            sender.publish(first, b'{"op":"ping"}', qos=1).wait_for_publish(5)
            assert await asyncio.wait_for(received.get(), 5) == (first, b'{"op":"ping"}')
        # the gateway is away: its persistent session keeps the subscription and queues
        second = command_topic(SITE, GATEWAY, new_request_id())
        sender.publish(second, b'{"op":"reload"}', qos=1).wait_for_publish(5)
        again = _publisher(mosquitto.url, outbox, on_command=on_command)
        async with running(again):
            assert await asyncio.wait_for(received.get(), 5) == (second, b'{"op":"reload"}')
    finally:
        sender.disconnect()
        sender.loop_stop()


# -- protocol fallback ---------------------------------------------------------------------
async def test_falls_back_to_3_1_1_when_the_broker_refuses_5(
    mosquitto: MosquittoServer, outbox: Outbox
) -> None:
    _put(outbox, 0, 100)
    with collecting(mosquitto, TELEMETRY_FILTER) as sub:
        async with Relay(mosquitto, refuse_v5=True) as relay:
            url = f"mqtt://127.0.0.1:{relay.port}"
            strict = _publisher(url, outbox, protocol="5", client_id="strict")
            async with running(strict):
                await _until(lambda: strict.last_error is not None)
            assert "refused" in (strict.last_error or "")
            assert not strict.published
            auto = _publisher(url, outbox)
            async with running(auto):
                await sub.wait(lambda: len(sub.numbers()) >= 100)
                assert auto.protocol_version == "3.1.1"
            assert relay.refused >= 2
    assert sub.numbers() == list(range(100))
