"""Commands to gateways: write a point, ping, reload; and what became of them.

``POST`` checks the ``command`` action on the site, validates the command against the
wire contract, refuses writes to points the registry knows as read-only, then records
the audit entry and the command request in one transaction, and only then publishes it
through the :class:`~cloud.api.context.CommandSender` (so nothing reaches a gateway that
is not on record). If publishing fails the request is marked ``failed`` and the answer
is 503 ``command_not_sent``. The gateway has the last word: it checks its own allow-list
and answers on ``…/cmd-reply/{request_id}``, which ingest records.

A request still ``pending`` after its ``expires`` is reported as ``expired`` (the stored
status changes when :func:`cloud.db.commands.expire_commands` runs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from cloud.api.deps import (
    API_PREFIX,
    IDENTIFIER_REGEX,
    CommandSite,
    Ctx,
    GatewayId,
    ReadSite,
    RequestIdPath,
    require_site,
)
from cloud.api.errors import ApiError, ErrorBody, validation_error
from cloud.db.audit import record_audit
from cloud.db.commands import create_command, get_command, list_commands, record_reply
from cloud.db.errors import UnknownCommand, UnknownGateway
from cloud.db.models import CommandRequest, CommandStatus, Gateway
from cloud.db.registry import list_points
from towerwatch.contract import Command, CommandOp, CommandReply, encode, field_issues
from towerwatch.contract import Value as WireValue
from towerwatch.contract.ids import new_request_id

__all__ = ["CommandIn", "CommandOut", "router"]

log = logging.getLogger(__name__)

MAX_TTL_S = 3600

router = APIRouter(
    prefix=f"{API_PREFIX}/sites",
    tags=["commands"],
    responses={
        401: {"model": ErrorBody, "description": "Not authenticated"},
        403: {"model": ErrorBody, "description": "Not allowed to command on this site"},
        404: {"model": ErrorBody, "description": "No such site, gateway, point or command"},
    },
)


class CommandIn(BaseModel):
    """A command for one gateway; `write` needs device, point and value."""

    model_config = ConfigDict(extra="forbid")

    op: CommandOp
    device: Annotated[str | None, Field(pattern=IDENTIFIER_REGEX, max_length=64)] = None
    point: Annotated[str | None, Field(pattern=IDENTIFIER_REGEX, max_length=64)] = None
    value: WireValue = None
    ttl_s: Annotated[int, Field(ge=1, le=MAX_TTL_S)] = Field(
        30, description="Seconds the gateway may still act on the command."
    )


class CommandOut(BaseModel):
    request_id: str
    site: str
    gateway: str
    op: str
    device: str | None
    point: str | None
    value: Any
    user: str | None
    created: int = Field(description="Cloud time, UTC epoch ms.")
    expires: int
    status: CommandStatus
    error: str | None = Field(description="The gateway's reason when `status` is `failed`.")
    replied: int | None


def command_out(row: CommandRequest, now_ms: int) -> CommandOut:
    status = CommandStatus(row.status)
    if status is CommandStatus.PENDING and now_ms >= row.expires_ms:
        status = CommandStatus.EXPIRED
    return CommandOut(
        request_id=row.request_id, site=row.site_id, gateway=row.gateway_id, op=row.op,
        device=row.device_id, point=row.point_id, value=row.value, user=row.username,
        created=row.created_ms, expires=row.expires_ms, status=status,
        error=row.reply_error, replied=row.replied_ms,
    )


def _check_writable(session: Session, site: str, gateway: str, command: Command) -> None:
    """Refuse a write the registry already knows to be impossible (unknown profiles pass:
    the gateway decides)."""
    if command.op != "write" or command.device is None:
        return
    points = {p.id: p for p in list_points(session, site, gateway, command.device)}
    if not points:
        return
    point = points.get(command.point or "")
    where = {"gateway": gateway, "device": command.device, "point": command.point}
    if point is None:
        raise ApiError(404, "point_not_found",
                       f"device {command.device!r} has no point {command.point!r}",
                       details=where)
    if not point.writable:
        raise ApiError(422, "point_not_writable",
                       f"point {command.device}/{command.point} is read-only", details=where)


def _record(
    site: str, gateway: str, command: Command, request_id: str, user: str, now_ms: int, ttl_s: int
) -> Callable[[Session], CommandOut]:
    def work(session: Session) -> CommandOut:
        require_site(session, site)
        if session.get(Gateway, (site, gateway)) is None:
            raise UnknownGateway(site, gateway)
        _check_writable(session, site, gateway, command)
        target = "/".join(p for p in (gateway, command.device, command.point) if p)
        record_audit(
            session, ts_ms=now_ms, user=user, action=f"command.{command.op}", site=site,
            target=target,
            detail={"request_id": request_id, "gateway": gateway, "device": command.device,
                    "point": command.point, "value": command.value, "ttl_s": ttl_s},
        )
        row = create_command(
            session, request_id=request_id, site=site, gateway=gateway, op=command.op,
            device=command.device, point=command.point, value=command.value, user=user,
            created_ms=now_ms, expires_ms=command.expires,
        )
        return command_out(row, now_ms)

    return work


def _not_sent(request_id: str, reason: str, now_ms: int) -> Callable[[Session], None]:
    def work(session: Session) -> None:
        reply = CommandReply(ok=False, error=f"not sent: {reason}"[:256], ts=now_ms)
        record_reply(session, request_id, reply, received_ms=now_ms)

    return work


@router.post(
    "/{site}/gateways/{gateway}/commands",
    status_code=202,
    summary="Send a command to a gateway",
    responses={
        202: {"description": "Published; follow it at the `Location` URL."},
        422: {"model": ErrorBody, "description": "`point_not_writable`"},
        503: {"model": ErrorBody, "description": "`command_not_sent`: the broker refused it"},
    },
)
async def send_command(
    access: CommandSite, gateway: GatewayId, body: CommandIn, ctx: Ctx,
    request: Request, response: Response,
) -> CommandOut:
    """Record and publish a command; the gateway's reply arrives later (poll the request)."""
    now_ms = ctx.now_ms()
    try:
        command = Command(op=body.op, device=body.device, point=body.point, value=body.value,
                          expires=now_ms + body.ttl_s * 1000)
    except ValidationError as exc:
        raise validation_error(
            (f"body.{issue.path}" if issue.path else "body", issue.message)
            for issue in field_issues(exc)
        ) from None
    request_id = new_request_id()
    out = await ctx.run(_record(access.site, gateway, command, request_id,
                                access.user.username, now_ms, body.ttl_s))
    try:
        await ctx.commands.send(access.site, gateway, request_id, encode(command))
    except Exception as exc:
        log.warning("command %s to %s/%s not sent: %s", request_id, access.site, gateway, exc)
        ctx.metrics.commands.labels(command.op, "not_sent").inc()
        await ctx.run(_not_sent(request_id, str(exc) or type(exc).__name__, ctx.now_ms()))
        raise ApiError(503, "command_not_sent", "the command could not be published",
                       details={"request_id": request_id}) from None
    ctx.metrics.commands.labels(command.op, "sent").inc()
    log.info("%s sent %s %s to %s/%s", access.user.username, command.op, request_id,
             access.site, gateway)
    response.headers["Location"] = str(request.app.url_path_for(
        "get_command", site=access.site, gateway=gateway, request_id=request_id))
    return out


@router.get(
    "/{site}/gateways/{gateway}/commands/{request_id}",
    name="get_command",
    summary="A command's status",
)
async def get_command_status(
    access: ReadSite, gateway: GatewayId, request_id: RequestIdPath, ctx: Ctx
) -> CommandOut:
    """`pending`, `ok`, `failed` (with the gateway's error) or `expired`."""

    def work(session: Session) -> CommandOut:
        row = get_command(session, request_id)
        if row.site_id != access.site or row.gateway_id != gateway:
            raise UnknownCommand(request_id)
        return command_out(row, ctx.now_ms())

    return await ctx.run(work)


@router.get("/{site}/commands", summary="Recent commands of a site")
async def recent_commands(
    access: ReadSite,
    ctx: Ctx,
    gateway: Annotated[str | None, Query(pattern=IDENTIFIER_REGEX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CommandOut]:
    """The site's commands, newest first."""

    def work(session: Session) -> list[CommandOut]:
        require_site(session, access.site)
        rows = list_commands(session, access.site, limit=limit if gateway is None else 500)
        now_ms = ctx.now_ms()
        picked = [r for r in rows if gateway is None or r.gateway_id == gateway][:limit]
        return [command_out(r, now_ms) for r in picked]

    return await ctx.run(work)
