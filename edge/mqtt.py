"""The MQTT publisher: drains the durable outbox to the broker, in order, QoS 1.

The only module of :mod:`edge` importing aiomqtt / paho-mqtt. Per connection:

1. connect (MQTT 5; with ``protocol: auto`` a broker answering "unsupported protocol
   version" gets 3.1.1, logged) with a persistent session (5: ``clean_start=False`` and
   :data:`SESSION_EXPIRY`; 3.1.1: ``clean_session=False``) under the stable client id
   ``tw-{site}-{gateway}``, so the command subscription and commands sent while the
   gateway was away survive; the will is the retained offline status, QoS 1;
2. publish the birth (retained, QoS 1) and subscribe to the command filter;
3. drain the outbox (:mod:`edge.outbox_drain`) in id order, up to ``max_inflight``
   publishes in flight (capped by the broker's MQTT 5 Receive Maximum), acking each id
   after its PUBACK.

Ordering and loss: publishes leave in id order on one connection and the broker keeps
that order. Every connection starts again from the oldest unacked message, so a message
whose PUBACK was lost is sent again (a duplicate: the cloud drops redeliveries by
``(gateway, boot_id, seq)``) and none is skipped. PUBACKs come back in order, so "a later
message acked, an earlier one not" only happens when one publish fails on its own; the
earlier one is then re-sent after the later one. Publishes have no timeout of their
own: a silent broker is found by the MQTT keepalive, which drops the connection. A
MQTT 5 PUBACK with a failure reason code (an ACL refusal) is invisible through aiomqtt
and counts as delivered; a message paho cannot encode is logged and dropped.

:meth:`MqttPublisher.stop` publishes the retained offline status (the will with
``reason: "shutdown"``) and disconnects cleanly. Cancelling :meth:`~MqttPublisher.run`
without ``stop()``, or ``stop(graceful=False)``, drops the TCP connection without a
DISCONNECT, so the broker publishes the will.

TLS (``mqtts://``, :mod:`edge.tls`) verifies the certificate and host name against
``ca_file`` or the system store. There is no plaintext fallback: a failure is a
:class:`~edge.errors.BrokerUnavailable` ("TLS verification failed: ...") and the
publisher keeps retrying TLS with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.command_inbox import CommandHandler, CommandInbox
from edge.config import MqttConfig
from edge.errors import BrokerUnavailable, PublishError
from edge.outbox import Outbox, OutMessage
from edge.outbox_drain import STOP_TIMEOUT, OutboxDrain, Publish
from edge.tls import tls_context, tls_failure
from towerwatch.contract import Will, command_filter, decode, encode, status_topic, topic_matches

log = logging.getLogger(__name__)
_library_log = logging.getLogger(f"{__name__}.paho")


def _to_debug(record: logging.LogRecord) -> bool:
    """paho logs a dropped connection at ERROR; we report it ourselves (once)."""
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return _library_log.isEnabledFor(logging.DEBUG)


_library_log.addFilter(_to_debug)

SESSION_EXPIRY = 7 * 24 * 3600
"""Seconds the broker keeps the gateway's MQTT 5 session (subscription, queued commands)."""
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
CONNECT_TIMEOUT = 10.0
_UNSUPPORTED_PROTOCOL = 132  # MQTT 5 CONNACK reason; paho maps a 3.1.1 broker's rc 1 to it


def _connect_error(exc: BaseException, url: str) -> BrokerUnavailable:
    if (tls := tls_failure(exc, url)) is not None:
        return tls
    if isinstance(exc, MqttConnectError):
        return BrokerUnavailable(f"broker {url} refused the connection: {exc}")
    return BrokerUnavailable(f"cannot connect to {url}: {exc}")


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


