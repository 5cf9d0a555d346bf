"""Recording a batch of taps (SQLite and PostgreSQL): the store is read a fixed number of
times whatever the batch's size; within a batch the replay rule and idempotency are those of
taps sent one by one; a whole round walked offline arrives in one batch and is judged."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from cloud.db import Database
from cloud.patrols.model import ExceptionKind, ScanResult, TagType, TourStatus
from cloud.patrols.scans import ScanIn, ScanOutcome, record_scans
from cloud.patrols.tables import PatrolCheckpoint, PatrolException, PatrolScan, PatrolTour
from cloud.patrols.tags import CheckpointSpec, Tap, enrol
from cloud.patrols.tours import sweep
from tests.cloud.patrols.support import (
    GUARD,
    SITE,
    TZ,
    local_ms,
    record,
    route_with_schedule,
    runtime,
    site_with_tags,
)


def statements(db: Database) -> list[str]:
    """SQL statements sent from now on (an ``executemany`` counts once)."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    return sent


def test_a_batch_costs_the_same_statements_whatever_its_size(db: Database,
                                                             tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    tags = site_with_tags(db, rt, SITE, TZ, 30)
    now = local_ms(21)
    sent = statements(db)
    small = [tags[i % 5].scan(f"s-{i}", now - 1000 + i) for i in range(10)]
    assert {o.result for o in record(db, rt, SITE, small, now)} == {ScanResult.ACCEPTED}
    small_count = len(sent)
    sent.clear()
    large = [tags[i % 30].scan(f"l-{i}", now - 1000 + i) for i in range(90)]
    assert {o.result for o in record(db, rt, SITE, large, now)} == {ScanResult.ACCEPTED}
    assert len(sent) == small_count, sent
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PatrolScan)) == 100
        counters = dict(session.execute(select(PatrolCheckpoint.code,
                                               PatrolCheckpoint.last_counter)).all())
    assert counters["cp-1"] == 5 and counters["cp-30"] == 3


def test_taps_of_one_tag_in_one_batch_keep_the_replay_rule_and_idempotency(
    db: Database, tmp_path: Path,
) -> None:
    rt = runtime(tmp_path)
    tag = site_with_tags(db, rt, SITE, TZ, 1)[0]
    now = local_ms(21)
    first, second, third = (tag.scan(f"t-{n}", now - 60_000 + n * 1000) for n in (1, 2, 3))
    copied = type(second)(scan_id="t-copy", device_ms=now - 30_000, tap=second.tap)
    batch = [third, copied, second, first, second]  # uploaded in any order; a retried id
    outcomes = record(db, rt, SITE, batch, now, batch_id="b-1")
    assert [o.result for o in outcomes] == [ScanResult.ACCEPTED, ScanResult.REPLAY,
                                            ScanResult.ACCEPTED, ScanResult.ACCEPTED,
                                            ScanResult.ACCEPTED]
    assert outcomes[2] is outcomes[4]
    with db.transaction() as session:
        kinds = session.scalars(select(PatrolException.kind)).all()
        replayed = session.scalar(select(PatrolScan).where(PatrolScan.scan_id == "t-copy"))
        checkpoint = session.get(PatrolCheckpoint, tag.checkpoint_id)
    assert kinds == [ExceptionKind.REPLAY.value]
    assert replayed is not None and replayed.counter == 2
    assert checkpoint is not None and checkpoint.last_counter == 3

    again = record(db, rt, SITE, batch, now + 5000, batch_id="b-1")
    assert all(o.repeated for o in again)
    assert [o.result for o in again] == [o.result for o in outcomes]
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PatrolScan)) == 4
        assert session.scalar(select(func.count()).select_from(PatrolException)) == 1


