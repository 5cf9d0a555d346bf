"""Command requests: created pending, settled by the first reply or by expiry."""

from __future__ import annotations

import pytest

from cloud.db import (
    CommandStatus,
    Database,
    UnknownCommand,
    UnknownGateway,
    create_command,
    ensure_gateways,
    expire_commands,
    get_command,
    list_commands,
    record_reply,
)
from towerwatch.contract import CommandReply

T0 = 1_767_225_600_000


def make(db: Database, request_id: str, *, created: int = T0, ttl: int = 30_000) -> None:
    with db.transaction() as session:
        ensure_gateways(session, [("tower-a", "gw-1")])
        create_command(
            session,
            request_id=request_id,
            site="tower-a",
            gateway="gw-1",
            op="write",
            device="pumps",
            point="setpoint",
            value=4.5,
            user="alice",
            created_ms=created,
            expires_ms=created + ttl,
        )


def test_reply_settles_a_command_once(db: Database) -> None:
    make(db, "req-1")
    with db.transaction() as session:
        command = get_command(session, "req-1")
        assert (command.status, command.value, command.username) == ("pending", 4.5, "alice")
        done = record_reply(
            session,
            "req-1",
            CommandReply(ok=False, error="not writable", ts=T0 + 5),
            received_ms=T0 + 9,
        )
        assert (done.status, done.reply_error, done.replied_ms) == (
            "failed",
            "not writable",
            T0 + 9,
        )
        again = record_reply(
            session, "req-1", CommandReply(ok=True, ts=T0 + 6), received_ms=T0 + 20
        )
        assert (again.status, again.replied_ms) == (
            "failed",
            T0 + 9,
        )  # a redelivery changes nothing


def test_expiry_and_a_late_reply(db: Database) -> None:
    make(db, "req-1", ttl=1000)
    make(db, "req-2", ttl=5000)
    with db.transaction() as session:
        assert expire_commands(session, now_ms=T0 + 999) == []
        assert expire_commands(session, now_ms=T0 + 1000) == ["req-1"]
        assert get_command(session, "req-1").status == CommandStatus.EXPIRED
        assert get_command(session, "req-2").status == CommandStatus.PENDING
        late = record_reply(session, "req-1", CommandReply(ok=True, ts=T0), received_ms=T0 + 2000)
        assert late.status == CommandStatus.OK  # the edge did act: record the truth
        assert [c.request_id for c in list_commands(session, "tower-a")] == ["req-1", "req-2"]


def test_unknown_ids_and_gateways(db: Database) -> None:
    with pytest.raises(UnknownCommand), db.transaction() as session:
        record_reply(session, "nope", CommandReply(ok=True, ts=T0), received_ms=T0)
    with pytest.raises(UnknownGateway), db.transaction() as session:
        create_command(
            session,
            request_id="r",
            site="tower-a",
            gateway="gw-9",
            op="ping",
            user=None,
            created_ms=T0,
            expires_ms=T0 + 1,
        )
    with pytest.raises(ValueError, match="expires_ms"):
        make(db, "req-3", ttl=0)
