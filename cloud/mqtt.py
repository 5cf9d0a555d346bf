"""The cloud's MQTT adapter (the only aiomqtt importer in ``cloud``).

Connections for ingest workers, and :class:`MqttCommandSender`, which publishes
commands from the API to the gateways (``tw/v1/{site}/{gateway}/cmd/{request_id}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from typing import Any

import aiomqtt

from cloud.settings import MqttSettings
from towerwatch.contract import command_topic

log = logging.getLogger(__name__)

MqttError = aiomqtt.MqttError
UNSUPPORTED_PROTOCOL = (132, 1)
"""CONNACK codes of a broker that does not speak the MQTT version we asked for."""


def error_code(exc: BaseException) -> Any:
    return getattr(exc, "rc", None)


def client_for(settings: MqttSettings, *, name: str, v311: bool = False) -> aiomqtt.Client:
    """A client for the configured broker; TLS is verified (CA file or system store)."""
    scheme, _, rest = settings.url.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    tls = None
    if scheme == "mqtts":
        tls = aiomqtt.TLSParameters(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            cert_reqs=ssl.CERT_REQUIRED)
    version = aiomqtt.ProtocolVersion.V311 if v311 else aiomqtt.ProtocolVersion.V5
    identifier = settings.client_id or f"tw-{name}-{random.getrandbits(32):08x}"
    return aiomqtt.Client(
        host or rest, int(port or (8883 if tls else 1883)), identifier=identifier,
        username=settings.username, password=settings.password(), protocol=version,
        tls_params=tls, keepalive=30)


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
