"""The cloud's ingest connection against a real Mosquitto: what has arrived is read in one
event-loop turn (paho reads one QoS 1 message per ``loop_read``) and handed on without a
task per message (aiomqtt's iterator makes one), nothing is lost or reordered, and a lost
connection still ends the iteration."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from cloud.ingest.pipeline import IngestPipeline
from cloud.ingest.worker import IngestWorker
from cloud.mqtt import READ_BATCH, MqttError, ack, client_for, is_up, received
from cloud.settings import IngestSettings, MqttSettings
from tests.servers.mosquitto import MosquittoServer

pytestmark = pytest.mark.integration
TOPIC = "tw/v1/tower-a/gw-1/telemetry/pump-1"
MESSAGES = 300


def _publish(url: str, count: int) -> None:
    """Publish ``count`` QoS 1 messages from another thread and wait until all are sent."""
    host, _, port = url.removeprefix("mqtt://").rpartition(":")
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="tw-test-publisher")
    publisher.connect(host, int(port))
    publisher.loop_start()
    try:
        infos = [publisher.publish(TOPIC, f"{n}".encode(), qos=1) for n in range(count)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()


async def test_what_has_arrived_is_read_in_one_turn(mosquitto: MosquittoServer) -> None:
    settings = MqttSettings(url=mosquitto.url)
    client = client_for(settings, name="ingest-test", receive_maximum=1000)
    reads = 0
    async with client:
        inner = client._client.loop_read

        def counted(max_packets: int = 1) -> MQTTErrorCode:
            nonlocal reads
            reads += 1
            return inner(max_packets)

        client._client.loop_read = counted  # type: ignore[method-assign]
        await client.subscribe("tw/v1/#", qos=1)
        publisher = threading.Thread(target=_publish, args=(mosquitto.url, MESSAGES))
        publisher.start()
        publisher.join(10)  # holding the event loop: the messages wait in the socket
        time.sleep(1.0)  # noqa: ASYNC251  (and the last of them arrive)
        got: list[int] = []
        async with asyncio.timeout(10):
            async for message in received(client):
                got.append(int(bytes(message.payload)))
                ack(client, message.mid)
                if len(got) == MESSAGES:
                    break
    assert got == list(range(MESSAGES))
    # Without batching it takes a read per message; with it, a turn per READ_BATCH (and
    # a few more where a packet straddles two socket reads, or arrived late).
    assert reads < MESSAGES // 4, reads
    assert READ_BATCH < MESSAGES // 4


async def test_a_lost_connection_ends_the_messages(mosquitto: MosquittoServer) -> None:
    client = client_for(MqttSettings(url=mosquitto.url), name="ingest-test",
                        receive_maximum=100)
    got: list[int] = []

    async def take_until_lost() -> None:
        async with client:
            await client.subscribe("tw/v1/#", qos=1)
            await asyncio.to_thread(_publish, mosquitto.url, 3)
            async with asyncio.timeout(10):
                async for message in received(client):
                    got.append(int(bytes(message.payload)))
                    if len(got) == 3:
                        mosquitto.stop()

    with pytest.raises(MqttError):
        await take_until_lost()
    assert got == [0, 1, 2]


async def test_link_up_follows_the_connection_itself(mosquitto: MosquittoServer) -> None:
    # A worker busy elsewhere (its queue full while storage is down) learns of a lost
    # connection only when it next waits for a message; /metrics asks the connection.
    settings = MqttSettings(url=mosquitto.url)
    nothing: Any = None
    worker = IngestWorker(settings, IngestSettings(),
                          IngestPipeline(nothing, nothing, nothing), name="ingest-test")
    client = client_for(settings, name="ingest-test", receive_maximum=10)
    async with client:
        worker.connected, worker._client = True, client
        assert worker.link_up()
        mosquitto.stop()
        deadline = time.monotonic() + 10
        while is_up(client):
            assert time.monotonic() < deadline, "the client did not see the broker go"
            await asyncio.sleep(0.05)
        assert worker.connected and not worker.link_up()
