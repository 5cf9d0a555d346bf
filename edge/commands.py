"""Commands from the cloud: write a point, reload the config, ping.

A write reaches a device only when the point is writable in its profile AND on the
device's allow-list in the site config, and the equipment is not read-only (fire
panels never are writable). Expired commands are refused. Every command gets a reply
on ``cmd-reply/{request_id}``; every write attempt is logged and published as a
``state`` event for the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from device_profiles.codec import CodecError
from edge.errors import CommandRefused, DeviceError
from edge.messages import now_ms
from edge.runtime import DeviceRuntime, GatewayContext
from towerwatch.contract import Command, ContractError, decode, parse_topic

log = logging.getLogger(__name__)

Scalar = bool | int | float | str
REPLY_ERROR_MAX = 256
"""Characters of ``error`` a command reply carries (longer reasons are cut)."""
WritePoint = Callable[[DeviceRuntime, str, Scalar], Awaitable[None]]


class _Refused(CommandRefused):
    """A refusal, with the ``result`` it is counted under (refused, expired, failed)."""

    def __init__(self, message: str, result: str = "refused") -> None:
        super().__init__(message)
        self.result = result


class CommandHandler:
    """Runs one command, replies on ``cmd-reply/{request_id}``, counts it once by
    ``(op, result)``: ok, refused, expired, failed (a write the device did not take) or
    invalid (a payload that is not a command)."""

    def __init__(self, ctx: GatewayContext, devices: Mapping[str, DeviceRuntime],
                 write_point: WritePoint, reload: Callable[[], Awaitable[str | None]]) -> None:
        self.ctx, self.devices = ctx, devices
        self._write_point, self._reload = write_point, reload

    async def handle(self, topic: str, payload: bytes) -> None:
        try:
            request_id = parse_topic(topic).request_id
        except ContractError as exc:
            log.warning("ignoring a command on a malformed topic %r: %s", topic, exc)
            return
        assert request_id is not None
        try:
            command = decode(Command, payload)
        except ContractError as exc:
            log.warning("command %s is not valid: %s", request_id, exc)
            self._reply(request_id, "?", "invalid", f"invalid command: {exc}")
            return
        try:
            await self._execute(command)
        except _Refused as exc:
            self._reply(request_id, command.op, exc.result, str(exc))
            return
        self._reply(request_id, command.op, "ok", None)

    async def _execute(self, command: Command) -> None:
        if command.expired(now_ms(self.ctx.clock())):
            raise _Refused("command expired before it arrived", "expired")
        if command.op == "ping":
            return
        if command.op == "reload":
            problem = await self._reload()
            if problem:
                raise _Refused(f"config not reloaded: {problem}")
            return
        await self._write(command)

    async def _write(self, command: Command) -> None:
        device_id, point_id, value = command.device, command.point, command.value
        assert device_id is not None and point_id is not None and value is not None
        device = self.devices.get(device_id)
        if device is None:
            raise _Refused(f"no device {device_id!r} on this gateway")
        profile = device.profile
        known = {p.id for p in profile.points}
        reason = None
        if point_id not in known:
            reason = f"device {device_id!r} has no point {point_id!r}"
        elif profile.read_only:
            reason = f"{profile.equipment} points are never written"
        elif not profile.point(point_id).writable:
            reason = f"point {point_id!r} is read-only in profile {profile.id!r}"
        elif point_id not in device.config.writable:
            reason = f"point {point_id!r} is not on the site's write allow-list"
        if reason is not None:
            log.warning("write refused: %s.%s = %r: %s", device_id, point_id, value, reason)
            self._audit(device_id, point_id, value, "refused", reason)
            raise _Refused(reason)
        try:
            await self._write_point(device, point_id, value)
        except (DeviceError, CodecError, ValueError, TypeError) as exc:
            log.warning("write failed: %s.%s = %r: %s", device_id, point_id, value, exc)
            self._audit(device_id, point_id, value, "failed", str(exc))
            raise _Refused(f"write failed: {exc}", "failed") from exc
        log.info("write done: %s.%s = %r", device_id, point_id, value)
        self._audit(device_id, point_id, value, "written", None)

    def _audit(self, device: str, point: str, value: Scalar, outcome: str,
               reason: str | None) -> None:
        detail: dict[str, Scalar] = {"point": point}
        if reason:
            detail["reason"] = reason[:200]
        self.ctx.send([self.ctx.builder.event(device, kind="state", name="write", state=outcome,
                                              value=value, detail=detail,
                                              now=self.ctx.clock())])

    def _reply(self, request_id: str, op: str, result: str, error: str | None) -> None:
        self.ctx.metrics.command(op, result)
        self.ctx.send([self.ctx.builder.reply(request_id, ok=error is None, error=_fit(error),
                                              now=self.ctx.clock())])


def _fit(text: str | None, limit: int = REPLY_ERROR_MAX) -> str | None:
    """``text`` cut to what a reply's ``error`` holds (the contract's ``Text``)."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"
