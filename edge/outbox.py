"""The durable outbox: every message is stored in SQLite before it is sent.

Producers (pollers, alarm rules, command replies) :meth:`Outbox.put` messages; the MQTT
publisher reads them with :meth:`Outbox.pending` in id order and deletes each one with
:meth:`Outbox.ack` after its PUBACK. Ids come from ``AUTOINCREMENT`` and are never
reused, so "everything after id N" stays meaningful even after the table empties.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` (default). A
commit has been written to the WAL file (the OS page cache) before it returns, so a
crash or SIGKILL of the *process* loses nothing that was put; only an OS crash or power
loss can lose the last transactions before a checkpoint (the file stays consistent).
``synchronous="FULL"`` fsyncs every commit and survives power loss too, at the cost of
one fsync per put and ack batch.

One process owns the file: the connection runs with ``locking_mode=EXCLUSIVE``, so a
second gateway pointed at the same outbox fails with :class:`~edge.errors.OutboxError`
instead of sending the same messages twice (the OS drops the lock when a process dies).

Bounded size: ``max_messages`` bounds the number of stored messages. When a put would
exceed it, ``drop_oldest_telemetry`` deletes the oldest *telemetry* (events, device
state, status and command replies are never dropped, so the outbox can exceed the
bound only by those), and ``refuse_new`` refuses new telemetry with :class:`OutboxFull`
(non-telemetry is still stored). Both are counted (:attr:`Outbox.dropped`,
:attr:`Outbox.refused`, persisted across restarts) and logged at WARNING once when an
overflow episode starts and once when it ends (the depth fell below 90% of the bound).

Calls are short and synchronous: they run on the asyncio thread; batch with
:meth:`Outbox.put_many` / :meth:`Outbox.ack` (``executemany``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from edge.errors import OutboxError

log = logging.getLogger(__name__)

T = TypeVar("T")

Overflow = Literal["drop_oldest_telemetry", "refuse_new"]
KINDS = frozenset({"telemetry", "event", "state", "status", "reply"})
"""Message kinds; only ``telemetry`` may be dropped or refused when the outbox is full."""

_TELEMETRY = "telemetry"
_RESUME_FRACTION = 0.9  # an overflow episode ends when the depth falls below this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INT NOT NULL,
    retain INT NOT NULL,
    kind TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_INSERT = "INSERT INTO messages (topic, payload, qos, retain, kind, created) VALUES (?,?,?,?,?,?)"
# Scans in id order and stops after LIMIT telemetry rows: cheap, because telemetry is
# nearly everything in a full outbox (no index, so inserts stay cheap).
_DROP_OLDEST = (
    "DELETE FROM messages WHERE id IN "
    "(SELECT id FROM messages WHERE kind = 'telemetry' ORDER BY id LIMIT ?)"
)


@dataclass(frozen=True)
class OutItem:
    """A message to store: where it goes, its bytes, and how it is published."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    kind: str = _TELEMETRY

    def __post_init__(self) -> None:
        if not self.topic or "+" in self.topic or "#" in self.topic:
            raise ValueError(f"not a topic name to publish to: {self.topic!r}")
        if not isinstance(self.payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(self.payload).__name__}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {self.qos!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {self.kind!r}")


@dataclass(frozen=True)
class OutMessage:
    """A stored message, with the id to :meth:`Outbox.ack` it by."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str


class OutboxFull(OutboxError):
    """``refuse_new``: new telemetry did not fit. Non-telemetry in the batch was stored."""

    def __init__(self, message: str, *, refused: int, stored: Sequence[int]) -> None:
        self.refused = refused
        self.stored = list(stored)
        super().__init__(message)


class OutboxTransaction:
    """Puts and cursor updates that commit together, or not at all."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def put(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
            kind: str = _TELEMETRY) -> int:
        return self._outbox.put(topic, payload, qos=qos, retain=retain, kind=kind)

    def put_many(self, items: Sequence[OutItem]) -> list[int]:
        return self._outbox.put_many(items)

    def set_cursor(self, key: str, value: int) -> None:
        """Remember how far a reader got (e.g. an event log), atomically with the puts."""
        self._outbox._set_cursor(key, value)


