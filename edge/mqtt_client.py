"""One MQTT connection driven by the asyncio loop: paho-mqtt with no thread of its own.

The only module of :mod:`edge` importing paho-mqtt. :func:`open_connection` runs paho's
blocking ``connect()`` (TCP, TLS handshake, CONNECT) on a worker thread, then the loop
owns the socket: a reader calls ``loop_read()``, a writer is registered only while
paho has bytes it could not send at once, and a task calls ``loop_misc()`` (keepalive)
every second. A publish is written to the socket inside :meth:`MqttConnection.publish`
(one ``send``) and returns a future that the PUBACK resolves: no task, event or
timeout per message.

A connection ends one of three ways, and :attr:`MqttConnection.lost` says when it did:
the broker or the network drops it (``lost`` holds a :class:`~edge.errors.PublishError`
naming why), :meth:`MqttConnection.disconnect` sends DISCONNECT (the broker discards
the will), or :meth:`MqttConnection.abort` closes the socket without one (the broker
publishes the will). Publishes still waiting for their PUBACK when a connection is lost
stay unresolved: the outbox still holds them, and the next connection sends them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import MqttConfig
from edge.errors import BrokerUnavailable, PublishError
from edge.tls import tls_context, tls_failure

log = logging.getLogger(__name__)
library_log = logging.getLogger("edge.mqtt.paho")

UNSUPPORTED_PROTOCOL = 132
"""MQTT 5 CONNACK reason "unsupported protocol version" (paho maps a 3.1.1 rc 1 to it)."""
_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS


def _to_debug(record: logging.LogRecord) -> bool:
    """paho logs a dropped connection at ERROR; the publisher reports it (once)."""
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return library_log.isEnabledFor(logging.DEBUG)


library_log.addFilter(_to_debug)


class ProtocolRefused(BrokerUnavailable):
    """The broker does not speak the MQTT version asked for (CONNACK 132 / rc 1)."""


MessageHandler = Callable[[str, bytes], None]


class MqttConnection:
    """An open connection: publish, subscribe, receive, end. Loop thread only."""

    def __init__(self, client: paho.Client, url: str,
                 on_message: MessageHandler | None = None) -> None:
        self._client = client
        self._url = url
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = None
        self._writing = False
        self._misc: asyncio.Task[None] | None = None
        self._connack: asyncio.Future[tuple[Any, Any]] = self._loop.create_future()
        self._subscribes: dict[int, asyncio.Future[list[Any]]] = {}
        self._publishes: dict[int, asyncio.Future[bool]] = {}
        self._ending = False
        self.lost: asyncio.Future[None] = self._loop.create_future()
        """Done when the connection ended; holds a PublishError unless we ended it."""
        self.receive_max: int | None = None
        """The broker's MQTT 5 Receive Maximum, if it sent one."""
        self._on_message_handler = on_message
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_close = self._on_socket_close

    # -- publishing ---------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1,
                retain: bool = False) -> asyncio.Future[bool]:
        """Send now; the future is True on PUBACK (QoS 0: at once), False when the broker
        refused it (MQTT 5 reason code, logged). Raises ValueError for a message paho
        cannot encode and PublishError when the connection is gone."""
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != _SUCCESS:
            raise PublishError(f"publish to {self._url} failed: {paho.error_string(info.rc)}")
        future: asyncio.Future[bool] = self._loop.create_future()
        if qos == 0:
            future.set_result(True)
        else:
            self._publishes[info.mid] = future
        if not self._writing and self._client.want_write():
            self._want_write()
        return future

    async def subscribe(self, topic: str, qos: int, within: float) -> None:
        rc, mid = self._client.subscribe(topic, qos)
        if rc != _SUCCESS or mid is None:
            raise PublishError(f"subscribe to {topic} failed: {paho.error_string(rc)}")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        self._subscribes[mid] = future
        self._want_write()
        try:
            codes = await self.wait_for(future, within, "SUBACK")
        finally:
            self._subscribes.pop(mid, None)
        for code in codes:
            if getattr(code, "is_failure", False):
                raise PublishError(f"broker {self._url} refused the subscription to "
                                   f"{topic}: {code}")

    # -- ending -------------------------------------------------------------------------
    async def disconnect(self, within: float) -> None:
        """Send DISCONNECT (the broker discards the will) and close."""
        self._ending = True
        if self._client.disconnect() == _SUCCESS:
            self._want_write()
            with contextlib.suppress(TimeoutError, PublishError):
                await asyncio.wait_for(asyncio.shield(self.lost), within)
        self.abort()

    def abort(self) -> None:
        """Close the socket without DISCONNECT: the broker publishes the will."""
        self._ending = True
        self._client._sock_close()
        self._end(None)

    # -- waiting for the broker ---------------------------------------------------------
    async def wait_for(self, future: asyncio.Future[Any], within: float, what: str) -> Any:
        """The result of ``future``; PublishError when the connection ends first or
        ``within`` seconds pass."""
        done, _ = await asyncio.wait({future, self.lost}, timeout=within,
                                     return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            return future.result()
        if self.lost.done():
            self.lost.result()  # raises why
            raise PublishError(f"connection to {self._url} closed while waiting for {what}")
        raise PublishError(f"no {what} from {self._url} within {within:g} s")

    # -- socket events ------------------------------------------------------------------
    def _attach(self) -> None:
        sock = self._client.socket()
        if sock is None:
            raise PublishError(f"connection to {self._url} closed during connect")
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._readable)
        self._misc = self._loop.create_task(self._housekeeping(), name="mqtt-keepalive")
        self._want_write()

    def _readable(self) -> None:
        client = self._client
        try:
            rc = client.loop_read()
            sock: Any = client.socket()
            pending = getattr(sock, "pending", None)  # TLS: decrypted bytes in the SSL buffer
            while rc == _SUCCESS and pending is not None and pending() > 0:
                rc = client.loop_read()
        except Exception as exc:
            self._lose(exc)
            return
        if client.want_write():
            self._want_write()

    def _want_write(self) -> None:
        if self._fd is None or self._writing or not self._client.want_write():
            return
        try:
            self._client.loop_write()
        except Exception as exc:
            self._lose(exc)
            return
        if self._fd is not None and self._client.want_write():
            self._writing = True
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:
            self._lose(exc)
            return
        if self._fd is not None and not self._client.want_write():
            self._writing = False
            self._loop.remove_writer(self._fd)

    async def _housekeeping(self) -> None:
        while self._client.loop_misc() == _SUCCESS:
            self._want_write()
            await asyncio.sleep(1.0)

    def _on_socket_close(self, _client: Any, _userdata: Any, _sock: Any) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
            self._fd, self._writing = None, False

    def _lose(self, exc: BaseException) -> None:
        self._client._sock_close()
        self._end(PublishError(f"connection to {self._url} lost: {exc}"))

    def _end(self, error: PublishError | None) -> None:
        if self._misc is not None and self._misc is not asyncio.current_task():
            self._misc.cancel()
        if not self._connack.done():
            self._connack.set_exception(error or PublishError("connection closed"))
            self._connack.exception()  # retrieved: an unanswered CONNECT is reported once
        if not self.lost.done():
            if error is None or self._ending:
                self.lost.set_result(None)
            else:
                self.lost.set_exception(error)
                self.lost.exception()
        self._publishes.clear()  # the outbox keeps them for the next connection

    # -- paho callbacks (on the loop thread, from loop_read/loop_misc/loop_write) -------
    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, properties: Any) -> None:
        if not self._connack.done():
            self._connack.set_result((reason, properties))

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self._end(PublishError(f"connection to {self._url} lost: {reason}"))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        future = self._publishes.pop(mid, None)
        if future is None or future.done():
            return
        if getattr(reason, "is_failure", False):
            log.warning("broker %s refused a message (mid %d): %s; dropped", self._url, mid,
                        reason)
            future.set_result(False)
        else:
            future.set_result(True)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        future = self._subscribes.get(mid)
        if future is not None and not future.done():
            future.set_result(codes)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        if self._on_message_handler is not None:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                return
            self._on_message_handler(topic, bytes(message.payload))


