"""The durable outbox on a real SQLite file: order, ack, restart, overflow, transactions."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.errors import OutboxError
from edge.outbox import Outbox, OutboxFull, OutItem, Overflow

TOPIC = "tw/v1/site1/gw1/telemetry/dev1"
EVENT_TOPIC = "tw/v1/site1/gw1/event/dev1"


def _tele(n: int) -> OutItem:
    return OutItem(TOPIC, f"t{n}".encode())


def _event(n: int) -> OutItem:
    return OutItem(EVENT_TOPIC, f"e{n}".encode(), kind="event")


def _payloads(outbox: Outbox) -> list[bytes]:
    return [m.payload for m in outbox.pending(limit=10_000)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def outbox(path: Path) -> Iterator[Outbox]:
    box = Outbox(path, max_messages=1000, overflow="drop_oldest_telemetry")
    yield box
    box.close()


def _open(path: Path, max_messages: int, overflow: Overflow) -> Outbox:
    return Outbox(path, max_messages=max_messages, overflow=overflow)


# -- order, ack, restart -------------------------------------------------------------------
def test_pending_is_in_put_order_with_increasing_ids(outbox: Outbox) -> None:
    first = outbox.put(TOPIC, b"a", retain=True, kind="state")
    ids = outbox.put_many([_tele(1), _event(2), _tele(3)])
    assert ids == [first + 1, first + 2, first + 3]
    messages = outbox.pending()
    assert [m.id for m in messages] == [first, *ids]
    assert [m.payload for m in messages] == [b"a", b"t1", b"e2", b"t3"]
    assert (messages[0].retain, messages[0].kind, messages[0].qos) == (True, "state", 1)
    assert [m.payload for m in outbox.pending(after_id=ids[0], limit=1)] == [b"e2"]
    assert outbox.depth() == 4


def test_ack_deletes_only_the_given_ids(outbox: Outbox) -> None:
    ids = outbox.put_many([_tele(i) for i in range(5)])
    outbox.ack([ids[1], ids[3]])
    assert _payloads(outbox) == [b"t0", b"t2", b"t4"]
    assert outbox.depth() == 3
    outbox.ack([ids[1], 999_999])  # already acked / unknown: ignored
    assert outbox.depth() == 3
    outbox.ack([])
    assert outbox.depth() == 3


def test_ids_are_never_reused_after_the_table_empties(outbox: Outbox) -> None:
    ids = outbox.put_many([_tele(i) for i in range(3)])
    outbox.ack(ids)
    assert outbox.depth() == 0
    assert outbox.put(TOPIC, b"again") > ids[-1]


def test_reopen_keeps_unacked_messages_and_counters(path: Path) -> None:
    box = _open(path, 3, "drop_oldest_telemetry")
    ids = box.put_many([_tele(i) for i in range(5)])  # drops t0, t1
    box.ack([ids[2]])
    box.close()
    again = _open(path, 3, "drop_oldest_telemetry")
    try:
        assert _payloads(again) == [b"t3", b"t4"]
        assert again.depth() == 2
        assert again.dropped == 2
        assert again.put(TOPIC, b"next") > ids[-1]
    finally:
        again.close()


def test_a_second_outbox_on_the_same_file_is_refused(outbox: Outbox, path: Path) -> None:
    outbox.put(TOPIC, b"x")
    with pytest.raises(OutboxError, match="in use"):
        _open(path, 10, "refuse_new")


def test_the_file_is_in_wal_mode(outbox: Outbox, path: Path) -> None:
    outbox.put(TOPIC, b"x")
    outbox.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closed_outbox_raises_outbox_error(outbox: Outbox) -> None:
    outbox.close()
    outbox.close()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        outbox.put(TOPIC, b"x")
    with pytest.raises(OutboxError, match="closed"):
        outbox.pending()


def test_sqlite_errors_become_outbox_errors(tmp_path: Path) -> None:
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError) as err:
        _open(not_a_db, 10, "refuse_new")
    assert isinstance(err.value.__cause__, sqlite3.Error)


@pytest.mark.parametrize(
    ("item", "error"),
    [
        (lambda: OutItem("", b"x"), ValueError),
        (lambda: OutItem("a/+/b", b"x"), ValueError),
        (lambda: OutItem(TOPIC, "text"), TypeError),  # type: ignore[arg-type]
        (lambda: OutItem(TOPIC, b"x", qos=3), ValueError),
        (lambda: OutItem(TOPIC, b"x", kind="gossip"), ValueError),
    ],
)
def test_out_items_check_themselves(item: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        item()  # type: ignore[operator]


# -- overflow ------------------------------------------------------------------------------
def test_drop_oldest_telemetry_keeps_events_and_counts(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _open(path, 4, "drop_oldest_telemetry")
    try:
        box.put_many([_event(0), _tele(1), _tele(2), _event(3)])
        with caplog.at_level(logging.WARNING, logger="edge.outbox"):
            box.put_many([_tele(4), _tele(5)])
            box.put(TOPIC, b"t6")
        assert _payloads(box) == [b"e0", b"e3", b"t5", b"t6"]
        assert box.dropped == 3
        assert box.depth() == 4
        full = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
        assert len(full) == 1, "one WARNING per overflow episode"
        # only events: they are never dropped, the bound gives way
        box.put_many([_event(7), _event(8)])
        assert _payloads(box) == [b"e0", b"e3", b"e7", b"e8"]
        assert box.depth() == 4
        assert box.dropped == 5
        box.put_many([_event(9)])
        assert box.depth() == 5
        assert box.dropped == 5
    finally:
        box.close()


def test_overflow_episode_ends_with_a_summary(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _open(path, 10, "drop_oldest_telemetry")
    try:
        with caplog.at_level(logging.WARNING, logger="edge.outbox"):
            box.put_many([_tele(i) for i in range(15)])
            box.ack([m.id for m in box.pending(limit=5)])
            box.put_many([_tele(i) for i in range(15, 25)])
        messages = [r.getMessage() for r in caplog.records]
        assert sum("dropping the oldest" in m for m in messages) == 2, messages
        summary = [m for m in messages if "room again" in m]
        assert len(summary) == 1
        assert "5 telemetry message(s) dropped" in summary[0]
    finally:
        box.close()


def test_refuse_new_refuses_telemetry_but_stores_events(path: Path) -> None:
    box = _open(path, 3, "refuse_new")
    try:
        box.put_many([_tele(0), _tele(1)])
        with pytest.raises(OutboxFull) as err:
            box.put_many([_tele(2), _tele(3), _event(4), _tele(5)])
        assert err.value.refused == 2
        assert len(err.value.stored) == 2
        assert _payloads(box) == [b"t0", b"t1", b"t2", b"e4"]
        with pytest.raises(OutboxError):
            box.put(TOPIC, b"t6")
        assert box.put(EVENT_TOPIC, b"e7", kind="event") > 0
        assert box.refused == 3
        assert box.dropped == 0
        assert box.depth() == 5
    finally:
        box.close()
    again = _open(path, 3, "refuse_new")
    try:
        assert again.refused == 3
    finally:
        again.close()


# -- transactions --------------------------------------------------------------------------
def test_transaction_commits_messages_and_cursor_together(outbox: Outbox) -> None:
    assert outbox.cursor("log:door1") is None
    with outbox.transaction() as tx:
        tx.put_many([_event(1), _event(2)])
        tx.put(EVENT_TOPIC, b"e3", kind="event")
        tx.set_cursor("log:door1", 3)
    assert outbox.cursor("log:door1") == 3
    assert _payloads(outbox) == [b"e1", b"e2", b"e3"]
    with outbox.transaction() as tx:
        tx.set_cursor("log:door1", 5)
    assert outbox.cursor("log:door1") == 5


def _put_then_fail(outbox: Outbox, items: list[OutItem], cursor: int | None = None) -> None:
    with outbox.transaction() as tx:
        tx.put_many(items)
        if cursor is not None:
            tx.set_cursor("log:door1", cursor)
        raise RuntimeError("reader failed")


def test_an_exception_in_a_transaction_rolls_back_messages_and_cursor(outbox: Outbox) -> None:
    with outbox.transaction() as tx:
        tx.put_many([_event(1)])
        tx.set_cursor("log:door1", 1)
    with pytest.raises(RuntimeError, match="reader failed"):
        _put_then_fail(outbox, [_event(2), _event(3)], cursor=3)
    assert outbox.cursor("log:door1") == 1
    assert _payloads(outbox) == [b"e1"]
    assert outbox.depth() == 1
    # and the outbox works normally afterwards
    outbox.put(TOPIC, b"t4")
    assert _payloads(outbox) == [b"e1", b"t4"]


def test_rolled_back_drops_restore_the_counters(path: Path) -> None:
    box = _open(path, 2, "drop_oldest_telemetry")
    try:
        box.put_many([_tele(0), _tele(1)])
        with pytest.raises(RuntimeError):
            _put_then_fail(box, [_tele(2)])  # would drop t0
        assert box.dropped == 0
        assert box.depth() == 2
        assert _payloads(box) == [b"t0", b"t1"]
    finally:
        box.close()


def test_set_cursor_needs_a_transaction(outbox: Outbox) -> None:
    with outbox.transaction() as tx:
        pass
    with pytest.raises(OutboxError, match="inside"):
        tx.set_cursor("k", 1)


def test_cursor_survives_reopen(path: Path) -> None:
    box = _open(path, 10, "refuse_new")
    with box.transaction() as tx:
        tx.set_cursor("k", 42)
    box.close()
    again = _open(path, 10, "refuse_new")
    try:
        assert again.cursor("k") == 42
    finally:
        again.close()
