"""SD-card wear (issue 14): what the store writes, and that every commit stays as durable.

A new database is made with 1 KiB pages (an existing one keeps its own); the WAL is
checkpointed by size and cut back to its limit after a long read held it; an event the hub
acknowledged leaves the outbox with the next transaction instead of a commit of its own;
the watchdog's health check writes only when nothing else committed, and then for real
only once in five minutes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.app.root import Gateway
from gateway.clock import iso
from gateway.config.load import load_line_config
from gateway.store.db import Store
from gateway.store.outbox import RETIRE_BATCH, Outbox
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE

TS = iso(datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
MIB = 1024 * 1024
# A large row to fill the WAL with (a rejected message's raw payload).
REJECTION = "INSERT INTO rejections (ts, topic, errors, raw) VALUES (?, 't', '[]', ?)"


def _pragma(store: Store, name: str) -> object:
    row = store.one(f"PRAGMA {name}")
    assert row is not None
    return row[0]


def _rows_on_disk(path: Path) -> list[int]:
    """The outbox's seqs as another connection reads the file (what a restart finds)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [int(r[0]) for r in conn.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        conn.close()


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[Store, Outbox]]:
    store = Store(tmp_path / "a.db")
    store.open()
    outbox = Outbox(store, "hz01/line3")
    outbox.load()
    yield store, outbox
    store.close()


def _events(store: Store, outbox: Outbox, n: int) -> None:
    with store.transaction():
        for i in range(n):
            outbox.append("alarm.raised", {"i": i}, TS)


# -- the file -------------------------------------------------------------------------------


def test_a_new_database_has_1_kib_pages_and_every_commit_stays_full_and_wal(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "a.db")
    store.open()
    try:
        assert _pragma(store, "page_size") == 1024
        assert _pragma(store, "auto_vacuum") == 2  # INCREMENTAL: retention hands pages back
        assert _pragma(store, "journal_mode") == "wal"
        assert _pragma(store, "synchronous") == 2  # FULL
        # A checkpoint per 4 MiB of WAL (4096 pages of 1 KiB), the WAL cut back to 8 MiB.
        assert _pragma(store, "wal_autocheckpoint") == 4096
        assert _pragma(store, "journal_size_limit") == 8 * MIB
    finally:
        store.close()
    # The header says so too (bytes 16-17, big-endian), for any reader of the file.
    assert int.from_bytes((tmp_path / "a.db").read_bytes()[16:18], "big") == 1024


def test_an_existing_database_keeps_its_page_size_and_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)  # as linegate made them before: 4 KiB pages, WAL
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE kept (x TEXT)")
    old.execute("INSERT INTO kept VALUES ('still here')")
    old.commit()
    old.close()
    store = Store(path)
    store.open()
    try:
        assert _pragma(store, "page_size") == 4096
        assert _pragma(store, "auto_vacuum") == 0  # as it was made
        # The checkpoint still by bytes: 4 MiB is 1024 pages of 4 KiB.
        assert _pragma(store, "wal_autocheckpoint") == 1024
        assert _pragma(store, "synchronous") == 2
        assert store.texts("SELECT x FROM kept") == ["still here"]
    finally:
        store.close()