def _client(config: MqttConfig, client_id: str, *, v5: bool, will_topic: str,
            will: bytes) -> paho.Client:
    try:
        password = config.password()
    except (OSError, ValueError) as exc:
        raise BrokerUnavailable(f"cannot read the MQTT password: {exc}") from exc
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5 if v5
                         else MQTTProtocolVersion.MQTTv311,
                         clean_session=None if v5 else False)
    if library_log.isEnabledFor(logging.DEBUG):  # two log calls per message otherwise
        client.enable_logger(library_log)
    if config.username is not None:
        client.username_pw_set(config.username, password)
    client.will_set(will_topic, will, qos=1, retain=True)
    client.max_inflight_messages_set(config.max_inflight)
    client.max_queued_messages_set(0)
    client.suppress_exceptions = True  # a failing callback is logged, never unwinds paho
    if config.tls:
        client.tls_set_context(tls_context(config))
    return client


def _connect_error(exc: BaseException, url: str) -> BrokerUnavailable:
    if (tls := tls_failure(exc, url)) is not None:
        return tls
    return BrokerUnavailable(f"cannot connect to {url}: {exc}")


async def open_connection(config: MqttConfig, *, client_id: str, v5: bool, will_topic: str,
                          will: bytes, session_expiry: int, within: float,
                          on_message: MessageHandler | None = None) -> MqttConnection:
    """Connect with a persistent session and wait for a successful CONNACK.

    ``on_message`` receives every message from the start: a persistent session may
    deliver queued messages right after the CONNACK, and paho acknowledges them.

    Raises :class:`ProtocolRefused` when the broker does not speak the version, else
    :class:`~edge.errors.BrokerUnavailable` (refused, unreachable, TLS failure).
    """
    client = _client(config, client_id, v5=v5, will_topic=will_topic, will=will)
    connection = MqttConnection(client, config.url, on_message)
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry
    clean_start: Any = False if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY
    connecting = asyncio.ensure_future(asyncio.to_thread(
        client.connect, config.host, config.port, config.keepalive,
        clean_start=clean_start, properties=properties))
    try:
        await asyncio.shield(connecting)
    except asyncio.CancelledError:
        # Let the connect (on its thread) finish, then drop it.
        await asyncio.wait({connecting}, timeout=2 * within)
        if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
            connection.abort()
        raise
    except Exception as exc:
        raise _connect_error(exc, config.url) from exc
    try:
        connection._attach()
        reason, props = await connection.wait_for(connection._connack, within, "CONNACK")
    except BaseException:
        connection.abort()
        raise
    if getattr(reason, "is_failure", False):
        connection.abort()
        if getattr(reason, "value", None) == UNSUPPORTED_PROTOCOL:
            raise ProtocolRefused(f"broker {config.url} refused the connection: {reason}")
        raise BrokerUnavailable(f"broker {config.url} refused the connection: {reason}")
    receive_max = getattr(props, "ReceiveMaximum", None)
    connection.receive_max = int(receive_max) if receive_max else None
    return connection