def test_a_round_walked_offline_is_judged_in_one_batch(db: Database, tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    tags = site_with_tags(db, rt, SITE, TZ, 3)
    route_with_schedule(db, SITE, tags, {"times": ["22:00"]}, local_ms(20))
    with db.transaction() as session:
        assert sweep(session, rt, SITE, local_ms(21)).planned == 1
    one, two, three = tags
    batch = [one.scan("w-1", local_ms(22, 1)), three.scan("w-3", local_ms(22, 4)),
             two.scan("w-2", local_ms(22, 6)), two.scan("w-2b", local_ms(22, 7))]
    outcomes = record(db, rt, SITE, batch, local_ms(22, 30), batch_id="walk")
    assert [o.result for o in outcomes] == [ScanResult.ACCEPTED] * 3 + [ScanResult.DUPLICATE]
    assert outcomes[2].exceptions == [ExceptionKind.OUT_OF_ORDER.value]
    assert len({o.tour_id for o in outcomes}) == 1
    with db.transaction() as session:
        tour = session.scalars(select(PatrolTour)).one()
        rows = {r.scan_id: r for r in session.scalars(select(PatrolScan))}
        found = {e.kind: e.scan_id for e in session.scalars(select(PatrolException))}
    assert tour.status == TourStatus.COMPLETED_WITH_EXCEPTIONS
    assert (tour.started_ms, tour.finished_ms) == (local_ms(22, 1), local_ms(22, 6))
    assert found == {ExceptionKind.OUT_OF_ORDER.value: rows["w-2"].id,
                     ExceptionKind.DUPLICATE_SCAN.value: rows["w-2b"].id}
    assert sorted(rows, key=lambda k: rows[k].id) == ["w-1", "w-3", "w-2", "w-2b"]
    assert all(r.tour_id == tour.id for r in rows.values())


def test_the_same_tap_uploaded_twice_at_once_is_accepted_once(db: Database,
                                                              tmp_path: Path) -> None:
    """Two phones upload the same tap (one copied it) while the first upload's transaction
    is still open: the second waits for the checkpoint's lock, then sees the counter used.
    (Were the checkpoint read without a lock, the second upload would read it at once,
    before the first commits, and accept the tap again.)"""
    rt = runtime(tmp_path)
    tag = site_with_tags(db, rt, SITE, TZ, 1)[0]
    now = local_ms(21)
    original = tag.scan("phone-1", now - 1000)
    copy = type(original)(scan_id="phone-2", device_ms=now - 900, tap=original.tap)
    reached, read = threading.Event(), threading.Event()
    second: list[ScanOutcome] = []

    def on(flag: threading.Event) -> Any:
        def listener(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if threading.current_thread().name == "phone-2" and "patrol_checkpoints" in statement:
                flag.set()
        return listener

    event.listen(db.engine, "before_cursor_execute", on(reached))
    event.listen(db.engine, "after_cursor_execute", on(read))
    with db.transaction() as session:
        first = record_scans(session, rt, site=SITE, guard=GUARD, scans=[original],
                             sent_ms=now, batch_id=None, now_ms=now)
        other = threading.Thread(target=lambda: second.extend(record(db, rt, SITE, [copy], now)),
                                 name="phone-2")
        other.start()
        assert reached.wait(30), "the second upload never reached the checkpoints"
        read.wait(1.0)  # it either reads now (unlocked) or waits for this commit
    other.join(60)
    assert not other.is_alive()
    assert first[0].result is ScanResult.ACCEPTED
    assert [o.result for o in second] == [ScanResult.REPLAY]


def test_one_batch_identifies_sun_uid_and_qr_taps(db: Database, tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    sun = site_with_tags(db, rt, SITE, TZ, 1)[0]
    with db.transaction() as session:
        enrol(session, rt, SITE, CheckpointSpec("door", "Door", TagType.UID, uid="04AABBCC"), 0)
        enrol(session, rt, SITE, CheckpointSpec("gate", "Gate", TagType.QR, qr_code="gate-qr"),
              0)
    now = local_ms(21)
    batch = [
        sun.scan("s-sun", now - 5000),
        ScanIn("s-uid", Tap(TagType.UID, uid="04aabbcc"), now - 4000),
        ScanIn("s-qr", Tap(TagType.QR, qr="gate-qr"), now - 3000),
        ScanIn("s-sun-uid", Tap(TagType.UID, uid=sun.sim.uid.hex()), now - 2000),
        ScanIn("s-bad-uid", Tap(TagType.UID, uid="zz"), now - 1500),
        ScanIn("s-no-qr", Tap(TagType.QR, qr="elsewhere"), now - 1000),
    ]
    outcomes = record(db, rt, SITE, batch, now)
    assert [(o.result, o.checkpoint, o.assurance) for o in outcomes] == [
        (ScanResult.ACCEPTED, "cp-1", "strong"), (ScanResult.ACCEPTED, "door", "weak"),
        (ScanResult.ACCEPTED, "gate", "weak"), (ScanResult.UNKNOWN_TAG, "cp-1", None),
        (ScanResult.UNKNOWN_TAG, None, None), (ScanResult.UNKNOWN_TAG, None, None)]
    assert "belongs to a SUN tag" in (outcomes[3].reason or "")
    assert "uid" in (outcomes[4].reason or "")
