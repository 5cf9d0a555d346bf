"""Command requests to the edge (``…/cmd/{request_id}``) and what became of them.

Life of a request: :func:`create_command` (``pending``), then either :func:`record_reply`
(``ok`` / ``failed`` from the edge's ``…/cmd-reply/{request_id}``) or
:func:`expire_commands` (``expired`` once ``expires_ms`` passed without a reply).

Replies are QoS 1, so they may arrive twice: the first reply wins and a repeat changes
nothing. A reply after expiry is still recorded (the edge may have acted; the truth
matters more than the timeout). Times: ``created_ms``, ``expires_ms`` and ``replied_ms``
are cloud time; the edge checks ``expires`` against its own clock as well.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.db.errors import UnknownCommand, UnknownGateway
from cloud.db.models import CommandRequest, CommandStatus, Gateway
from towerwatch.contract import CommandOp, CommandReply, check_request_id

__all__ = ["create_command", "expire_commands", "get_command", "list_commands", "record_reply"]


def create_command(
    session: Session,
    *,
    request_id: str,
    site: str,
    gateway: str,
    op: CommandOp,
    device: str | None = None,
    point: str | None = None,
    value: Any = None,
    user: str | None,
    created_ms: int,
    expires_ms: int,
) -> CommandRequest:
    """Record a command about to be published; raises :class:`UnknownGateway`."""
    check_request_id(request_id)
    if expires_ms <= created_ms:
        raise ValueError(f"expires_ms {expires_ms} is not after created_ms {created_ms}")
    if session.get(Gateway, (site, gateway)) is None:
        raise UnknownGateway(site, gateway)
    command = CommandRequest(
        request_id=request_id,
        site_id=site,
        gateway_id=gateway,
        op=op,
        device_id=device,
        point_id=point,
        value=value,
        username=user,
        created_ms=created_ms,
        expires_ms=expires_ms,
        status=CommandStatus.PENDING.value,
    )
    session.add(command)
    session.flush()
    return command


def get_command(session: Session, request_id: str) -> CommandRequest:
    command = session.get(CommandRequest, request_id, populate_existing=True)
    if command is None:
        raise UnknownCommand(request_id)
    return command


def record_reply(
    session: Session, request_id: str, reply: CommandReply, *, received_ms: int
) -> CommandRequest:
    """Apply the edge's reply (first reply wins); raises :class:`UnknownCommand`."""
    status = CommandStatus.OK if reply.ok else CommandStatus.FAILED
    session.execute(
        update(CommandRequest)
        .where(
            CommandRequest.request_id == request_id,
            CommandRequest.status.in_([CommandStatus.PENDING.value, CommandStatus.EXPIRED.value]),
        )
        .values(status=status.value, reply_error=reply.error, replied_ms=received_ms)
        .execution_options(synchronize_session=False)
    )
    return get_command(session, request_id)


def expire_commands(session: Session, *, now_ms: int) -> list[str]:
    """Mark pending commands past their ``expires_ms`` as expired; return their ids."""
    result = session.execute(
        update(CommandRequest)
        .where(
            CommandRequest.status == CommandStatus.PENDING.value,
            CommandRequest.expires_ms <= now_ms,
        )
        .values(status=CommandStatus.EXPIRED.value)
        .returning(CommandRequest.request_id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars())


def list_commands(session: Session, site: str, *, limit: int = 100) -> list[CommandRequest]:
    """A site's commands, newest first."""
    query = (
        select(CommandRequest)
        .where(CommandRequest.site_id == site)
        .order_by(CommandRequest.created_ms.desc(), CommandRequest.request_id)
        .limit(limit)
    )
    return list(session.scalars(query))
