"""Commands from the cloud: the write guard, expiry, reload, replies and the audit trail.

The handler runs against a real outbox and device runtimes built from the shipped
profiles; the device write itself is a recording stand-in (the integration tests write
to simulated devices).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from device_profiles.loader import load_profiles
from edge.commands import REPLY_ERROR_MAX, CommandHandler, Scalar
from edge.config import DeviceConfig, PollingConfig
from edge.errors import DeviceTimeout
from edge.messages import MessageBuilder
from edge.metrics import GatewayMetrics
from edge.outbox import Outbox
from edge.runtime import DeviceRuntime, GatewayContext
from towerwatch.contract import (
    Command,
    CommandReply,
    Event,
    command_topic,
    decode,
    encode,
)

SITE, GATEWAY = "s1", "g1"
PROFILES = load_profiles()


class Rig:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.metrics = GatewayMetrics()
        self.ctx = GatewayContext(MessageBuilder(SITE, GATEWAY, version="test"), outbox,
                                  self.metrics, PollingConfig())
        self.devices = {
            "booster": self._device("booster", "booster-pumpset-modbus",
                                    writable=["pressure_setpoint"]),
            "fire": self._device("fire", "fire-panel-modbus"),
        }
        self.writes: list[tuple[str, str, Scalar]] = []
        self.write_error: Exception | None = None
        self.reload_problem: str | None = None
        self.reloads = 0
        self.handler = CommandHandler(self.ctx, self.devices, self._write, self._reload)
        self._n = 0

    def _device(self, device_id: str, profile: str, writable: list[str] | None = None
                ) -> DeviceRuntime:
        config = DeviceConfig(id=device_id, profile=profile, writable=writable or [],
                              modbus={"host": "10.0.0.1"})
        return DeviceRuntime(config, PROFILES.get(profile), self.ctx)

    async def _write(self, device: DeviceRuntime, point: str, value: Scalar) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.writes.append((device.id, point, value))

    async def _reload(self) -> str | None:
        self.reloads += 1
        return self.reload_problem

    async def send(self, payload: bytes | Mapping[str, Any]) -> tuple[str, CommandReply]:
        """Hand one command to the handler; its request id and the reply it stored."""
        self._n += 1
        request_id = f"req{self._n:04d}"
        if not isinstance(payload, bytes):
            fields = {"expires": int((time.time() + 30) * 1000), **payload}
            payload = encode(Command.model_validate(fields))
        await self.handler.handle(command_topic(SITE, GATEWAY, request_id), payload)
        await asyncio.sleep(0)  # messages are stored at the end of the loop turn
        replies = [m for m in self.outbox.pending(limit=1000)
                   if m.topic.endswith(f"/cmd-reply/{request_id}")]
        assert len(replies) == 1, f"{len(replies)} replies to {request_id}"
        return request_id, decode(CommandReply, replies[0].payload)

    def audit(self) -> list[Event]:
        return [decode(Event, m.payload) for m in self.outbox.pending(limit=1000)
                if "/event/" in m.topic]

    def counted(self, op: str, result: str) -> float:
        name = "towerwatch_edge_commands_total"
        value = self.metrics.registry.get_sample_value(name, {"op": op, "result": result})
        return value or 0.0


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    outbox = Outbox(tmp_path / "outbox.db", max_messages=1000, overflow="refuse_new")
    try:
        yield Rig(outbox)
    finally:
        outbox.close()


async def test_ping(rig: Rig) -> None:
    _, reply = await rig.send({"op": "ping"})
    assert reply.ok and reply.error is None
    assert rig.counted("ping", "ok") == 1


async def test_an_allowed_write_is_done_and_audited(rig: Rig) -> None:
    _, reply = await rig.send({"op": "write", "device": "booster",
                               "point": "pressure_setpoint", "value": 0.55})
    assert reply.ok, reply.error
    assert rig.writes == [("booster", "pressure_setpoint", 0.55)]
    (event,) = rig.audit()
    assert (event.kind, event.name, event.state, event.value) == ("state", "write", "written",
                                                                   0.55)
    assert event.detail == {"point": "pressure_setpoint"}
    assert rig.counted("write", "ok") == 1
    assert rig.counted("write", "written") == 0  # one count per command


@pytest.mark.parametrize(("device", "point", "why"), [
    ("booster", "rotation_period", "is not on the site's write allow-list"),
    ("booster", "outlet_pressure", "is read-only in profile 'booster-pumpset-modbus'"),
    ("booster", "warp_drive", "has no point 'warp_drive'"),
    ("fire", "zone1_state", "Fire_Alarm_Control_Panel points are never written"),
    ("fire", "evacuation_active", "never written"),
])
async def test_a_write_outside_the_guard_is_refused_and_audited(
        rig: Rig, device: str, point: str, why: str) -> None:
    _, reply = await rig.send({"op": "write", "device": device, "point": point, "value": 1})
    assert not reply.ok
    assert reply.error is not None and why in reply.error
    assert rig.writes == []
    (event,) = rig.audit()
    assert (event.name, event.state) == ("write", "refused")
    assert why in str(event.detail["reason"])
    assert rig.counted("write", "refused") == 1


async def test_a_write_to_an_unknown_device_is_refused(rig: Rig) -> None:
    _, reply = await rig.send({"op": "write", "device": "lift-9", "point": "x", "value": 1})
    assert not reply.ok and reply.error == "no device 'lift-9' on this gateway"
    assert rig.audit() == []


@pytest.mark.parametrize("error", [
    DeviceTimeout("booster", "write holding 100: no answer from unit 1 in 0.5 s"),
    ValueError("registers take 0..65535, got [70000]"),
])
async def test_a_write_the_device_does_not_take_is_reported(rig: Rig, error: Exception) -> None:
    rig.write_error = error
    _, reply = await rig.send({"op": "write", "device": "booster",
                               "point": "pressure_setpoint", "value": 0.5})
    assert not reply.ok
    assert reply.error == f"write failed: {error}"
    (event,) = rig.audit()
    assert event.state == "failed"
    assert rig.counted("write", "failed") == 1


async def test_an_expired_command_is_refused_unrun(rig: Rig) -> None:
    past = int((time.time() - 1) * 1000)
    _, reply = await rig.send({"op": "write", "device": "booster",
                               "point": "pressure_setpoint", "value": 0.5, "expires": past})
    assert not reply.ok and reply.error == "command expired before it arrived"
    assert rig.writes == [] and rig.audit() == []
    _, reply = await rig.send({"op": "reload", "expires": past})
    assert not reply.ok and rig.reloads == 0
    assert rig.counted("write", "expired") == 1 and rig.counted("reload", "expired") == 1


async def test_reload(rig: Rig) -> None:
    _, reply = await rig.send({"op": "reload"})
    assert reply.ok and rig.reloads == 1
    rig.reload_problem = "1 problem(s), first: site.yaml:9: devices[1].id: used twice"
    _, reply = await rig.send({"op": "reload"})
    assert not reply.ok
    assert reply.error == f"config not reloaded: {rig.reload_problem}"
    assert rig.counted("reload", "ok") == 1 and rig.counted("reload", "refused") == 1


async def test_a_long_reason_is_cut_to_fit_the_reply(rig: Rig) -> None:
    rig.reload_problem = "site.yaml:9: " + "x" * 1000
    _, reply = await rig.send({"op": "reload"})
    assert not reply.ok and reply.error is not None
    assert len(reply.error) == REPLY_ERROR_MAX
    assert reply.error.startswith("config not reloaded: site.yaml:9: xxx")
    assert reply.error.endswith("…")


@pytest.mark.parametrize("payload", [
    b"not json",
    b'{"op": "explode", "expires": 1893456000000}',
    b'{"op": "write", "device": "booster", "expires": 1893456000000}',
])
async def test_an_invalid_command_gets_a_reply_that_says_so(rig: Rig, payload: bytes) -> None:
    _, reply = await rig.send(payload)
    assert not reply.ok
    assert reply.error is not None and reply.error.startswith("invalid command: ")
    assert rig.writes == [] and rig.reloads == 0
    assert rig.counted("?", "invalid") == 1


async def test_a_command_on_a_malformed_topic_is_ignored(rig: Rig) -> None:
    await rig.handler.handle("tw/v1/s1/g1/cmd/", b'{"op": "ping"}')
    await rig.handler.handle("not/a/topic", b'{"op": "ping"}')
    await asyncio.sleep(0)
    assert rig.outbox.depth() == 0
