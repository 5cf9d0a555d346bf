"""Append-only records: the audit log and dead letters."""

from __future__ import annotations

from cloud.db import (
    Database,
    add_dead_letter,
    count_dead_letters,
    list_audit,
    list_dead_letters,
    prune_dead_letters,
    record_audit,
)
from cloud.db.dead_letters import MAX_PAYLOAD_BYTES

T0 = 1_767_225_600_000


def test_audit_append_and_query(db: Database) -> None:
    with db.transaction() as session:
        record_audit(
            session,
            ts_ms=T0,
            user="alice",
            action="alarm.acknowledge",
            site="tower-a",
            target="lift-1/trapped",
            detail={"comment": "rescue crew dispatched", "severity": "emergency"},
        )
        record_audit(session, ts_ms=T0 + 1, user=None, action="command.expire", site="tower-b")
        record_audit(
            session,
            ts_ms=T0 + 2,
            user="bob",
            action="command.write",
            site="tower-a",
            target="pumps/setpoint",
            detail={"value": 4.5, "request_id": "r1"},
        )
    with db.transaction() as session:
        newest_first = list_audit(session)
        assert [e.action for e in newest_first] == [
            "command.write",
            "command.expire",
            "alarm.acknowledge",
        ]
        [ack] = list_audit(session, user="alice")
        assert ack.detail == {"comment": "rescue crew dispatched", "severity": "emergency"}
        assert (ack.site_id, ack.target, ack.ts_ms) == ("tower-a", "lift-1/trapped", T0)
        assert [e.username for e in list_audit(session, site="tower-a")] == ["bob", "alice"]
        assert [e.ts_ms for e in list_audit(session, since_ms=T0 + 1, until_ms=T0 + 2)] == [T0 + 1]
        assert list_audit(session, site="tower-b")[0].detail == {}
        assert len(list_audit(session, limit=1)) == 1


def test_dead_letters(db: Database) -> None:
    huge = b"\xff" * (MAX_PAYLOAD_BYTES + 10)
    with db.transaction() as session:
        first = add_dead_letter(
            session,
            topic="tw/v1/tower-a/gw-1/telemetry/pumps",
            payload=b'{"seq": "3"}',
            reason="seq: Input should be a valid integer",
            received_ms=T0,
        )
        assert first.id is not None
        add_dead_letter(
            session,
            topic="tw/v1/tower-a/gw-1/event/x",
            payload=huge,
            reason="not JSON",
            received_ms=T0 + 5,
        )
        add_dead_letter(session, topic="junk", payload=b"", reason="bad topic", received_ms=T0 + 9)
    with db.transaction() as session:
        letters = list_dead_letters(session)
        assert [d.reason for d in letters] == [
            "bad topic",
            "not JSON",
            "seq: Input should be a valid integer",
        ]
        assert letters[2].payload == b'{"seq": "3"}' and letters[2].payload_size == 12
        assert len(letters[1].payload) == MAX_PAYLOAD_BYTES
        assert letters[1].payload_size == MAX_PAYLOAD_BYTES + 10
        assert [d.topic for d in list_dead_letters(session, limit=1, before_id=letters[1].id)] == [
            "tw/v1/tower-a/gw-1/telemetry/pumps"
        ]
        assert count_dead_letters(session) == 3
        assert count_dead_letters(session, since_ms=T0 + 5) == 2
        assert prune_dead_letters(session, older_than_ms=T0 + 9) == 2
        assert count_dead_letters(session) == 1
