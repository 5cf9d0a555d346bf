"""The MQTT connection's own QoS 1 path: the bytes it writes are paho's, and the reader
cuts PUBACKs out of any split of the stream while paho gets every other packet whole,
in time linear in its size. A refusal of any reason code, or paho failing on a packet,
never leaves the stream misframed; a graceful close lets DISCONNECT out, an abort nothing."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.config import MqttConfig
from edge.errors import PublishError
from edge.mqtt_client import (
    MAX_INCOMING_PACKET,
    MqttConnection,
    _remaining_length,
    _Wire,
    open_connection,
)


class _Stub:
    """What the wire needs of a connection when only its reader is tested."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mids: list[int]) -> None:
        self._loop = loop
        self._acks: dict[int, tuple[Any, int]] = {mid: (None, mid * 10) for mid in mids}
        self.acked: list[tuple[int, int, int]] = []

    def _acked(self, mid: int, entry: tuple[Any, int], reason: int) -> None:
        self.acked.append((mid, entry[1], reason))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _drain(wire: _Wire) -> bytes:
    out = b""
    while True:
        try:
            out += wire.recv(3)  # paho reads in small pieces
        except BlockingIOError:
            return out


@pytest.mark.parametrize("length", [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151,
                                    2_097_152, 268_435_455])
def test_remaining_length_is_mqtts_variable_length_encoding(length: int) -> None:
    expected = bytearray()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client._pack_remaining_length(expected, length)
    assert _remaining_length(length) == bytes(expected)


async def test_pubacks_are_settled_and_the_rest_reaches_paho_whole_at_any_split(
        pair: tuple[socket.socket, socket.socket]) -> None:
    long_publish = b"\x32" + _remaining_length(300) + b"\x00\x03a/b\x00\x07" + b"x" * 293
    stream = [
        b"\x40\x02\x00\x01",  # PUBACK 1 (3.1.1 form)
        b"\xd0\x00",  # PINGRESP: paho's
        b"\x40\x02\x00\x09",  # PUBACK of a packet id that is not ours: paho's
        b"\x40\x03\x00\x02\x87",  # PUBACK 2, refused (MQTT 5 reason code)
        long_publish,  # an incoming command: paho's
        b"\x40\x04\x01\x00\x00\x00",  # PUBACK 256, success with an empty property length
    ]
    data = b"".join(stream)
    paho_part = stream[1] + stream[2] + stream[4]
    loop = asyncio.get_running_loop()
    for cut in range(1, len(data)):
        stub = _Stub(loop, [1, 2, 256])
        wire = _Wire(pair[0], stub)  # type: ignore[arg-type]
        wire._take(data[:cut])
        got = _drain(wire)
        wire._take(data[cut:])
        got += _drain(wire)
        assert wire._inbuf == b""
        assert stub.acked == [(1, 10, 0), (2, 20, 0x87), (256, 2560, 0)], cut
        assert got == paho_part, cut


@pytest.mark.parametrize("v5", [True, False])
@pytest.mark.parametrize(("qos", "retain", "payload"),
                         [(1, False, b'{"seq":1}'), (1, True, b"y" * 200), (0, False, b""),
                          (1, False, b"z" * 20_000)])
async def test_a_publish_is_written_byte_for_byte_as_paho_writes_it(
        pair: tuple[socket.socket, socket.socket], v5: bool, qos: int, retain: bool,
        payload: bytes) -> None:
    protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)
    connection = MqttConnection(client, "mqtt://test")
    wire = _Wire(pair[0], connection)
    connection._wire = wire
    client._sock = wire
    topic = "tw/v1/site/gw/telemetry/pump-1"
    last_mid = client._last_mid

    async def written() -> bytes:
        await asyncio.sleep(0)  # the wire sends at the end of the loop turn
        await asyncio.sleep(0)
        out = b""
        while True:
            try:
                chunk = pair[1].recv(65536)
            except BlockingIOError:
                return out
            out += chunk

    connection.send(topic, payload, qos, retain, lambda _t, _ok: None, 7)
    ours = await written()
    client._last_mid = last_mid  # paho numbers it the same
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED  # type: ignore[attr-defined]
    client.publish(topic, payload, qos, retain)
    assert ours == await written()
    wire.close()


