"""The whole gateway under stress: broker outages, a SIGKILL, TLS, credentials, commands.

A simulated building (clock speed 0, ticked by the test), a real Mosquitto and the
gateway, in-process or as ``towerwatch edge run`` in a child process. "Zero loss" is
checked the way the cloud checks it: for every ``boot_id`` the ``seq`` numbers seen
(redeliveries of the same ``(boot_id, seq)`` removed) are 1, 2, ... with no gap, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge.daemon import Gateway
from simulators.building import SimBuilding
from tests.integration.edge_rig import (
    Collector,
    GatewayProcess,
    access_events,
    badge,
    collect,
    collect_persistent,
    credentials,
    edge_config,
    edge_config_file,
    running_daemon,
    running_gateway,
    seqs_by_boot,
    start_building,
    traffic,
)
from tests.servers.mosquitto import MosquittoServer
from tests.servers.plugin import MosquittoFactory
from tests.servers.tls import CertificateAuthority
from towerwatch.contract import Command, encode, new_request_id
from towerwatch.demo.gateway_config import write_config

pytestmark = pytest.mark.integration

SITE, GATEWAY = "demo-tower", "gw-1"
MODBUS = ("booster", "lift-1", "lift-2", "fire-annex", "door-lobby", "meter-main", "sump-b2",
          "water-main")
QUIET = ("booster", "door-lobby")  # enough traffic, few messages: for the TLS/credential tests


@pytest.fixture
async def building() -> AsyncIterator[SimBuilding]:
    sim = await start_building("127.0.14.0")
    try:
        yield sim
    finally:
        await sim.stop()


def _around(seen: Collector, boot: str, seq: int) -> str:
    """The messages of ``boot`` that arrived near ``seq`` (for a failure message)."""
    rows = [(m.payload["seq"], m.topic.split("/", 4)[-1], m.payload.get("kind", ""))
            for m in seen.messages if m.payload.get("boot_id") == boot and "seq" in m.payload]
    at = next(i for i, row in enumerate(rows) if row[0] == seq)
    return "; ".join(f"{s} {topic} {kind}".rstrip()
                     for s, topic, kind in rows[max(0, at - 8):at + 8])


def assert_no_gap(seen: Collector) -> dict[str, list[int]]:
    """Every boot's seqs are 1..max, in increasing order (redeliveries removed)."""
    by_boot = seqs_by_boot(seen.messages)
    for boot, seqs in by_boot.items():
        late = next((s for s, t in itertools.pairwise(seqs) if t < s), None)
        assert late is None, f"boot {boot}: out of order: {_around(seen, boot, late or 0)}"
        missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
        assert not missing, f"boot {boot}: {len(missing)} seq(s) lost, first {missing[:10]}"
    return by_boot


def assert_exactly_once(seen: Collector, badges: list[int]) -> None:
    events = access_events(seen)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an access event was published twice"
    made = credentials(seen)
    for credential in badges:
        assert made.count(credential) == 1, (credential, made.count(credential))


async def command(host: str, port: int, seen: Collector, **fields: Any) -> dict[str, Any]:
    request_id = new_request_id()
    body = Command.model_validate({"expires": int((time.time() + 30) * 1000), **fields})
    async with aiomqtt.Client(host, port) as client:
        await client.publish(f"tw/v1/{SITE}/{GATEWAY}/cmd/{request_id}", encode(body), qos=1)
    replies = await seen.wait_for(
        lambda: [m for m in seen.messages if m.topic.endswith(f"cmd-reply/{request_id}")])
    reply: dict[str, Any] = replies[0].payload
    return reply


def births(seen: Collector) -> list[dict[str, Any]]:
    return [m.payload for m in seen.of("status") if m.payload.get("state") == "online"]


