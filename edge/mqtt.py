"""The MQTT publisher: drains the durable outbox to the broker, in order, QoS 1.

Per connection (:mod:`edge.mqtt_client` drives paho-mqtt on the asyncio loop):

1. connect (MQTT 5; with ``protocol: auto`` a broker answering "unsupported protocol
   version" gets 3.1.1, logged) with a persistent session (5: ``clean_start=False`` and
   :data:`SESSION_EXPIRY`; 3.1.1: ``clean_session=False``) under the stable client id
   ``tw-{site}-{gateway}``, so the command subscription and commands sent while the
   gateway was away survive; the will is the retained offline status, QoS 1;
2. publish the birth (retained, QoS 1) and subscribe to the command filter;
3. drain the outbox (:mod:`edge.outbox_drain`) in id order, up to ``max_inflight``
   publishes in flight (capped by the broker's MQTT 5 Receive Maximum), acking each id
   after its PUBACK.

Reconnects back off from :data:`BACKOFF_MIN` doubling to :data:`BACKOFF_MAX` (5 s),
each delay jittered by ±20%, so a broker that comes back is found within ~6 s and a
fleet of gateways does not reconnect in step.

Ordering and loss: publishes leave in id order on one connection and the broker keeps
that order. Every connection starts again from the oldest unacked message, so a message
whose PUBACK was lost is sent again (a duplicate: the cloud drops redeliveries by
``(gateway, boot_id, seq)``) and none is skipped. PUBACKs come back in order, so "a later
message acked, an earlier one not" only happens when one publish fails on its own; the
earlier one is then re-sent after the later one. Publishes have no timeout of their
own: a silent broker is found by the MQTT keepalive, which drops the connection. A
MQTT 5 PUBACK with a failure reason code (an ACL refusal) is logged and the message
dropped (counted in :attr:`MqttPublisher.dropped`), as is a message paho cannot encode.

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
import random
import time
from collections.abc import Callable

from edge.command_inbox import CommandHandler, CommandInbox
from edge.config import MqttConfig
from edge.errors import PublishError
from edge.mqtt_client import MqttConnection, ProtocolRefused, open_connection
from edge.outbox import Outbox, OutMessage
from edge.outbox_drain import STOP_TIMEOUT, Done, OutboxDrain, Send
from towerwatch.contract import Will, command_filter, decode, encode, status_topic, topic_matches

log = logging.getLogger(__name__)

SESSION_EXPIRY = 7 * 24 * 3600
"""Seconds the broker keeps the gateway's MQTT 5 session (subscription, queued commands)."""
BACKOFF_MIN, BACKOFF_MAX = 0.5, 5.0
"""Reconnect delays (s): doubling from the first to the cap, each jittered by ±20%."""
CONNECT_TIMEOUT = 10.0


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """The delay before reconnect ``attempt`` (1, 2, ...): capped, jittered, never below
    :data:`BACKOFF_MIN`."""
    base = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(attempt - 1, 30))
    delay: float = base * rng.uniform(0.8, 1.2)
    return max(BACKOFF_MIN, delay)


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
    def dropped(self) -> int:
        """Outbox messages dropped unsent: not encodable, or refused by the broker."""
        return self._drain.dropped

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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(),
                                           backoff_delay(self._attempt, self._rng))
        finally:
            self._running = False
            self._up.clear()
            if worker is not None:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
            self._done.set()

    # -- one connection --------------------------------------------------------------------
    async def _session(self) -> None:
        connection = await self._connect()
        self._connected_now()
        graceful = False
        try:
            await self._serve(connection)
            graceful = self._graceful
        finally:
            if self._up.is_set():
                self._up.clear()
                self._since = time.time()
            await self._close(connection, graceful)

    async def _connect(self) -> MqttConnection:
        while True:
            try:
                connection = await open_connection(
                    self._config, client_id=self.client_id, v5=self._protocol == "5",
                    will_topic=self._status_topic, will=self._will,
                    session_expiry=SESSION_EXPIRY, within=self._timeout,
                    on_message=self._command if self._inbox is not None else None)
            except ProtocolRefused:
                if self._config.protocol == "auto" and self._protocol == "5":
                    log.warning("MQTT broker %s does not support MQTT 5; using MQTT 3.1.1",
                                self._config.url)
                    self._protocol = "3.1.1"
                    continue
                raise
            self._receive_max = connection.receive_max
            return connection

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

    async def _serve(self, connection: MqttConnection) -> None:
        if self._stopping.is_set():
            return
        await connection.wait_for(connection.publish(self._status_topic, self._birth(), 1, True),
                                self._timeout, "PUBACK of the birth")
        if self._inbox is not None:
            await connection.subscribe(self._command_filter, 1, self._timeout)
        self._up.set()  # connected: birth published, commands subscribed
        self._since = time.time()
        drain = asyncio.create_task(self._drain.run(self._sender(connection),
                                                    self.inflight_limit), name="mqtt-drain")
        try:
            await asyncio.wait({drain, connection.lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
        if connection.lost.done():
            connection.lost.result()  # raises why the connection ended
            raise PublishError(f"connection to {self._config.url} closed")
        if not drain.cancelled():
            drain.result()  # raises an outbox error

    def _command(self, topic: str, payload: bytes) -> None:
        if self._inbox is not None and topic_matches(self._command_filter, topic):
            self._inbox.put(topic, payload)

    @staticmethod
    def _sender(connection: MqttConnection) -> Send:
        """The drain's send call on this connection: a message paho cannot encode is
        logged and dropped."""
        loop = asyncio.get_running_loop()
        send_now = connection.send

        def send(message: OutMessage, done: Done) -> None:
            try:
                send_now(message.topic, message.payload, message.qos, message.retain, done,
                         message.id)
            except ValueError as exc:
                log.error("dropping outbox message %d on %s: cannot be published: %s",
                          message.id, message.topic, exc)
                loop.call_soon(done, message.id, False)

        return send

    # -- ending a connection ---------------------------------------------------------------
    def _offline_payload(self) -> bytes:
        return encode(Will(state="offline", boot_id=self._will_model.boot_id,
                           ts=int(time.time() * 1000), reason="shutdown"))

    async def _close(self, connection: MqttConnection, graceful: bool) -> None:
        if graceful and not connection.lost.done():
            try:
                await connection.wait_for(
                    connection.publish(self._status_topic, self._offline_payload(), 1, True),
                    STOP_TIMEOUT, "PUBACK of the offline status")
                await connection.disconnect(STOP_TIMEOUT)  # the will is discarded
                return
            except PublishError as exc:
                log.warning("MQTT: could not publish the offline status: %s", exc)
        connection.abort()