async def test_the_bytes_of_one_loop_turn_leave_in_one_send_in_order(
        pair: tuple[socket.socket, socket.socket]) -> None:
    loop = asyncio.get_running_loop()
    wire = _Wire(pair[0], _Stub(loop, []))  # type: ignore[arg-type]
    sends: list[bytes] = []
    real = pair[0]

    class Counting:
        def send(self, data: bytes) -> int:
            sends.append(bytes(data))
            return real.send(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    wire.sock = Counting()
    for n in range(50):
        wire.write(b"%d," % n)
    wire.send(bytearray(b"paho"))
    await asyncio.sleep(0)
    assert sends == [b"".join(b"%d," % n for n in range(50)) + b"paho"]
    wire.close()


def _connected(sock: socket.socket, *, v5: bool) -> tuple[MqttConnection, _Wire]:
    """A connection paho believes connected, its socket ``sock`` behind a wire."""
    protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol)
    client.suppress_exceptions = True
    connection = MqttConnection(client, "mqtt://test")
    wire = _Wire(sock, connection)
    connection._wire = wire
    client._sock = wire
    client._state = paho._ConnectionState.MQTT_CS_CONNECTED  # type: ignore[attr-defined]
    return connection, wire


def _read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


@pytest.mark.parametrize("reason", [0x81, 0x82, 0x84, 0x87, 0x92, 0xA3, 0xFF])
async def test_any_puback_reason_from_0x80_is_a_refusal_and_the_stream_stays_framed(
        pair: tuple[socket.socket, socket.socket], reason: int,
        caplog: pytest.LogCaptureFixture) -> None:
    # paho's ReasonCode table has no PUBACK entry for most of these (building one raises).
    connection, wire = _connected(pair[0], v5=True)
    settled: list[tuple[int, bool]] = []
    for mid in (1, 2, 3):
        connection._acks[mid] = (lambda token, ok: settled.append((token, ok)), 100 + mid)
    connection._client._ping_t = 5.0  # a PINGREQ is out
    pair[1].send(b"\x40\x02\x00\x01" + b"\x40\x03")  # PUBACK 1, then PUBACK 2 cut short
    wire.readable()
    pair[1].send(b"\x00\x02" + bytes((reason,)) + b"\xd0\x00" + b"\x40\x02\x00\x03")
    with caplog.at_level(logging.WARNING, logger="edge.mqtt_client"):
        wire.readable()
    assert settled == [(101, True), (102, False), (103, True)]
    assert connection._client._ping_t == 0  # PINGRESP: paho's
    assert not connection.lost.done()
    assert wire._inbuf == b"" and wire.unread() == 0
    assert f"0x{reason:02X}" in caplog.text
    wire.abort()


async def test_a_qos2_pubcomp_refusal_settles_the_message_as_refused(
        pair: tuple[socket.socket, socket.socket]) -> None:
    connection, wire = _connected(pair[0], v5=True)
    settled: list[tuple[int, bool]] = []
    connection.send("a/b", b"x", 2, False, lambda token, ok: settled.append((token, ok)), 7)
    (mid,) = connection._paho_acks
    pair[1].send(b"\x50\x02" + mid.to_bytes(2, "big"))  # PUBREC
    wire.readable()
    pair[1].send(b"\x70\x03" + mid.to_bytes(2, "big") + b"\x92")  # PUBCOMP: id not found
    wire.readable()
    assert settled == [(7, False)]
    assert connection._paho_acks == {}
    wire.abort()