# -- 1. broker outage ------------------------------------------------------------------------
async def test_broker_stopped_and_restarted_loses_nothing_and_keeps_order(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto.url, only=MODBUS)
    async with collect_persistent(mosquitto.host, mosquitto.port, "cloud-outage") as seen, \
            running_gateway(config) as gateway:
        boot = gateway.builder.boot_id
        async with traffic(building) as badges:
            await seen.wait_for(lambda: len(seqs_by_boot(seen.messages).get(boot, [])) >= 30)
            await asyncio.to_thread(mosquitto.stop)  # mid-stream: publishes are in flight
            before, badged = gateway.builder.seq, len(badges)
            await seen.wait_for(lambda: not gateway.publisher.connected)
            await asyncio.sleep(2.0)  # the gateway keeps polling: the outbox fills
            made_during = gateway.builder.seq - before
            assert len(badges) - badged >= 10
            assert made_during > 20
            assert gateway.outbox.depth() > 20  # kept, waiting for the broker
            await asyncio.to_thread(mosquitto.start)
            await asyncio.sleep(1.0)
        await seen.wait_for(lambda: set(credentials(seen)) >= set(badges))
        await seen.wait_for(lambda: max(seqs_by_boot(seen.messages)[boot]) >= gateway.builder.seq)
        assert gateway.publisher.reconnects >= 1
    by_boot = assert_no_gap(seen)
    assert list(by_boot) == [boot]
    assert_exactly_once(seen, badges)
    duplicates = len([m for m in seen.messages if "seq" in m.payload]) - len(by_boot[boot])
    print(f"broker outage: {made_during} message(s) made while down, {len(by_boot[boot])} "
          f"seqs delivered, {duplicates} redelivery(ies)")


# -- 2. SIGKILL ------------------------------------------------------------------------------
async def test_gateway_sigkilled_and_restarted_loses_nothing_and_repeats_no_access_event(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto.url, only=MODBUS)
    gateway = GatewayProcess(config)
    badges: list[int] = []
    try:
        async with collect_persistent(mosquitto.host, mosquitto.port, "cloud-kill") as seen:
            gateway.start()
            await seen.wait_for(lambda: births(seen), limit=30)
            first_boot = births(seen)[-1]["boot_id"]
            async with traffic(building, badges, first=2000):
                await seen.wait_for(lambda: len(access_events(seen)) >= 20)
                # The broker goes away, so the outbox holds messages of this boot...
                await asyncio.to_thread(mosquitto.stop)
                await asyncio.sleep(1.0)
                gateway.signal(signal.SIGKILL)  # ...when the gateway dies mid-stream.
                assert await gateway.wait() == -signal.SIGKILL
            for _ in range(5):  # cards read by the controller while the gateway is dead
                building.clock.advance(1)
                badge(building, 2000 + len(badges))
                badges.append(2000 + len(badges))
            await asyncio.to_thread(mosquitto.start)
            gateway.start()
            await seen.wait_for(lambda: len(births(seen)) >= 2 and
                                births(seen)[-1]["boot_id"] != first_boot, limit=30)
            second_boot = births(seen)[-1]["boot_id"]
            async with traffic(building, badges, first=2000):
                await asyncio.sleep(1.0)
            await seen.wait_for(lambda: set(credentials(seen)) >= set(badges), limit=20)
            gateway.signal(signal.SIGTERM)
            assert await gateway.wait() == 0, gateway.output()[-3000:]
    finally:
        await gateway.close()
    by_boot = assert_no_gap(seen)
    assert set(by_boot) == {first_boot, second_boot}
    assert_exactly_once(seen, badges)
    # Messages of the first boot left in the outbox went out after the restart.
    restart = next(i for i, m in enumerate(seen.messages)
                   if m.payload.get("boot_id") == second_boot)
    late = [m for m in seen.messages[restart:] if m.payload.get("boot_id") == first_boot
            and "seq" in m.payload]
    assert late, "nothing of the first boot was left to deliver after the restart"
    print(f"SIGKILL: boot 1 {len(by_boot[first_boot])} seqs ({len(late)} after the restart), "
          f"boot 2 {len(by_boot[second_boot])} seqs, {len(badges)} badges once each")