class MqttPublisher:
    """Publishes the outbox to one broker and hands incoming commands to ``on_command``."""

    def __init__(self, config: MqttConfig, *, site: str, gateway: str, outbox: Outbox,
                 birth: Callable[[], bytes], will: bytes,
                 on_command: CommandHandler | None = None,
                 client_id: str | None = None) -> None:
        self._config = config
        self._birth = birth
        self._will = will
        self._will_model = decode(Will, will)  # the offline status at shutdown is derived
        self._inbox = CommandInbox(on_command) if on_command is not None else None
        self._status_topic = status_topic(site, gateway)
        self._command_filter = command_filter(site, gateway)
        self.client_id = client_id or config.client_id or f"tw-{site}-{gateway}"
        self._protocol = "3.1.1" if config.protocol == "3.1.1" else "5"
        self._timeout = max(CONNECT_TIMEOUT, 2.0 * config.keepalive)
        self._stopping = asyncio.Event()
        self._up = asyncio.Event()
        self._done = asyncio.Event()
        self._graceful = True
        self._running = False
        self._rng = random.Random()
        self._attempt = 0
        self._failing = False
        self._receive_max: int | None = None
        self._drain = OutboxDrain(outbox, stopping=self._stopping,
                                  graceful=lambda: self._graceful)
        self.reconnects = 0
        """Connections established after the first one."""
        self._sessions = 0
        self._since: float | None = None
        self.last_failure: PublishError | None = None

    # -- state for metrics -----------------------------------------------------------------
    @property
    def published(self) -> int:
        """Outbox messages the broker acknowledged."""
        return self._drain.published

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def since(self) -> float | None:
        """Epoch seconds when :attr:`connected` last changed (or the first attempt failed)."""
        return self._since

    @property
    def last_error(self) -> str | None:
        return None if self.last_failure is None else str(self.last_failure)

    @property
    def protocol_version(self) -> str:
        """``"5"`` or ``"3.1.1"``: the protocol in use (or about to be tried)."""
        return self._protocol

    @property
    def inflight_limit(self) -> int:
        limit = self._config.max_inflight
        return min(limit, self._receive_max) if self._receive_max else limit

    # -- control ---------------------------------------------------------------------------
    def notify(self) -> None:
        """New messages were put in the outbox: wake the drain loop."""
        self._drain.notify()

    async def wait_connected(self) -> None:
        """Until connected, the birth published and the command filter subscribed."""
        await self._up.wait()

    async def stop(self, graceful: bool = True) -> None:
        """Publish the offline status and disconnect (``graceful``), or drop the
        connection so the broker publishes the will; returns when :meth:`run` has ended."""
        self._graceful = graceful
        self._stopping.set()
        self._drain.notify()
        if self._running:
            await self._done.wait()

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; until :meth:`stop` or cancellation.

        Connection problems are retried (see :attr:`last_error`); an
        :class:`~edge.errors.OutboxError` ends the run.
        """
        if self._running:
            raise RuntimeError("MqttPublisher.run() is already running")
        self._running = True
        self._done.clear()
        worker = (asyncio.create_task(self._inbox.run(), name="mqtt-commands")
                  if self._inbox is not None else None)
        try:
            while not self._stopping.is_set():
                try:
                    await self._session()
                except PublishError as exc:
                    self._failed(exc)
                if self._stopping.is_set():
                    break
                self._attempt += 1
                base = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (self._attempt - 1))
                delay = min(BACKOFF_MAX, max(BACKOFF_MIN, base * self._rng.uniform(0.8, 1.2)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            self._running = False
            self._up.clear()
            if worker is not None:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            self._done.set()

    # -- one connection --------------------------------------------------------------------
    async def _session(self) -> None:
        client = await self._connect()
        self._connected_now()
        graceful = False
        try:
            await self._serve(client)
            graceful = self._graceful
        except aiomqtt.MqttError as exc:
            reason = exc.__cause__ or exc
            raise PublishError(f"connection to {self._config.url} lost: {reason}") from exc
        finally:
            if self._up.is_set():
                self._up.clear()
                self._since = time.time()
            await self._close(client, graceful)

    async def _connect(self) -> aiomqtt.Client:
        while True:
            client = self._make_client()
            entering = asyncio.ensure_future(client.__aenter__())
            try:
                await asyncio.shield(entering)
            except asyncio.CancelledError:
                # Let the connect (in paho's executor thread) finish, then drop it.
                await asyncio.wait({entering}, timeout=2 * CONNECT_TIMEOUT)
                if (entering.done() and not entering.cancelled()
                        and entering.exception() is None):
                    await self._abort(client)
                raise
            except (aiomqtt.MqttError, OSError) as exc:
                rc = getattr(exc, "rc", None)
                if (isinstance(exc, MqttConnectError) and self._config.protocol == "auto"
                        and self._protocol == "5"
                        and getattr(rc, "value", rc) == _UNSUPPORTED_PROTOCOL):
                    log.warning("MQTT broker %s does not support MQTT 5; using MQTT 3.1.1",
                                self._config.url)
                    self._protocol = "3.1.1"
                    continue
                raise _connect_error(exc, self._config.url) from exc
            return client

    def _make_client(self) -> aiomqtt.Client:
        v5 = self._protocol == "5"
        try:
            password = self._config.password()
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(f"cannot read the MQTT password: {exc}") from exc
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY
        client = aiomqtt.Client(
            self._config.host, self._config.port,
            username=self._config.username, password=password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self._status_topic, self._will, qos=1, retain=True),
            clean_session=None if v5 else False,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,  # 3.1.1: paho's default
            keepalive=self._config.keepalive,
            max_inflight_messages=self._config.max_inflight,
            timeout=CONNECT_TIMEOUT,
            properties=properties,
            tls_context=tls_context(self._config) if self._config.tls else None,
            logger=_library_log,
        )
        # aiomqtt does not expose CONNACK properties: note the broker's Receive Maximum.
        paho = client._client
        aiomqtt_on_connect = paho.on_connect

        def on_connect(*args: Any) -> None:
            properties = args[4] if len(args) > 4 else None
            receive_max = getattr(properties, "ReceiveMaximum", None)
            self._receive_max = int(receive_max) if receive_max else None
            aiomqtt_on_connect(*args)  # type: ignore[misc]

        paho.on_connect = on_connect
        paho.on_socket_register_write = self._register_write(client)
        return client

    @staticmethod
    def _register_write(client: aiomqtt.Client) -> Callable[..., None]:
        """aiomqtt's write-readiness hook, minus a race: it schedules ``add_writer(fd)``
        for later, and when paho closes the socket first (connection lost) the loop
        logs EBADF at ERROR, or watches a reused fd. This one checks the socket first."""
        loop = asyncio.get_running_loop()

        def register(paho: Any, _userdata: Any, sock: Any) -> None:
            def writable() -> None:
                try:
                    paho.loop_write()
                except Exception as exc:
                    if not client._disconnected.done():
                        client._disconnected.set_exception(exc)

            def add() -> None:
                if paho.socket() is sock:
                    loop.add_writer(sock.fileno(), writable)

            loop.call_soon_threadsafe(add)

        return register

    def _connected_now(self) -> None:
        self._sessions += 1
        if self._sessions > 1:
            self.reconnects += 1
        log.info("MQTT connected to %s as %s (MQTT %s%s)", self._config.url,
                self.client_id, self._protocol, ", recovered" if self._failing else "")
        self._failing = False
        self._attempt = 0

    def _failed(self, exc: PublishError) -> None:
        self.last_failure = exc
        if self._since is None:
            self._since = time.time()
        if self._failing:
            log.debug("MQTT still failing: %s", exc)
            return
        self._failing = True
        log.warning("MQTT: %s (retrying with backoff; logged at DEBUG until it recovers)", exc)

    async def _serve(self, client: aiomqtt.Client) -> None:
        if self._stopping.is_set():
            return
        limit = self.inflight_limit
        client.pending_calls_threshold = limit + 16
        await client.publish(self._status_topic, self._birth(), qos=1, retain=True,
                             timeout=self._timeout)
        if self._inbox is not None:
            await client.subscribe(self._command_filter, qos=1, timeout=self._timeout)
        self._up.set()  # connected: birth published, commands subscribed
        self._since = time.time()
        listen = asyncio.create_task(self._listen(client), name="mqtt-listen")
        drain = asyncio.create_task(self._drain.run(self._publisher(client), limit),
                                    name="mqtt-drain")
        try:
            done, _ = await asyncio.wait({listen, drain}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listen.cancel()
            drain.cancel()
            await asyncio.gather(listen, drain, return_exceptions=True)
        for task in (drain, listen):
            if task in done and not task.cancelled():
                task.result()  # raises the connection or outbox error
        if listen in done:
            raise aiomqtt.MqttError("message stream ended")

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Receive commands; raises MqttError as soon as the connection drops."""
        async for message in client.messages:
            topic = str(message.topic)
            if self._inbox is None or not topic_matches(self._command_filter, topic):
                continue
            self._inbox.put(topic, _bytes(message.payload))

    # -- draining the outbox ---------------------------------------------------------------
    @staticmethod
    def _publisher(client: aiomqtt.Client) -> Publish:
        """The drain's publish call on this connection: a message paho cannot encode is
        logged and dropped."""

        async def publish(message: OutMessage) -> bool:
            try:
                await client.publish(message.topic, message.payload, qos=message.qos,
                                     retain=message.retain, timeout=math.inf)
            except ValueError as exc:
                log.error("dropping outbox message %d on %s: cannot be published: %s",
                          message.id, message.topic, exc)
                return False
            return True

        return publish

    # -- ending a connection ---------------------------------------------------------------
    def _offline_payload(self) -> bytes:
        return encode(Will(state="offline", boot_id=self._will_model.boot_id,
                           ts=int(time.time() * 1000), reason="shutdown"))

    async def _close(self, client: aiomqtt.Client, graceful: bool) -> None:
        if graceful:
            try:
                await client.publish(self._status_topic, self._offline_payload(), qos=1,
                                     retain=True, timeout=STOP_TIMEOUT)
                await client.__aexit__(None, None, None)  # DISCONNECT: the will is discarded
                return
            except aiomqtt.MqttError as exc:
                log.warning("MQTT: could not publish the offline status: %s", exc)
        await self._abort(client)

    async def _abort(self, client: aiomqtt.Client) -> None:
        """Drop the connection without DISCONNECT: the broker publishes the will.

        aiomqtt has no such call; it keeps the paho client in ``_client``.
        """
        paho = client._client
        sock = paho.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            for _ in range(100):  # paho notices the EOF on its next read and closes
                if paho.socket() is None:
                    break
                await asyncio.sleep(0.01)
            else:
                paho._sock_close()
        disconnected = client._disconnected
        if disconnected.done() and not disconnected.cancelled():
            disconnected.exception()  # retrieved: no "never retrieved" noise
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
