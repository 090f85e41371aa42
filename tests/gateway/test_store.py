"""The SQLite store: migrations, pragmas, integrity check, counters."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store.db import Store, StoreError
from gateway.store.migrations import MIGRATIONS


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
