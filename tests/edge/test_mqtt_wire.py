"""The MQTT connection's own QoS 1 path: the bytes it writes are paho's, and the reader
cuts PUBACKs out of any split of the stream while paho gets every other packet whole."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.mqtt_client import MqttConnection, _remaining_length, _Wire


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
        wire._packets(data[:cut])
        got = _drain(wire)
        wire._packets(wire._partial + data[cut:])
        got += _drain(wire)
        assert wire._partial == b""
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
