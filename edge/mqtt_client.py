"""One MQTT connection driven by the asyncio loop: paho-mqtt with no thread of its own.

The only module of :mod:`edge` importing paho-mqtt. :func:`open_connection` runs paho's
blocking ``connect()`` (TCP, TLS handshake, CONNECT) on a worker thread, then the loop
owns the socket through a :class:`_Wire`, which paho sees as its socket: a reader takes
what the kernel has in one ``recv``, a writer is registered only while bytes wait for
room in the socket, and a task calls ``loop_misc()`` (keepalive) every second.

paho keeps the protocol's rare parts (CONNECT/CONNACK, SUBSCRIBE, incoming commands and
their acknowledgements, keepalive, DISCONNECT, QoS 2). The one frequent exchange, a QoS 1
PUBLISH and its PUBACK, is done here: :meth:`MqttConnection.send` writes the packet and
remembers a callback under its packet id; the PUBACK calls it. paho's own path costs
more per message than everything else the gateway does for it (a message object, locks,
a ``send`` per packet, three ``recv`` per PUBACK, property and reason-code objects).
Everything written in one event-loop turn, by paho or by :meth:`MqttConnection.send`,
leaves in one ``send``, in the order it was written.

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
import ssl
import struct
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
_PUBLISH = 0x30
_PUBACK = 0x40
_READ_SIZE = 65536
_MAX_PAYLOAD = 268_435_455
_LINGER = 1.0
"""Seconds a closed wire keeps trying to send what was left (a DISCONNECT)."""
MAX_INCOMING_PACKET = 16 * 1024 * 1024
"""MQTT 5 Maximum Packet Size in CONNECT: commands are a few hundred bytes; a compliant
broker discards a larger packet for us rather than make the gateway buffer it."""
_REFUSALS = {
    0x80: "Unspecified error", 0x83: "Implementation specific error",
    0x87: "Not authorized", 0x90: "Topic Name invalid", 0x91: "Packet Identifier in use",
    0x92: "Packet Identifier not found", 0x97: "Quota exceeded",
    0x99: "Payload format invalid",
}
"""MQTT 5 failure reason codes of PUBACK and PUBCOMP, for the log only: a broker may send
others, which paho's ReasonCode cannot even be built from."""
_pack_u16 = struct.Struct("!H").pack


def _to_debug(record: logging.LogRecord) -> bool:
    """paho logs a dropped connection at ERROR; the publisher reports it (once)."""
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return library_log.isEnabledFor(logging.DEBUG)


library_log.addFilter(_to_debug)


class ProtocolRefused(BrokerUnavailable):
    """The broker does not speak the MQTT version asked for (CONNACK 132 / rc 1)."""


MessageHandler = Callable[[str, bytes], None]
Done = Callable[[int, bool], None]
"""Called with a message's token: True once acknowledged, False when the broker refused it."""


