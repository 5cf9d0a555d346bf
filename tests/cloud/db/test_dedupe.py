"""Messages are accepted exactly once by (gateway, boot_id, seq); gaps are counted."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from cloud.db import (
    Database,
    MessageKey,
    SeqGap,
    claim_messages,
    gateway_key,
    prune_seen,
    prune_seq_streams,
    record_seq_gaps,
    seq_streams,
)

T0 = 1_767_225_600_000
BOOT = "11111111-aaaa-4bbb-8ccc-000000000001"
OTHER_BOOT = "22222222-aaaa-4bbb-8ccc-000000000002"
GW = gateway_key("tower-a", "gw-1")


def keys(*seqs: int, boot: str = BOOT, gw: str = GW) -> list[MessageKey]:
    return [MessageKey(gw, boot, seq) for seq in seqs]


def claim(db: Database, batch: list[MessageKey], now_ms: int = T0) -> set[MessageKey]:
    with db.transaction() as session:
        return claim_messages(session, batch, now_ms=now_ms)


def test_message_key_checks_itself() -> None:
    assert MessageKey.of("tower-a", "gw-1", BOOT, 3) == MessageKey("tower-a/gw-1", BOOT, 3)
    with pytest.raises(ValueError, match="seq"):
        MessageKey(GW, BOOT, -1)
    with pytest.raises(ValueError, match="boot id"):
        MessageKey(GW, "short", 1)
    with pytest.raises(ValueError, match="gateway id"):
        gateway_key("tower-a", "GW/1")


def test_redeliveries_are_dropped(db: Database) -> None:
    assert claim(db, keys(1, 2, 3, 3)) == set(keys(1, 2, 3))
    assert claim(db, keys(3, 4)) == set(keys(4))
    assert claim(db, keys(1, 2, 3, 4)) == set()
    assert claim(db, []) == set()
    # the same seq of another boot or another gateway is another message
    assert claim(db, keys(1, boot=OTHER_BOOT) + keys(1, gw="tower-a/gw-2")) == set(
        keys(1, boot=OTHER_BOOT) + keys(1, gw="tower-a/gw-2")
    )


def test_a_rolled_back_claim_is_released(db: Database) -> None:
    def claim_then_fail() -> None:
        with db.transaction() as session:
            assert claim_messages(session, keys(1, 2), now_ms=T0) == set(keys(1, 2))
            raise RuntimeError("the batch could not be stored")

    with pytest.raises(RuntimeError):
        claim_then_fail()
    assert claim(db, keys(1, 2)) == set(keys(1, 2))


def test_large_batches(db: Database) -> None:
    assert claim(db, keys(*range(1, 5001))) == set(keys(*range(1, 5001)))
    assert claim(db, keys(*range(4990, 5011))) == set(keys(*range(5001, 5011)))


def test_prune_forgets_old_keys(db: Database) -> None:
    claim(db, keys(1, 2), now_ms=T0)
    claim(db, keys(3), now_ms=T0 + 1000)
    with db.transaction() as session:
        assert prune_seen(session, older_than_ms=T0 + 1) == 2
    assert claim(db, keys(1, 2, 3)) == set(keys(1, 2))


def run_threads(workers: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def wrap(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        return run

    threads = [threading.Thread(target=wrap(w)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


@pytest.mark.integration
@pytest.mark.parametrize("size", [6, 200])  # a statement per row, and one unnest statement
def test_a_second_claim_waits_for_the_first_and_skips_what_it_took(
        pg: Database, size: int) -> None:
    """PostgreSQL, two sessions, overlapping batches: the second waits for the first's
    uncommitted keys, then skips them. (SQLite serialises whole write transactions.)"""
    db = pg
    first = db.session()
    try:
        taken = set(keys(*range(1, size + 1)))
        assert claim_messages(first, taken, now_ms=T0) == taken
        result: list[set[MessageKey]] = []
        second = threading.Thread(
            target=lambda: result.append(claim(db, keys(*range(size // 2, 2 * size + 1)))))
        second.start()
        second.join(timeout=0.5)
        assert second.is_alive(), "the second claim should wait for the first transaction"
        first.commit()
        second.join(timeout=30)
        assert result == [set(keys(*range(size + 1, 2 * size + 1)))]
    finally:
        first.close()


def test_racing_workers_accept_each_message_once(db: Database) -> None:
    """Several workers claim overlapping, shuffled batches at once: the union is accepted
    exactly once and nothing deadlocks."""
    rng = random.Random(4)
    universe = keys(*range(1, 401)) + keys(*range(1, 101), boot=OTHER_BOOT)
    batches = [rng.sample(universe, 250) for _ in range(6)]
    accepted: list[set[MessageKey]] = [set() for _ in batches]
    barrier = threading.Barrier(len(batches))

    def worker(index: int) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            for start in range(0, len(batches[index]), 50):
                chunk = batches[index][start : start + 50]
                accepted[index] |= claim(db, chunk)

        return run

    run_threads([worker(i) for i in range(len(batches))])
    everything = set().union(*batches)
    assert set().union(*accepted) == everything
    assert sum(len(a) for a in accepted) == len(everything)  # disjoint: nobody twice


@pytest.mark.parametrize(
    ("batches", "expected_gaps", "counters"),
    [
        # batches of seqs → gaps opened → (high_water, messages, gaps, missing, late)
        ([[1, 2, 3], [4]], [], (4, 4, 0, 0, 0)),
        ([[1, 2, 5]], [(2, 5)], (5, 3, 1, 2, 0)),
        ([[1, 4], [2, 3]], [(1, 4)], (4, 4, 1, 0, 2)),  # reordered: filled in later
        ([[3]], [(0, 3)], (3, 1, 1, 2, 0)),  # the first messages of the boot never came
        ([[1], [10], [20, 21]], [(1, 10), (10, 20)], (21, 4, 2, 17, 0)),
        ([[2, 1]], [], (2, 2, 0, 0, 0)),  # one batch is sorted first
    ],
)
def test_gap_counting(
    db: Database,
    batches: list[list[int]],
    expected_gaps: list[tuple[int, int]],
    counters: tuple[int, int, int, int, int],
) -> None:
    gaps: list[SeqGap] = []
    for offset, batch in enumerate(batches):
        with db.transaction() as session:
            gaps += record_seq_gaps(session, keys(*batch), now_ms=T0 + offset)
    assert [(g.after_seq, g.next_seq) for g in gaps] == expected_gaps
    with db.transaction() as session:
        [stream] = seq_streams(session, GW)
        got = (stream.high_water, stream.messages, stream.gaps, stream.missing, stream.late)
        assert got == counters
        assert (stream.first_ms, stream.last_ms) == (T0, T0 + len(batches) - 1)


def test_streams_are_per_boot_and_prunable(db: Database) -> None:
    with db.transaction() as session:
        record_seq_gaps(session, keys(1, 2), now_ms=T0)
        [gap] = record_seq_gaps(
            session, keys(1, boot=OTHER_BOOT) + keys(5, boot=OTHER_BOOT), now_ms=T0 + 10
        )
        assert (gap.boot_id, gap.missing) == (OTHER_BOOT, 3)
    with db.transaction() as session:
        assert {s.boot_id: s.missing for s in seq_streams(session)} == {BOOT: 0, OTHER_BOOT: 3}
        assert prune_seq_streams(session, idle_before_ms=T0 + 5) == 1
        assert [s.boot_id for s in seq_streams(session)] == [OTHER_BOOT]


def test_concurrent_gap_counting_loses_no_counts(db: Database) -> None:
    """Workers share one gateway's messages out of order: counts stay exact."""
    seqs = list(range(1, 201))
    random.Random(7).shuffle(seqs)
    shares = [seqs[i::4] for i in range(4)]

    def worker(share: list[int]) -> Callable[[], None]:
        def run() -> None:
            for start in range(0, len(share), 10):
                batch = keys(*share[start : start + 10])
                with db.transaction() as session:
                    accepted = claim_messages(session, batch, now_ms=T0)
                    record_seq_gaps(session, accepted, now_ms=T0)

        return run

    run_threads([worker(s) for s in shares])
    with db.transaction() as session:
        [stream] = seq_streams(session, GW)
        assert (stream.high_water, stream.messages, stream.missing) == (200, 200, 0)
        # every skipped seq was filled by a late arrival; each gap skipped at least one
        assert stream.late >= stream.gaps
