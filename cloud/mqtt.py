"""The cloud's MQTT adapter (the only aiomqtt importer in ``cloud``).

Connections for ingest workers, and :class:`MqttCommandSender`, which publishes
commands from the API to the gateways (``tw/v1/{site}/{gateway}/cmd/{request_id}``).

An ingest connection acknowledges nothing by itself (:func:`ack` does, once a message
is on record) and, with a configured client id, keeps its session on the broker so
that what it had not acknowledged is delivered again when it comes back
(docs/ingest-durability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import select
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.settings import MqttSettings
from towerwatch.contract import command_topic

log = logging.getLogger(__name__)

MqttError = aiomqtt.MqttError
UNSUPPORTED_PROTOCOL = (132, 1)
"""CONNACK codes of a broker that does not speak the MQTT version we asked for."""
SESSION_EXPIRY_S = 86_400
"""How long the broker keeps a persistent ingest session (and queues its messages)
while the worker is away."""
RECEIVE_MAXIMUM_LIMIT = 65_535
"""The largest MQTT 5 Receive Maximum."""
READ_BATCH = 64
"""Packets an ingest connection reads per event-loop turn at most (when they have
arrived), and messages :func:`received` hands on between two yields to the loop: other
tasks still get their turn when a backlog arrives at once."""


def error_code(exc: BaseException) -> Any:
    return getattr(exc, "rc", None)


def client_for(settings: MqttSettings, *, name: str, v311: bool = False,
               receive_maximum: int | None = None) -> aiomqtt.Client:
    """A client for the configured broker; TLS is verified (CA file or system store).

    ``receive_maximum`` makes an ingest connection: messages are acknowledged only by
    :func:`ack`, the broker may have that many unacknowledged QoS 1 messages in flight
    to it (MQTT 5; Mosquitto 2.0 otherwise uses its ``max_inflight_messages``, 20 by
    default), and with ``settings.client_id`` the session is persistent (client id
    ``{client_id}-{name}``, kept :data:`SESSION_EXPIRY_S` after a disconnect).
    """
    scheme, _, rest = settings.url.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    tls = None
    if scheme == "mqtts":
        tls = aiomqtt.TLSParameters(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            cert_reqs=ssl.CERT_REQUIRED)
    version = aiomqtt.ProtocolVersion.V311 if v311 else aiomqtt.ProtocolVersion.V5
    identifier = (f"{settings.client_id}-{name}" if settings.client_id
                  else f"tw-{name}-{random.getrandbits(32):08x}")
    ingest = receive_maximum is not None
    persistent = ingest and settings.client_id is not None
    properties = None
    if ingest and not v311:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = max(1, min(RECEIVE_MAXIMUM_LIMIT, receive_maximum or 1))
        if persistent:
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client = aiomqtt.Client(
        host or rest, int(port or (8883 if tls else 1883)), identifier=identifier,
        username=settings.username, password=settings.password(), protocol=version,
        tls_params=tls, keepalive=30, properties=properties,
        clean_session=(not persistent) if v311 else None,
        clean_start=MQTT_CLEAN_START_FIRST_ONLY if v311 else not persistent)
    if ingest:
        client._client.manual_ack_set(True)  # aiomqtt 2 has no option for it
        _read_what_arrived(client._client)
    return client


def _read_what_arrived(paho: Any) -> None:
    """Make the event loop's read callback take every packet already arrived (up to
    :data:`READ_BATCH`), not one: paho's ``loop_read`` reads one QoS 1 message a call,
    so a busy ingest connection cost a full event-loop turn per message."""
    read_one = paho.loop_read

    def loop_read(max_packets: int = 1) -> Any:
        rc = read_one(max_packets)
        sock = paho.socket()
        if rc != 0 or sock is None:
            return rc
        poll = select.poll()  # of this socket (a reconnect brings another)
        poll.register(sock, select.POLLIN)
        for _ in range(READ_BATCH - 1):
            if not poll.poll(0):
                break
            rc = read_one(max_packets)
            if rc != 0 or paho.socket() is not sock:
                break
        return rc

    paho.loop_read = loop_read


async def speaks_mqtt5(settings: MqttSettings, *, name: str) -> bool:
    """Whether the broker takes an MQTT 5 CONNECT (asked with a throwaway clean session).

    An ingest connection's CONNECT carries properties, on which a 3.1.1-only broker
    (amqtt) stalls instead of refusing the version; this plain one it refuses."""
    try:
        async with client_for(settings, name=f"{name}-probe"):
            return True
    except aiomqtt.MqttError as exc:
        if error_code(exc) in UNSUPPORTED_PROTOCOL:
            return False
        raise


async def received(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    """``client.messages``, cheaply: what has already arrived comes straight from the
    client's queue. aiomqtt's iterator makes a task and an ``asyncio.wait`` for every
    message (three event-loop turns each, a busy ingest worker's largest cost after
    decoding); only an empty queue waits through it, which also ends the iteration
    with :class:`MqttError` when the connection is lost."""
    queue: asyncio.Queue[aiomqtt.Message] = client._queue
    waiting = client.messages
    taken = 0
    while True:
        try:
            message = queue.get_nowait()
        except asyncio.QueueEmpty:
            message = await anext(waiting)
        else:
            taken += 1
            if taken % READ_BATCH == 0:
                await asyncio.sleep(0)
        yield message


def is_up(client: aiomqtt.Client) -> bool:
    """Whether ``client``'s connection is still open (a worker busy elsewhere learns of a
    lost connection only when it next waits for a message)."""
    return bool(client._client.is_connected())


def ack(client: aiomqtt.Client, mid: int) -> None:
    """Send the PUBACK of the QoS 1 message ``mid`` received on ``client``'s connection."""
    client._client.ack(mid, 1)


class MqttCommandSender:
    """Publishes commands over one lazily (re)opened connection, QoS 1."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._v311 = False

    async def send(self, site: str, gateway: str, request_id: str, payload: bytes) -> None:
        async with self._lock:
            for attempt in (1, 2):
                client = await self._connected()
                try:
                    await client.publish(command_topic(site, gateway, request_id), payload,
                                         qos=1)
                    return
                except aiomqtt.MqttError:
                    await self.close()
                    if attempt == 2:
                        raise

    async def _connected(self) -> aiomqtt.Client:
        if self._client is None:
            client = client_for(self.settings, name="api", v311=self._v311)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as exc:
                if self._v311 or error_code(exc) not in UNSUPPORTED_PROTOCOL:
                    raise
                self._v311 = True
                client = client_for(self.settings, name="api", v311=True)
                await client.__aenter__()
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
