"""The SQLite store: migrations, pragmas, integrity check, counters."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.config.load import load_line_config
from gateway.orderbook.context import LineContext
from gateway.store.db import Store, StoreError
from gateway.store.migrations import MIGRATIONS
from gateway.store.outbox import Outbox
from tests.gateway.conftest import REFERENCE_LINE


def test_migrations_run_once_and_pragmas_hold(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.open()
    versions = [r[0] for r in store.all("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in MIGRATIONS]
    assert store.one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
    assert store.one("PRAGMA synchronous")[0] == 2  # type: ignore[index]  # 2 = FULL
    store.close()
    store.open()
    assert len(store.all("SELECT version FROM schema_migrations")) == len(MIGRATIONS)
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.open()
    store.conn.execute("INSERT INTO schema_migrations (version) VALUES (999)")
    store.close()
    with pytest.raises(StoreError, match="newer than this linegate"):
        Store(tmp_path / "a.db").open()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(StoreError, match="refusing to start"):
        Store(path).open()


def test_a_damaged_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = Store(path)
    store.open()
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO rejections (ts, topic, errors, raw) VALUES ('t', 'x', '[]', ?)",
            [(b"x" * 500,) for _ in range(400)],
        )
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    # Scribble over the b-tree header of a page in the middle of the file.
    start = page * (len(data) // page // 2)
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="refusing to start"):
        Store(path).open()


def test_a_rolled_back_transaction_leaves_no_trace(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.open()
    with pytest.raises(RuntimeError), store.transaction():
        store.next_counter("seq")
        raise RuntimeError("boom")
    with store.transaction():
        assert store.next_counter("seq") == 1
        assert store.next_counter("seq", 5) == 2
        assert store.next_counter("seq") == 7
    store.close()


def test_a_savepoint_takes_back_the_database_and_every_cache_with_it(tmp_path: Path) -> None:
    """A failed part of a transaction leaves no event, row, ledger change or commit callback
    behind, and the rest of the transaction commits."""
    core = _line(tmp_path)
    store = core.store
    told: list[str] = []
    with store.transaction():
        core.emit("kept.first", {})
        core.store.on_commit(lambda: told.append("kept"))
        with pytest.raises(RuntimeError), store.savepoint():
            core.emit("gone", {})
            core.store.on_commit(lambda: told.append("gone"))
            assert core.ledger.allocate("INK", 4.0, date(2026, 1, 1)) == [("L1", 4.0)]
            core.ledger.adjust("INK", "L2", 5.0)  # a lot the ledger did not know
            core.bulk.add("reservations", [("SO", "S1", "op", "INK", "L1", 4.0)])
            raise RuntimeError("this part fails")
        assert core.ledger.available("INK", date(2026, 1, 1)) == 10.0
        assert core.ledger.lot("INK", "L2") is None
        core.emit("kept.second", {})
        core.bulk.add("reservations", [("SO", "S2", "op", "INK", "L1", 1.0)])
    bodies = [json.loads(r.payload) for r in core.outbox.peek(0, 10)]
    assert [(b["seq"], b["type"]) for b in bodies] == [(1, "kept.first"), (2, "kept.second")]
    assert told == ["kept"]
    assert [tuple(r) for r in store.all("SELECT serial, qty FROM reservations")] == [("S2", 1.0)]
    assert core.outbox.last_seq == 2


def test_a_failed_commit_takes_back_the_caches(tmp_path: Path) -> None:
    """The whole transaction fails (here: a writer's flush raises): the outbox gives its
    seq back and the ledger its change."""
    core = _line(tmp_path)
    store = core.store
    # A reservation row that breaks the table's NOT NULL only when flushed at the commit.
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        core.emit("lost", {})
        core.ledger.adjust("INK", "L1", -3.0)
        core.bulk.add("reservations", [("SO", "S1", "op", "INK", None, 3.0)])
    assert core.ledger.available("INK", date(2026, 1, 1)) == 10.0
    with store.transaction():
        assert core.emit("next", {}) == 1
    assert store.all("SELECT count(*) FROM reservations")[0][0] == 0


def _line(tmp_path: Path) -> LineContext:
    """A line's context on a new store, with 10 of material INK in lot L1."""
    store = Store(tmp_path / "a.db")
    store.open()
    core = LineContext(load_line_config(REFERENCE_LINE), store, Outbox(store, "s/l"), _FixedClock())
    core.outbox.load()
    with store.transaction() as conn:
        conn.execute("INSERT INTO stock (material, lot, qty) VALUES ('INK', 'L1', 10)")
    core.reload_ledger()
    return core


class _FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, 8, tzinfo=UTC)