def _remaining_length(length: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    if length < 128:
        return bytes((length,))
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


class _Wire:
    """The connection's socket as paho sees it (``client._sock``).

    Reading: :meth:`readable` takes what the kernel has (TLS: and what the TLS layer
    holds) in one ``recv``, cuts it into packets, settles the PUBACKs of
    :meth:`MqttConnection.send` itself and keeps every other packet, whole, for paho,
    whose ``loop_read`` then reads it from :meth:`recv` without a system call. A packet
    cut by the end of a read waits here for its rest, so paho never sees half of one;
    once its length is known it is only appended to until whole, so a large packet
    costs time linear in its size however many reads it takes.

    Writing: :meth:`send` (paho's packets) and :meth:`write` (ours) only collect bytes;
    they leave together at the end of the event-loop turn, in the order written. What
    the socket has no room for waits, with a writer registered, and goes first later.
    :meth:`close` lets what is collected (a DISCONNECT) leave for up to
    :data:`_LINGER` seconds before the socket closes; :meth:`abort` closes at once.

    paho uses ``recv``, ``send`` and ``close`` of its socket once connected (``fileno``
    too, in ``loop()``, which is not used here; ``setblocking`` is in its socket
    protocol); nothing else is forwarded to the real socket, so a paho that starts using
    more fails loudly instead of going around the framing.
    """

    def __init__(self, sock: Any, connection: MqttConnection) -> None:
        self.sock = sock
        self._conn = connection
        self._loop = connection._loop
        self._fd: int = sock.fileno()
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._inbuf = bytearray()  # the start of a packet whose rest has not arrived
        self._need = 0  # len(_inbuf) once that packet is whole (0: its length is not known)
        self._for_paho = b""  # whole packets for paho's loop_read
        self._paho_pos = 0
        self._out: list[bytes] = []
        self._stuck: bytes | None = None  # what the socket took none or part of, exactly
        self._flushing = False  # a flush is planned for the end of this loop turn
        self._writer = False
        self._linger: asyncio.TimerHandle | None = None
        self.closed = False
        """No more reading or writing (the socket may still be sending what was left)."""
        self.gone: asyncio.Future[None] = self._loop.create_future()
        """Done once the socket is closed."""

    # -- paho's side --------------------------------------------------------------------
    def recv(self, size: int) -> bytes:
        data, pos = self._for_paho, self._paho_pos
        if pos >= len(data):
            raise BlockingIOError  # paho: nothing more now (never half a packet)
        self._paho_pos = end = min(pos + size, len(data))
        return data[pos:end]

    def send(self, data: bytes | bytearray) -> int:
        self.write(bytes(data))
        return len(data)

    def fileno(self) -> int:
        return self._fd

    def setblocking(self, flag: bool) -> None:
        """paho's socket protocol has it (paho calls it on a socket it has just made)."""
        if flag:
            raise ValueError("the MQTT wire is never blocking")

    def close(self) -> None:
        """Stop reading and close once what is collected (a DISCONNECT, say) has left,
        waiting up to :data:`_LINGER` seconds for room in the socket: a DISCONNECT
        dropped here makes the broker publish the will."""
        if self.closed:
            return
        self.closed = True
        self.detach()
        if self._send_rest():
            return
        self._writer = True
        self._loop.add_writer(self._fd, self._send_rest)
        self._linger = self._loop.call_later(_LINGER, self._shut)

    def abort(self) -> None:
        """Close now; nothing collected or half sent leaves."""
        self.closed = True
        self._out.clear()
        self._stuck = None
        self.detach()
        self._shut()

    def unread(self) -> int:
        """Bytes of whole packets paho has not read yet. (Not ``pending``: that is
        SSLSocket's bytes held by the TLS layer, which paho's ``loop()`` asks for.)"""
        return len(self._for_paho) - self._paho_pos

    def detach(self) -> None:
        """Stop watching the socket."""
        if self.gone.done():
            return  # the descriptor's number may already be another socket's
        self._loop.remove_reader(self._fd)
        if self._writer:
            self._writer = False
            self._loop.remove_writer(self._fd)

    # -- reading --------------------------------------------------------------------------
    def attach(self) -> None:
        self._loop.add_reader(self._fd, self.readable)

    def readable(self) -> None:
        try:
            data = self.sock.recv(_READ_SIZE)
            while self._tls and data and self.sock.pending() > 0:
                data += self.sock.recv(_READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except (OSError, ValueError) as exc:
            self._conn._lose(exc)
            return
        if not data:
            self._conn._lose(ConnectionError("closed by the broker"))
            return
        try:
            self._take(data)
            client = self._conn._client
            while self.unread() and not self.closed:
                if client.loop_read() != _SUCCESS:
                    break
            if self.unread() == 0:
                self._for_paho, self._paho_pos = b"", 0
            self._conn._paho_write()
        except ValueError as exc:  # a malformed packet length
            self._conn._lose(exc)
        except Exception as exc:
            # paho or a callback failed half-way through a packet: its state, or ours,
            # cannot be trusted for the next one.
            log.error("MQTT connection to %s: reading failed", self._conn._url, exc_info=True)
            self._conn._lose(exc)

    def _take(self, data: bytes) -> None:
        """Add what one read got: settle the PUBACKs now whole, keep the other whole
        packets for paho and the start of a packet cut by the end of the read."""
        buf = self._inbuf
        if buf:
            buf += data
            if len(buf) < self._need:
                return  # the packet being waited for is still not whole
            end, self._need, acks = self._packets(buf)
            del buf[:end]
        else:
            end, self._need, acks = self._packets(data)
            if end < len(data):
                self._inbuf = bytearray(data[end:])
        # The framing is consistent before any callback runs (one may fail or end the
        # connection).
        acked = self._conn._acked
        for mid, entry, reason in acks:
            acked(mid, entry, reason)

    def _packets(self, data: bytes | bytearray) -> tuple[int, int, list[tuple[int, Any, int]]]:
        """Cut ``data`` into packets: PUBACKs of ours are taken from the connection's
        table and returned, the others kept for paho. Returns where the whole packets
        end, the length the packet there needs (0 while its header is incomplete) and
        the PUBACKs."""
        acks = self._conn._acks
        settled: list[tuple[int, Any, int]] = []
        for_paho: list[bytes | bytearray] = []
        pos, end, need = 0, len(data), 0
        while end - pos >= 2:
            i, length, shift, whole = pos + 1, 0, 0, False
            while i < end:
                byte = data[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    whole = True
                    break
                shift += 7
                if shift > 21:
                    raise ValueError("malformed packet length from the broker")
            stop = i + length
            if not whole or stop > end:
                if whole:
                    need = stop - pos
                break  # the rest of this packet is still on its way
            if data[pos] == _PUBACK and length >= 2:
                mid = data[i] << 8 | data[i + 1]
                entry = acks.pop(mid, None)
                if entry is not None:
                    settled.append((mid, entry, data[i + 2] if length > 2 else 0))
                    pos = stop
                    continue
            for_paho.append(data[pos:stop])
            pos = stop
        if for_paho:
            rest = self._for_paho[self._paho_pos:]
            self._for_paho, self._paho_pos = rest + b"".join(for_paho), 0
        return pos, need, settled

    # -- writing --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._out.append(data)
        if not self._flushing and not self._writer:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        if self.closed:
            return
        try:
            done = self._send_collected()
        except (OSError, ValueError) as exc:
            self._conn._lose(exc)
            return
        if done and self._writer:
            self._writer = False
            self._loop.remove_writer(self._fd)
        elif not done and not self._writer:
            self._writer = True
            self._loop.add_writer(self._fd, self._flush)

    def _send_rest(self) -> bool:
        """Closing: send what is left that the socket has room for; shut once all has
        left (or the socket failed). Whether it shut."""
        try:
            done = self._send_collected()
        except (OSError, ValueError):
            done = True
        if done:
            self._shut()
        return done

    def _shut(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._writer:
            self._writer = False
            self._loop.remove_writer(self._fd)
        self._out.clear()
        self._stuck = None
        if not self.gone.done():
            self.gone.set_result(None)
            self.sock.close()

    def _send_collected(self) -> bool:
        """Send what waits; True when all of it went."""
        while True:
            data = self._stuck
            if data is None:
                if not self._out:
                    return True
                data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
                self._out.clear()
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                sent = 0
            # TLS: a send that raised must be repeated with the same bytes.
            self._stuck = data[sent:] if sent < len(data) else None
            if self._stuck is not None:
                if sent == 0:
                    self._stuck = data
                return False


class MqttConnection:
    """An open connection: publish, subscribe, receive, end. Loop thread only."""

    def __init__(self, client: paho.Client, url: str,
                 on_message: MessageHandler | None = None) -> None:
        self._client = client
        self._url = url
        self._loop = asyncio.get_running_loop()
        self._wire: _Wire | None = None
        self._misc: asyncio.Task[None] | None = None
        self._connack: asyncio.Future[tuple[Any, Any]] = self._loop.create_future()
        self._subscribes: dict[int, asyncio.Future[list[Any]]] = {}
        self._acks: dict[int, tuple[Done, int]] = {}
        """Our QoS 1 publishes waiting for their PUBACK, by packet id."""
        self._paho_acks: dict[int, tuple[Done, int]] = {}
        """QoS 2 publishes (paho's), by packet id."""
        self._v5 = client.protocol == MQTTProtocolVersion.MQTTv5
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
    def send(self, topic: str, payload: bytes, qos: int, retain: bool, done: Done,
             token: int) -> None:
        """Send now (the bytes leave at the end of this loop turn); ``done(token, True)``
        on PUBACK (QoS 0: soon), ``done(token, False)`` when the broker refused it
        (MQTT 5 reason code, logged); never when the connection is lost first. Raises
        ValueError for a message that cannot be encoded and PublishError when the
        connection is gone."""
        wire = self._wire
        if wire is None or wire.closed or self.lost.done():
            raise PublishError(f"publish to {self._url} failed: not connected")
        name = topic.encode()
        if not name and not self._v5:
            raise ValueError("Invalid topic.")
        if b"+" in name or b"#" in name:
            raise ValueError("Publish topic cannot contain wildcards.")
        if len(name) > 65535:
            raise ValueError("Publish topic is too long.")
        if len(payload) > _MAX_PAYLOAD:
            raise ValueError("Payload too large.")
        if qos == 2:
            self._paho_publish(name, topic, payload, retain, done, token)
            return
        if qos == 1:
            acks = self._acks
            mid = self._client._mid_generate()
            while mid in acks or mid in self._subscribes or mid in self._paho_acks:
                mid = self._client._mid_generate()
            variable = _pack_u16(len(name)) + name + _pack_u16(mid)
        elif qos == 0:
            variable = _pack_u16(len(name)) + name
        else:
            raise ValueError("Invalid QoS level.")
        if self._v5:
            variable += b"\x00"  # no properties
        wire.write(bytes((_PUBLISH | qos << 1 | retain,))
                   + _remaining_length(len(variable) + len(payload)) + variable + payload)
        if qos == 1:
            acks[mid] = (done, token)
        else:
            self._loop.call_soon(done, token, True)

    def _paho_publish(self, name: bytes, topic: str, payload: bytes, retain: bool, done: Done,
                      token: int) -> None:
        info = self._client.publish(topic, payload, 2, retain)
        if info.rc != _SUCCESS:
            raise PublishError(f"publish to {self._url} failed: {paho.error_string(info.rc)}")
        self._paho_acks[info.mid] = (done, token)

    def publish(self, topic: str, payload: bytes, qos: int = 1,
                retain: bool = False) -> asyncio.Future[bool]:
        """:meth:`send` with a future: True on PUBACK (QoS 0: at once), False when the
        broker refused the message."""
        future: asyncio.Future[bool] = self._loop.create_future()

        def done(_token: int, ok: bool) -> None:
            if not future.done():
                future.set_result(ok)

        self.send(topic, payload, qos, retain, done, 0)
        return future

    def _acked(self, mid: int, entry: tuple[Done, int], reason: int) -> None:
        """The broker answered a publish (PUBACK; QoS 2: PUBCOMP) with ``reason``, the
        raw MQTT 5 reason code: any value from 0x80 up is a refusal, named or not."""
        done, token = entry
        if reason >= 0x80:
            log.warning("broker %s refused a message (mid %d): reason 0x%02X %s; dropped",
                        self._url, mid, reason, _REFUSALS.get(reason, "(unknown)"))
        try:
            done(token, reason < 0x80)
        except Exception:
            log.exception("PUBACK callback failed")

    async def subscribe(self, topic: str, qos: int, within: float) -> None:
        rc, mid = self._client.subscribe(topic, qos)
        if rc != _SUCCESS or mid is None:
            raise PublishError(f"subscribe to {topic} failed: {paho.error_string(rc)}")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        self._subscribes[mid] = future
        self._paho_write()
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
            self._paho_write()
            with contextlib.suppress(TimeoutError, PublishError):
                await asyncio.wait_for(asyncio.shield(self.lost), within)
            if self._wire is not None:  # paho closed it once DISCONNECT was collected
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._wire.gone), within)
        self.abort()

    def abort(self) -> None:
        """Close the socket without DISCONNECT: the broker publishes the will."""
        self._ending = True
        if self._wire is not None:
            self._wire.abort()  # nothing more leaves, DISCONNECT least of all
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
        self._wire = _Wire(sock, self)
        self._client._sock = self._wire  # paho reads and writes through the wire from now
        self._wire.attach()
        self._misc = self._loop.create_task(self._housekeeping(), name="mqtt-keepalive")
        self._paho_write()  # what of the CONNECT the socket did not take at once

    def _paho_write(self) -> None:
        """Hand paho's queued packets to the wire. paho writes as it queues, except while
        one of its callbacks runs (or the socket had no room before the wire took over)."""
        if self._client.want_write():
            self._client.loop_write()

    async def _housekeeping(self) -> None:
        while self._client.loop_misc() == _SUCCESS:
            self._paho_write()
            await asyncio.sleep(1.0)

    def _on_socket_close(self, _client: Any, _userdata: Any, _sock: Any) -> None:
        if self._wire is not None:
            self._wire.detach()

    def _lose(self, exc: BaseException) -> None:
        if self._wire is not None:
            self._wire.abort()
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
        self._acks.clear()  # the outbox keeps them for the next connection
        self._paho_acks.clear()

    # -- paho callbacks (on the loop thread, from loop_read/loop_misc/loop_write) -------
    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, properties: Any) -> None:
        if not self._connack.done():
            self._connack.set_result((reason, properties))

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self._end(PublishError(f"connection to {self._url} lost: {reason}"))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        entry = self._paho_acks.pop(mid, None)
        if entry is not None:  # PUBCOMP's reason: only its number is used (0x92 is no PUBACK's)
            self._acked(mid, entry, int(getattr(reason, "value", 0)))

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
        properties.MaximumPacketSize = MAX_INCOMING_PACKET
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