class Outbox:
    """A durable FIFO of MQTT messages in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, max_messages: int, overflow: Overflow,
                 synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if overflow not in ("drop_oldest_telemetry", "refuse_new"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.overflow: Overflow = overflow
        self._closed = False
        self._in_tx = False
        self._episode = 0  # messages dropped / refused in the current overflow episode
        try:
            self._db = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"outbox {self.path}: cannot use WAL (journal_mode={mode})")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)  # takes the exclusive lock
            self._depth = int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
            self._dropped = self._meta("dropped")
            self._refused = self._meta("refused")
        except sqlite3.Error as exc:
            self._db.close()
            if "locked" in str(exc):
                raise OutboxError(f"outbox {self.path} is in use by another process") from exc
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    # -- counters ------------------------------------------------------------------------
    def depth(self) -> int:
        """Messages stored and not yet acknowledged."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Telemetry messages dropped by ``drop_oldest_telemetry`` (survives restarts)."""
        return self._dropped

    @property
    def refused(self) -> int:
        """Telemetry messages refused by ``refuse_new`` (survives restarts)."""
        return self._refused

    # -- writing -------------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
            kind: str = _TELEMETRY) -> int:
        """Store one message; returns its id."""
        return self.put_many([OutItem(topic, payload, qos=qos, retain=retain, kind=kind)])[0]

    def put_many(self, items: Sequence[OutItem]) -> list[int]:
        """Store messages in order, in one transaction; returns their ids.

        With ``refuse_new`` and no room, raises :class:`OutboxFull` after storing the
        batch's non-telemetry messages. With ``drop_oldest_telemetry`` the returned ids
        of new telemetry may already be dropped again if the outbox holds nothing older.
        """
        if not items:
            return []
        with self._write():
            refused = 0
            if self.overflow == "refuse_new":
                room = self.max_messages - self._depth
                kept: list[OutItem] = []
                for item in items:
                    if item.kind != _TELEMETRY:
                        kept.append(item)
                    elif room > 0:
                        kept.append(item)
                        room -= 1
                    else:
                        refused += 1
                items = kept
            ids = self._insert(items) if items else []
            if refused:
                self._count_overflow("refused", refused)
            elif self.overflow == "drop_oldest_telemetry" and self._depth > self.max_messages:
                self._drop_oldest(self._depth - self.max_messages)
        if refused:
            raise OutboxFull(
                f"outbox full ({self.max_messages} messages): refused {refused} telemetry "
                f"message(s), stored {len(ids)} other(s)", refused=refused, stored=ids)
        return ids

    @contextmanager
    def transaction(self) -> Iterator[OutboxTransaction]:
        """Puts and :meth:`OutboxTransaction.set_cursor` inside commit together; an
        exception inside rolls back all of them (and the counters)."""
        with self._write():
            yield OutboxTransaction(self)

    def cursor(self, key: str) -> int | None:
        """The value last committed with ``set_cursor(key, ...)``, or ``None``."""
        row = self._run(lambda: self._db.execute(
            "SELECT value FROM cursors WHERE key = ?", (key,)).fetchone())
        return None if row is None else int(row[0])

    # -- reading and acknowledging ---------------------------------------------------------
    def pending(self, after_id: int = 0, limit: int = 500) -> list[OutMessage]:
        """Up to ``limit`` stored messages with id > ``after_id``, oldest first."""
        rows = self._run(lambda: self._db.execute(
            "SELECT id, topic, payload, qos, retain, kind FROM messages "
            "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall())
        return [OutMessage(int(r[0]), r[1], bytes(r[2]), int(r[3]), bool(r[4]), r[5])
                for r in rows]

    def ack(self, ids: Iterable[int]) -> None:
        """Delete delivered messages; unknown ids (already acked or dropped) are ignored."""
        params = [(i,) for i in ids]
        if not params:
            return
        with self._write():
            deleted = self._run(lambda: self._db.executemany(
                "DELETE FROM messages WHERE id = ?", params).rowcount)
            self._depth -= deleted

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    # -- internals -----------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, or join the one already open (nested calls)."""
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")
        if self._in_tx:
            yield
            return
        saved = (self._depth, self._dropped, self._refused, self._episode)
        self._run(lambda: self._db.execute("BEGIN IMMEDIATE"))
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._in_tx = False
            self._depth, self._dropped, self._refused, self._episode = saved
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:  # pragma: no cover - the original error matters more
                log.error("outbox %s: rollback failed: %s", self.path, exc)
            raise
        self._in_tx = False
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._depth, self._dropped, self._refused, self._episode = saved
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise OutboxError(f"outbox {self.path}: commit failed: {exc}") from exc
        self._after_commit()

    def _insert(self, items: Sequence[OutItem]) -> list[int]:
        now = time.time()
        rows = [(i.topic, i.payload, i.qos, int(i.retain), i.kind, now) for i in items]

        def insert() -> int:
            self._db.executemany(_INSERT, rows)
            row = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            return int(row[0])

        last = self._run(insert)
        self._depth += len(rows)
        # AUTOINCREMENT under an exclusive write transaction hands out consecutive ids.
        return list(range(last - len(rows) + 1, last + 1))

    def _drop_oldest(self, count: int) -> None:
        deleted = self._run(lambda: self._db.execute(_DROP_OLDEST, (count,)).rowcount)
        if deleted:
            self._depth -= deleted
            self._count_overflow("dropped", deleted)

    def _count_overflow(self, key: Literal["dropped", "refused"], count: int) -> None:
        if self._episode == 0:
            action = "dropping the oldest" if key == "dropped" else "refusing new"
            log.warning("outbox %s full (%d messages): %s telemetry", self.path,
                        self.max_messages, action)
        self._episode += count
        if key == "dropped":
            self._dropped += count
            total = self._dropped
        else:
            self._refused += count
            total = self._refused
        self._run(lambda: self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, total)))

    def _after_commit(self) -> None:
        if self._episode and self._depth < self.max_messages * _RESUME_FRACTION:
            what = "dropped" if self.overflow == "drop_oldest_telemetry" else "refused"
            log.warning("outbox %s has room again: %d telemetry message(s) %s while full "
                        "(%d dropped, %d refused in total)", self.path, self._episode, what,
                        self._dropped, self._refused)
            self._episode = 0

    def _set_cursor(self, key: str, value: int) -> None:
        if not self._in_tx:
            raise OutboxError("set_cursor is only allowed inside Outbox.transaction()")
        self._run(lambda: self._db.execute(
            "INSERT INTO cursors (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, int(value))))

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def _run(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")
        try:
            return call()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, depth={self._depth}, max={self.max_messages})"