# -- 3. TLS ----------------------------------------------------------------------------------
def _client_tls(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def _status_json(gateway: Gateway) -> dict[str, Any]:
    """The gateway's /status.json (its HTTP server runs on this event loop)."""
    def get() -> dict[str, Any]:
        url = f"http://127.0.0.1:{gateway.http.port}/status.json"
        with urllib.request.urlopen(url, timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    return await asyncio.to_thread(get)


async def test_tls_with_the_sites_ca_delivers(
        building: SimBuilding, mosquitto_tls: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto_tls.url, only=QUIET,
                              extra_mqtt={"ca_file": str(mosquitto_tls.ca_path)})
    async with collect(mosquitto_tls.host, mosquitto_tls.port,
                       tls_context=_client_tls(mosquitto_tls.ca_path)) as seen, \
            running_gateway(config) as gateway:
        await seen.wait_for(lambda: seen.of("telemetry", "booster") and births(seen))
        assert gateway.publisher.connected
        assert (await _status_json(gateway))["mqtt"]["connected"] is True


async def _never_delivers(gateway: Gateway, seen: Collector) -> str:
    await seen.wait_for(lambda: gateway.publisher.last_error is not None)
    await asyncio.sleep(1.5)  # a retry or two, while the devices are polled
    assert not gateway.publisher.connected
    assert gateway.builder.seq > 0 and gateway.outbox.depth() > 0
    assert seen.messages == [], [m.topic for m in seen.messages]
    error = (await _status_json(gateway))["mqtt"]["last_error"]
    assert error == gateway.publisher.last_error
    assert isinstance(error, str)
    return error


async def test_tls_with_a_wrong_ca_sends_nothing_and_says_why(
        building: SimBuilding, mosquitto_tls: MosquittoServer, wrong_ca: CertificateAuthority,
        tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto_tls.url, only=QUIET,
                              extra_mqtt={"ca_file": str(wrong_ca.cert_path)})
    async with collect(mosquitto_tls.host, mosquitto_tls.port, "#",
                       tls_context=_client_tls(mosquitto_tls.ca_path)) as seen, \
            running_gateway(config) as gateway:
        error = await _never_delivers(gateway, seen)
    assert error.startswith("TLS verification failed"), error


async def test_mqtts_to_a_plaintext_listener_sends_nothing(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, f"mqtts://127.0.0.1:{mosquitto.port}",
                              only=QUIET)
    async with collect(mosquitto.host, mosquitto.port, "#") as seen, \
            running_gateway(config) as gateway:
        error = await _never_delivers(gateway, seen)
    assert "TLS" in error, error
    assert f"tw-{SITE}-{GATEWAY}" not in mosquitto.log_tail(200)


# -- 4. credentials --------------------------------------------------------------------------
USER = f"{SITE}.{GATEWAY}"
ACL = f"user {USER}\ntopic readwrite tw/v1/{SITE}/{GATEWAY}/#\n\nuser cloud\ntopic read tw/#\n"


@pytest.mark.parametrize("source", ["password_file", "password_env"])
async def test_password_from_a_file_or_the_environment(
        building: SimBuilding, mosquitto_factory: MosquittoFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    broker = mosquitto_factory(users={USER: "gw-secret", "cloud": "cloud-secret"}, acl=ACL)
    if source == "password_file":
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "mqtt.password").write_text("gw-secret\n")
        mqtt = {"username": USER, "password_file": "secrets/mqtt.password"}  # relative
    else:
        monkeypatch.setenv("TW_TEST_GW_PASSWORD", "gw-secret")
        mqtt = {"username": USER, "password_env": "TW_TEST_GW_PASSWORD"}
    config = edge_config_file(building, tmp_path, broker.url, only=QUIET, extra_mqtt=mqtt)
    async with collect(broker.host, broker.port, username="cloud",
                       password="cloud-secret") as seen, running_gateway(config) as gateway:
        await seen.wait_for(lambda: seen.of("telemetry", "booster") and births(seen))
        assert gateway.publisher.last_error is None


# -- 5./6. commands, reload, the event log across a reload -----------------------------------
async def test_reload_ping_and_event_log_exactly_once_across_reloads(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    settings = edge_config(building, tmp_path, mosquitto.url, only=MODBUS)
    path = write_config(settings, tmp_path / "edge.yaml")
    host, port = mosquitto.host, mosquitto.port
    badges: list[int] = []
    async with collect(host, port) as seen, running_daemon(path) as gateways:
        async with traffic(building, badges, first=3000):
            await seen.wait_for(lambda: births(seen))  # subscribed to its commands
            pong = await command(host, port, seen, op="ping")
            assert pong == {"ok": True, "error": None, "ts": pong["ts"]}
            await seen.wait_for(lambda: len(access_events(seen)) >= 10)
            boot = gateways[0].builder.boot_id
            building.inject("door-lobby", "door_forced", {"door": 2})  # an alarm stays on
            await seen.wait_for(lambda: seen.alarms("door-lobby", "door2_forced"))

            # A valid change: one device disabled. It takes effect, the reply says ok.
            settings["devices"][MODBUS.index("meter-main")]["enabled"] = False
            write_config(settings, path)
            reply = await command(host, port, seen, op="reload")
            assert reply["ok"] is True, reply
            await seen.wait_for(lambda: len(births(seen)) >= 2)
            assert len(gateways) == 2
            assert "meter-main" not in gateways[-1].devices
            assert {d["id"] for d in births(seen)[-1]["devices"]} == set(MODBUS) - {"meter-main"}
            assert births(seen)[-1]["boot_id"] == boot  # same boot: seq goes on
            await seen.wait_for(lambda: len(access_events(seen)) >= 20)

            # A broken config is refused, named, and the running one stays.
            broken = {**settings, "devices": [*settings["devices"],
                                              {"id": "lift-9", "profile": "no-such-model",
                                               "modbus": {"host": "127.0.0.1", "port": 1}}]}
            write_config(broken, path)
            refused = await command(host, port, seen, op="reload")
            assert refused["ok"] is False
            assert "unknown profile 'no-such-model'" in refused["error"]
            assert f"{path}:" in refused["error"]  # file:line
            seq = gateways[-1].builder.seq
            await seen.wait_for(lambda: gateways[-1].builder.seq > seq + 5)
            assert len(gateways) == 2 and len(births(seen)) == 2

            # Valid again, the device back: a second restart.
            settings["devices"][MODBUS.index("meter-main")]["enabled"] = True
            write_config(settings, path)
            assert (await command(host, port, seen, op="reload"))["ok"] is True
            await seen.wait_for(lambda: len(births(seen)) >= 3)
            assert "meter-main" in gateways[-1].devices
            await seen.wait_for(lambda: len(access_events(seen)) >= 30)
            # The alarm raised before the reloads is still on, and was not raised again.
            assert seen.alarms("door-lobby", "door2_forced") == ["active"]
            assert "door2_forced" in gateways[-1].devices["door-lobby"].active_alarms
        await seen.wait_for(lambda: set(credentials(seen)) >= set(badges))
    by_boot = assert_no_gap(seen)
    assert boot in by_boot
    assert_exactly_once(seen, badges)
    print(f"reloads: {len(badges)} badges once each over 3 configs, "
          f"{len(by_boot[boot])} seqs of one boot without a gap")


async def test_sighup_reloads_a_running_gateway_process(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    settings = edge_config(building, tmp_path, mosquitto.url, only=QUIET)
    path = write_config(settings, tmp_path / "edge.yaml")
    gateway = GatewayProcess(path)
    try:
        async with collect(mosquitto.host, mosquitto.port) as seen:
            gateway.start()
            await seen.wait_for(lambda: births(seen), limit=30)
            boot = births(seen)[0]["boot_id"]
            settings["devices"][QUIET.index("booster")]["enabled"] = False
            write_config(settings, path)
            gateway.signal(signal.SIGHUP)
            await seen.wait_for(lambda: len(births(seen)) >= 2)
            assert [d["id"] for d in births(seen)[-1]["devices"]] == ["door-lobby"]
            assert births(seen)[-1]["boot_id"] == boot
            oops = {"id": "oops", "profile": "booster-pumpset-modbus"}  # no connection
            write_config({**settings, "devices": [*settings["devices"], oops]}, path)
            gateway.signal(signal.SIGHUP)
            await asyncio.sleep(1.5)
            assert gateway.running
            assert len(births(seen)) == 2
            gateway.signal(signal.SIGTERM)
            assert await gateway.wait() == 0
    finally:
        await gateway.close()
    log = gateway.output()
    assert "not reloaded, still running the previous one" in log
    assert "exactly one of 'modbus' or 'bacnet'" in log
    assert "Traceback" not in log
