"""The edge gateway against the simulated building and a real Mosquitto."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from device_profiles.schema import PointKind
from simulators.building import SimBuilding
from tests.integration.edge_rig import (
    Collector,
    collect,
    edge_config_file,
    running_gateway,
    start_building,
)
from tests.servers.mosquitto import MosquittoServer
from towerwatch.contract import Command, encode, new_request_id

pytestmark = pytest.mark.integration


@pytest.fixture
async def building() -> AsyncIterator[SimBuilding]:
    sim = await start_building("127.0.13.0")
    try:
        yield sim
    finally:
        await sim.stop()


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float) or isinstance(got, float):
        return math.isclose(float(expected), float(got), rel_tol=1e-5, abs_tol=1e-6)
    return bool(expected == got)


async def test_every_device_class_decodes_to_the_simulator_values(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto.url)
    async with collect(mosquitto.host, mosquitto.port) as seen, \
            running_gateway(config) as gateway:
        ids = list(building.devices)
        await seen.wait_for(lambda: all(seen.of("telemetry", d) for d in ids), limit=20)
        await asyncio.sleep(1.2)  # the gauges follow the publisher once a second
        exposition = gateway.metrics.render()[0].decode()
        published = next(float(line.split()[-1]) for line in exposition.splitlines()
                         if line.startswith("towerwatch_edge_messages_published_total "))
        assert published >= len(ids), exposition
        for device_id in ids:
            device = building.device(device_id)
            expected = building.values(device_id)
            got = seen.latest_values(device_id)
            quality = seen.latest_quality(device_id)
            for point in device.profile.points:
                if point.kind is PointKind.EVENT_LOG:
                    continue
                assert point.id in got, f"{device_id}.{point.id} never published"
                assert quality[point.id] == "good", (device_id, point.id, quality[point.id])
                assert _same(expected[point.id], got[point.id]), (
                    device_id, point.id, expected[point.id], got[point.id])
        # A newcomer (the cloud after a restart) gets the retained birth.
        async with collect(mosquitto.host, mosquitto.port, "tw/v1/+/+/status") as late:
            status = await late.wait_for(lambda: late.of("status"))
        assert status[-1].retain
        assert status[-1].payload["state"] == "online"
        assert {d["id"] for d in status[-1].payload["devices"]} == set(ids)


async def test_a_fault_arrives_as_an_alarm_and_clears(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto.url)
    async with collect(mosquitto.host, mosquitto.port) as seen, running_gateway(config):
        await seen.wait_for(lambda: seen.of("telemetry", "booster"))
        building.inject("booster", "pump_trip", {"pump": 1})
        building.clock.advance(3)
        building.tick()
        await seen.wait_for(lambda: "active" in seen.alarms("booster", "pump1_tripped"))
        event = next(m for m in seen.of("event", "booster")
                     if m.payload["name"] == "pump1_tripped")
        assert event.payload["severity"] == "medium"
        assert event.payload["detail"]["category"] == "water"
        assert event.payload["detail"]["text_zh"]
        building.clear("booster", "pump_trip", {"pump": 1})
        building.clock.advance(3)
        building.tick()
        await seen.wait_for(lambda: seen.alarms("booster", "pump1_tripped")[-1:] == ["cleared"])


async def test_a_dead_device_goes_offline_without_slowing_its_neighbours(
        building: SimBuilding, mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto.url)
    async with collect(mosquitto.host, mosquitto.port) as seen, \
            running_gateway(config) as gateway:
        await seen.wait_for(lambda: seen.of("telemetry", "meter-main"))
        building.set_comms("meter-main", "silent")
        await seen.wait_for(
            lambda: any(not m.payload["online"] for m in seen.of("device", "meter-main")),
            limit=20)
        async with collect(mosquitto.host, mosquitto.port,
                           "tw/v1/+/+/device/meter-main/state") as late:
            state = (await late.wait_for(lambda: late.of("device", "meter-main")))[-1]
        assert state.retain
        assert state.payload["online"] is False
        assert "no answer" in state.payload["reason"]
        await seen.wait_for(lambda: set(seen.latest_quality("meter-main").values()) == {"stale"})
        assert "active" in seen.alarms("meter-main", "comm_loss")
        # The neighbours kept their schedule while the meter timed out.
        booster_cycles = gateway.metrics.cycles("booster")
        started = time.monotonic()
        await seen.wait_for(lambda: gateway.metrics.cycles("booster") >= booster_cycles + 5)
        assert time.monotonic() - started < 8
        # Its fast group runs every second: six seconds give at least five more cycles
        # while the meter's requests keep timing out (0.3 s each) on its own line.
        during = gateway.metrics.cycles("booster")
        await asyncio.sleep(6)
        assert gateway.metrics.cycles("booster") - during >= 5
        building.set_comms("meter-main", "normal")
        await seen.wait_for(
            lambda: seen.of("device", "meter-main")[-1].payload["online"], limit=20)
        await seen.wait_for(lambda: seen.alarms("meter-main", "comm_loss")[-1:] == ["cleared"])


async def _command(mosquitto: MosquittoServer, seen: Collector, **fields: Any) -> dict[str, Any]:
    request_id = new_request_id()
    expires = int((time.time() + 30) * 1000)
    command = Command.model_validate({"expires": expires, **fields})
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        await client.publish(f"tw/v1/demo-tower/gw-1/cmd/{request_id}", encode(command), qos=1)
    replies = await seen.wait_for(
        lambda: [m for m in seen.messages if m.topic.endswith(f"cmd-reply/{request_id}")])
    payload: dict[str, Any] = replies[0].payload
    return payload


async def test_writes_are_guarded(building: SimBuilding, mosquitto: MosquittoServer,
                                  tmp_path: Path) -> None:
    config = edge_config_file(building, tmp_path, mosquitto.url)
    async with collect(mosquitto.host, mosquitto.port) as seen, running_gateway(config):
        await seen.wait_for(lambda: seen.of("telemetry", "booster"))
        ok = await _command(mosquitto, seen, op="write", device="booster",
                            point="pressure_setpoint", value=0.52)
        assert ok["ok"] is True, ok
        assert building.values("booster")["pressure_setpoint"] == pytest.approx(0.52)
        refused = await _command(mosquitto, seen, op="write", device="booster",
                                 point="rotation_period", value=12)
        assert refused["ok"] is False
        assert "allow-list" in refused["error"]
        fire = await _command(mosquitto, seen, op="write", device="fire-annex",
                              point="zone1_state", value="quiet")
        assert fire["ok"] is False
        assert "never written" in fire["error"]
        expired = await _command(mosquitto, seen, op="ping", expires=int(time.time() * 1000) - 5)
        assert expired["ok"] is False
        assert "expired" in expired["error"]
        audit = [m.payload for m in seen.of("event", "booster") if m.payload["name"] == "write"]
        assert [a["state"] for a in audit] == ["written", "refused"]