def test_the_wal_is_cut_back_to_its_limit_after_a_long_read_held_it(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    wal = tmp_path / "a.db-wal"
    store = Store(path)
    store.open()
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        # A reader's snapshot (a solve reading the line) holds every checkpoint back: the
        # WAL grows past its limit while a burst commits.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM outbox").fetchone()
        blob = b"x" * 60_000
        for _ in range(200):  # about 12 MiB
            with store.transaction() as conn:
                conn.execute(REJECTION, (TS, blob))
        grown = wal.stat().st_size
        assert grown > 8 * MIB
        reader.execute("COMMIT")
        # The reader gone, the next commits checkpoint and start the WAL over: cut back.
        for n in range(3):  # (a row written as it was changes no page: each one differs)
            with store.transaction():
                store.set_setting("k", str(n))
        assert wal.stat().st_size <= 8 * MIB
        assert store.count("SELECT count(*) FROM rejections") == 200
    finally:
        reader.close()
        store.close()


def test_without_a_reader_the_wal_stays_near_its_checkpoint_size(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.open()
    try:
        blob = b"y" * 30_000
        for _ in range(600):  # about 18 MiB through the WAL
            with store.transaction() as conn:
                conn.execute(REJECTION, (TS, blob))
        # A checkpoint once 4096 frames are in (a frame: a 1 KiB page and its 24-byte
        # header), then the WAL starts over: never more than that and one transaction's
        # frames (a row of 30 kB: 30 overflow pages and a few more), nor much less (SQLite's
        # own default, 1000 frames, would checkpoint four times as often).
        size = (tmp_path / "a.db-wal").stat().st_size
        assert 3 * MIB < size <= 32 + (4096 + 64) * (1024 + 24)
    finally:
        store.close()


# -- the outbox's acknowledged events ------------------------------------------------------


def test_an_acknowledged_event_leaves_with_the_next_transaction_not_a_commit_of_its_own(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, 3)
    commits = store.commits
    outbox.ack([1, 2])
    assert store.commits == commits  # no commit for the acknowledgement
    # Not offered again, not counted as waiting, though still in the file for now.
    assert [r.seq for r in outbox.peek(0, 10)] == [3]
    assert outbox.pending_count() == 1
    assert _rows_on_disk(store.path) == [1, 2, 3]
    _events(store, outbox, 1)  # an operator's next action
    assert store.commits == commits + 1
    assert _rows_on_disk(store.path) == [3, 4]
    assert [r.seq for r in outbox.peek(0, 10)] == [3, 4]
    assert outbox.pending_count() == 2


def test_peek_skips_acknowledged_events_and_still_fills_its_limit(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, 10)
    outbox.ack([1, 2, 3, 5, 6])
    assert [r.seq for r in outbox.peek(0, 3)] == [4, 7, 8]
    assert [r.seq for r in outbox.peek(4, 2)] == [7, 8]
    assert [r.seq for r in outbox.peek(8, 10)] == [9, 10]
    outbox.ack([4, 7, 8, 9, 10])
    assert outbox.peek(0, 10) == []
    assert outbox.pending_count() == 0


def test_the_size_waiting_drops_at_the_acknowledgement_and_a_repeat_counts_once(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, 4)
    sizes = dict(store.conn.execute("SELECT seq, length(body) FROM outbox").fetchall())
    total = sum(sizes.values())
    assert outbox.size_bytes == total
    outbox.ack([1, 2])
    assert outbox.size_bytes == total - sizes[1] - sizes[2]
    outbox.ack([2, 1])  # the hub's acknowledgement again (a redelivery)
    assert outbox.size_bytes == total - sizes[1] - sizes[2]
    _events(store, outbox, 0)  # an empty transaction: still removes them
    outbox.ack([1])  # gone already: nothing to count
    assert outbox.size_bytes == total - sizes[1] - sizes[2]
    assert _rows_on_disk(store.path) == [3, 4]
    outbox.load()  # counted again from the file, as after a restart
    assert outbox.size_bytes == sizes[3] + sizes[4]


def test_a_transaction_that_rolls_back_leaves_the_acknowledged_events_to_the_next(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, 3)
    outbox.ack([1, 2])
    with pytest.raises(RuntimeError), store.transaction():
        outbox.append("alarm.raised", {"lost": True}, TS)
        raise RuntimeError("refused")
    assert _rows_on_disk(store.path) == [1, 2, 3]
    assert [r.seq for r in outbox.peek(0, 10)] == [3]
    _events(store, outbox, 1)
    assert _rows_on_disk(store.path) == [3, 4]


def test_a_savepoint_that_rolls_back_a_flush_keeps_the_removal_for_the_commit(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, 3)
    outbox.ack([1, 2])
    with store.transaction():
        with pytest.raises(RuntimeError), store.savepoint():
            store.flush()  # the removal written inside the savepoint...
            assert store.count("SELECT count(*) FROM outbox") == 1
            raise RuntimeError("one message of a batch refused")
        # ... rolled back with it: the rows are back, and still acknowledged.
        assert store.count("SELECT count(*) FROM outbox") == 3
        assert [r.seq for r in outbox.peek(0, 10)] == [3]
    assert _rows_on_disk(store.path) == [3]


def test_a_crash_before_the_removal_offers_them_again(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = Store(path)
    store.open()
    outbox = Outbox(store, "hz01/line3")
    outbox.load()
    _events(store, outbox, 3)
    outbox.ack([1, 2, 3])
    # Killed before any other transaction: another process opens the file (the restart).
    again = Store(path)
    again.open()
    try:
        restarted = Outbox(again, "hz01/line3")
        restarted.load()
        assert [r.seq for r in restarted.peek(0, 10)] == [1, 2, 3]  # at-least-once
        assert restarted.last_seq == 3
    finally:
        again.close()
        store.close()


def test_a_clean_close_removes_them(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = Store(path)
    store.open()
    outbox = Outbox(store, "hz01/line3")
    outbox.load()
    _events(store, outbox, 3)
    outbox.ack([1, 2, 3])
    store.close()
    assert _rows_on_disk(path) == []
    store.open()
    restarted = Outbox(store, "hz01/line3")
    restarted.load()
    assert restarted.last_seq == 3  # the seq goes on from where it was
    store.close()


async def test_on_a_quiet_line_they_leave_after_a_while_in_one_commit(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, 3)
    retiring = asyncio.create_task(outbox.retire_forever(idle_s=0.05))
    try:
        commits = store.commits
        outbox.ack([1])
        outbox.ack([2, 3])
        await asyncio.sleep(0.01)
        assert _rows_on_disk(store.path) == [1, 2, 3]  # not at once
        await asyncio.sleep(0.2)
        assert _rows_on_disk(store.path) == []
        assert store.commits == commits + 1
        await asyncio.sleep(0.2)
        assert store.commits == commits + 1  # nothing more to do, nothing written
    finally:
        retiring.cancel()


def test_a_backlog_acknowledged_while_nothing_commits_is_removed_in_batches(
    opened: tuple[Store, Outbox],
) -> None:
    store, outbox = opened
    _events(store, outbox, RETIRE_BATCH + 10)
    commits = store.commits
    outbox.ack(list(range(1, RETIRE_BATCH)))  # one short of a batch: kept for later
    assert store.commits == commits
    outbox.ack([RETIRE_BATCH])
    assert store.commits == commits + 1
    assert _rows_on_disk(store.path) == list(range(RETIRE_BATCH + 1, RETIRE_BATCH + 11))


# -- the watchdog's health check ------------------------------------------------------------


@pytest.fixture
def idle_gateway(tmp_path: Path) -> Iterator[tuple[Gateway, ManualClock]]:
    clock = ManualClock(LINE_MORNING)
    gw = Gateway(load_line_config(REFERENCE_LINE), data_dir=tmp_path, clock=clock)
    gw.open()
    yield gw, clock
    gw.store.close()


def _wal_size(gw: Gateway) -> int:
    return gw.store.path.with_name(gw.store.path.name + "-wal").stat().st_size


def test_a_busy_line_gets_no_commit_from_the_health_check(
    idle_gateway: tuple[Gateway, ManualClock],
) -> None:
    gw, _ = idle_gateway
    store = gw.store
    assert gw.health_problem() is None  # the first check: the store has just opened
    assert store.get_setting("health_at") is None
    for n in range(3):
        with store.transaction():  # an operator's action, say
            store.set_setting("k", str(n))
        commits = store.commits
        assert gw.health_problem() is None
        assert store.commits == commits  # no transaction of its own
    assert store.get_setting("health_at") is None


def test_an_idle_line_writes_for_real_once_in_five_minutes_and_proves_the_lock_every_time(
    idle_gateway: tuple[Gateway, ManualClock],
) -> None:
    gw, clock = idle_gateway
    store = gw.store
    gw.health_problem()
    commits, wal = store.commits, _wal_size(gw)
    assert gw.health_problem() is None  # nothing committed since: its own write
    assert store.commits == commits + 1
    assert _wal_size(gw) > wal  # a frame appended (and fsynced)
    first = store.get_setting("health_at")
    assert first == "2026-11-26T02:00:00.000+00:00"  # 10:00 in Shanghai, to the 5 minutes
    wal = _wal_size(gw)
    for _ in range(19):  # every 15 s for 4 3/4 minutes
        clock.advance(15)
        assert gw.health_problem() is None
    # Each check took the write lock and committed, yet wrote nothing: the row as it was.
    assert store.commits == commits + 20
    assert _wal_size(gw) == wal
    clock.advance(15)  # 10:05
    assert gw.health_problem() is None
    assert _wal_size(gw) > wal
    assert store.get_setting("health_at") == "2026-11-26T02:05:00.000+00:00"


def test_the_health_check_still_fails_when_the_store_cannot_commit(
    idle_gateway: tuple[Gateway, ManualClock],
) -> None:
    gw, _ = idle_gateway
    gw.health_problem()
    assert gw.health_problem() is None
    other = sqlite3.connect(gw.store.path, isolation_level=None, timeout=0)
    gw.store.conn.execute("PRAGMA busy_timeout=0")  # no 5 s wait in a test
    try:
        other.execute("BEGIN EXCLUSIVE")  # a stuck writer in another process
        # The row needs no change in these five minutes, but the lock is still asked for.
        problem = gw.health_problem()
        assert problem is not None and "database is locked" in problem
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert gw.health_problem() is None