async def test_paho_failing_on_a_packet_ends_the_connection(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    connection, wire = _connected(pair[0], v5=False)
    wire.attach()

    def broken(max_packets: int = 1) -> Any:
        raise RuntimeError("cannot decode")

    monkeypatch.setattr(connection._client, "loop_read", broken)
    pair[1].send(b"\xd0\x00")
    wire.readable()  # raises nothing: the connection is lost instead
    assert connection.lost.done()
    with pytest.raises(PublishError, match="cannot decode"):
        connection.lost.result()
    assert wire.closed and wire.gone.done()


async def test_a_multi_megabyte_command_is_parsed_in_linear_time_over_a_broker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    topic = b"cmd/x"
    variable = len(topic).to_bytes(2, "big") + topic + b"\x00"  # MQTT 5: no properties
    payload = b"c" * 5_000_000
    command = b"\x30" + _remaining_length(len(variable) + len(payload)) + variable + payload
    connects: list[bytes] = []
    handlers: list[asyncio.Task[Any]] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        header = await reader.readexactly(2)
        length, shift, byte = 0, 0, header[1]
        while True:
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            byte = (await reader.readexactly(1))[0]
        connects.append(await reader.readexactly(length))
        writer.write(b"\x20\x03\x00\x00\x00")  # CONNACK
        for start in range(0, len(command), 4096):  # the command in small pieces
            writer.write(command[start:start + 4096])
            await writer.drain()
        await reader.read()  # until the client closes
        writer.close()
        await writer.wait_closed()

    parsed: list[int] = []  # bytes the wire scans for packet boundaries
    packets = _Wire._packets

    def counting(self: _Wire, data: bytes | bytearray) -> Any:
        parsed.append(len(data))
        return packets(self, data)

    monkeypatch.setattr(_Wire, "_packets", counting)
    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    received: asyncio.Future[tuple[str, bytes]] = asyncio.get_running_loop().create_future()

    def on_message(topic: str, body: bytes) -> None:
        if not received.done():
            received.set_result((topic, body))

    connection = await open_connection(
        MqttConfig(url=f"mqtt://127.0.0.1:{port}", keepalive=30, protocol="5"),
        client_id="t", v5=True, will_topic="w", will=b"x", session_expiry=10, within=5,
        on_message=on_message)
    try:
        got_topic, got = await asyncio.wait_for(received, 30)
    finally:
        connection.abort()
        server.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        await server.wait_closed()
    assert (got_topic, len(got)) == ("cmd/x", len(payload)) and got == payload
    # Each byte is scanned about once, however many reads the packet took (re-scanning
    # what had come so far on every read would be hundreds of times the packet's size).
    assert sum(parsed) < 2 * len(command), (len(parsed), sum(parsed))
    # The CONNECT tells an MQTT 5 broker how large a packet the gateway takes.
    assert b"\x27" + MAX_INCOMING_PACKET.to_bytes(4, "big") in connects[0]


async def test_a_graceful_disconnect_waits_for_room_in_the_socket(
        pair: tuple[socket.socket, socket.socket]) -> None:
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection, wire = _connected(pair[0], v5=False)
    connection.send("a/b", b"p" * 1_000_000, 0, False, lambda _t, _ok: None, 1)
    await asyncio.sleep(0)
    assert wire._stuck is not None  # the broker has not read yet: the socket is full
    loop = asyncio.get_running_loop()

    async def broker() -> bytes:
        await asyncio.sleep(0.1)
        out = b""
        while chunk := await loop.sock_recv(pair[1], 1 << 20):
            out += chunk
        return out

    reading = asyncio.create_task(broker())
    await connection.disconnect(2.0)
    got = await asyncio.wait_for(reading, 5)
    assert got.endswith(b"\xe0\x00")  # DISCONNECT: the broker discards the will
    assert len(got) == 1_000_000 + 2 + 5 + 2 + 2  # the publish whole, then DISCONNECT
    assert wire.gone.done()


async def test_abort_sends_nothing_more_not_even_half_a_packet(
        pair: tuple[socket.socket, socket.socket]) -> None:
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection, wire = _connected(pair[0], v5=False)
    connection.send("a/b", b"p" * 1_000_000, 0, False, lambda _t, _ok: None, 1)
    await asyncio.sleep(0)
    assert wire._stuck is not None
    before = _read_all(pair[1])  # the socket has room again, the wire has not sent yet
    connection.abort()
    assert getattr(wire, "_stuck") is None and wire.gone.done()  # noqa: B009 (mypy narrowed it)
    assert _read_all(pair[1]) == b""  # end of stream, nothing after what had left
    assert 0 < len(before) < 1_000_000


def test_the_wire_gives_paho_its_socket_protocol_and_nothing_else(
        pair: tuple[socket.socket, socket.socket]) -> None:
    loop = asyncio.new_event_loop()
    try:
        wire = _Wire(pair[0], _Stub(loop, []))  # type: ignore[arg-type]
        for name in ("recv", "send", "close", "fileno", "setblocking"):
            assert callable(getattr(wire, name))
        # ``pending`` least of all: paho's loop() takes it for SSLSocket.pending.
        for name in ("pending", "getpeername", "settimeout", "shutdown", "makefile"):
            assert not hasattr(wire, name), name
        with pytest.raises(ValueError, match="never blocking"):
            wire.setblocking(True)
    finally:
        loop.close()
    # What paho asks of its socket: a new name here needs a look at the wire first.
    used = set(re.findall(r"self\._sock\.(\w+)", inspect.getsource(paho.Client)))
    assert used <= {"recv", "send", "setblocking", "pending"}, used
