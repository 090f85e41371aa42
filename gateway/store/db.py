"""The SQLite store: one file, WAL, FULL sync, numbered migrations, integrity checked.

Every write happens inside :meth:`Store.transaction` on the event loop thread, so a state
change and the events that report it commit together or not at all. ``synchronous=FULL``
makes a commit durable before the operator is told "done" (and before an inbound message
is acknowledged to the broker).

What a commit costs the SD card (issue 14): every page it changed is appended whole to the
WAL, which is then fsynced, and the kernel writes whole 4 KiB blocks; later a checkpoint
copies the pages to the main file. An operator's action changes a few small rows in up to
a dozen tables and indexes, so the card's wear is set by the page size and by how often
the same page is copied back, not by the rows' bytes (see :func:`_wear_settings`).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from gateway.store.migrations import MIGRATIONS

logger = logging.getLogger(__name__)

# The page size a new database is made with. A commit's WAL frames are its changed pages:
# an action's dozen 1 KiB frames fill about 3 of the kernel's 4 KiB blocks, where 4 KiB
# pages fill 13. A WAL database keeps the page size it was made with: an existing one
# stays as it is (VACUUM would change it, and rewrite the whole file).
NEW_PAGE_SIZE = 1024
# A checkpoint once the WAL holds this much (SQLite's default is 1000 pages, 1 MiB of
# 1 KiB pages): a page changed many times in between is copied to the main file once.
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
# A WAL that a long read held past that (a solver reading its snapshot) is cut back to
# this when it starts over, rather than staying that large on the card for good.
WAL_SIZE_LIMIT_BYTES = 8 * 1024 * 1024


def _wear_settings(conn: sqlite3.Connection) -> None:
    """Checkpoint and WAL size by bytes (the pragmas count pages: a database keeps the
    page size it was made with). Per connection, not stored in the file."""
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_WAL_BYTES // page}")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")


class StoreError(Exception):
    """The database cannot be used: damaged, or from a newer linegate."""


# How an in-memory change registers its undo (:meth:`Store.undo`).
Undo = Callable[[Callable[[], None]], None]


def no_undo(_: Callable[[], None]) -> None:
    """For caches outside any store transaction (a planning worker's read-only snapshot):
    nothing to take back."""


C = TypeVar("C")  # a change an UndoLog keeps


class UndoLog(Generic[C]):
    """A cache's changes in the current transaction, taken back newest first by ``revert``
    when the transaction or a savepoint around them rolls back. One undo is registered with
    the store per epoch (:attr:`Store.epoch`), not one per change: intake makes a few
    hundred thousand changes a minute. Outside a transaction nothing is recorded."""

    def __init__(self, store: Store | None, revert: Callable[[C], None]) -> None:
        self._store = store
        self._revert = revert
        self._items: list[C] = []
        self._at: tuple[int, int] = (-1, -1)  # (transaction, epoch) of the last undo

    def add(self, item: C) -> None:
        store = self._store
        if store is None or not store.in_transaction:
            return
        txn, epoch = store.transaction_id, store.epoch
        if (txn, epoch) != self._at:
            if txn != self._at[0]:
                self._items.clear()  # the previous transaction is over, either way
            self._at = (txn, epoch)
            store.undo(functools.partial(self._undo_to, len(self._items)))
        self._items.append(item)

    def _undo_to(self, size: int) -> None:
        while len(self._items) > size:
            self._revert(self._items.pop())


class FromRow(Protocol):
    """A row class of gateway.store.rows."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Self: ...


R = TypeVar("R", bound=FromRow)


class Writer(Protocol):
    """Rows held in memory during a transaction and written just before its commit."""

    def flush(self) -> None:
        """Write what is held into the current transaction (it may be called again)."""

    def committed(self) -> None:
        """The transaction that holds what was flushed has committed."""


class Store:
    """The gateway's SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._depth = 0
        self._savepoints = 0
        # Read by the caches on the hot path of intake, so plain attributes (read-only for
        # everyone but the store) rather than properties:
        # - in_transaction: a transaction is open;
        # - transaction_id: changes with every transaction begun (per-transaction caches);
        # - epoch: changes whenever a transaction or a savepoint begins and when a savepoint
        #   rolls back. A cache that registered its undo in this epoch is covered for every
        #   change it makes until the epoch changes (one undo per stretch, not per change).
        self.in_transaction = False
        self.transaction_id = 0
        self.epoch = 0
        # Transactions committed since the store opened: a write went through (the
        # watchdog's health check needs no write of its own while this moves).
        self.commits = 0
        self._writable = False
        self._before_close: list[Callable[[], None]] = []
        self._writers: list[Writer] = []
        self._undo: list[Callable[[], None]] = []
        self._after_commit: list[Callable[[], None]] = []

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is not open")
        return self._conn

    def open(self) -> None:
        """Open the file, refuse a damaged one, and migrate it to the current schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            self._check_integrity(conn)
            if new:  # before anything is written: both are set for good then
                conn.execute(f"PRAGMA page_size={NEW_PAGE_SIZE}")
                # Pages freed by retention (gateway/numbers/retention.py) go back to the
                # file system a few at a time, never by a VACUUM rewriting the whole file.
                # Its pointer map costs about 5 % more bytes written per order.
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            _wear_settings(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._writable = True
        self._migrate()

    def open_readonly(self) -> None:
        """Open an existing database for reading only (the CLI, beside a running gateway)."""
        if not self.path.exists():
            raise StoreError(f"no database at {self.path}")
        # as_uri() escapes the path: a '?', '#' or '%' in it would otherwise be read as the
        # URI's query, fragment or an escape (dropping mode=ro, or opening another file).
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        self._conn = conn

    def close(self) -> None:
        """Close the file, after the callbacks of :meth:`before_close` (a store opened for
        writing, outside any transaction)."""
        if self._conn is None:
            return
        if self._writable and not self._depth:
            for callback in self._before_close:
                try:
                    callback()
                except sqlite3.Error as exc:  # a full disk: the next start sees to it
                    logger.warning("closing the store: %s", exc)
        self._conn.close()
        self._conn = None
        self._writable = False

    def before_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the store closes, while it can still write (work a
        component defers to a later transaction, done now rather than at the next start).
        Registered once, by the component."""
        self._before_close.append(callback)

    def _check_integrity(self, conn: sqlite3.Connection) -> None:
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({exc}); refusing to start. "
                "Restore it from a backup or move it aside to start empty."
            ) from exc
        problems = [str(r[0]) for r in rows if r[0] != "ok"]
        if problems:
            raise StoreError(
                f"{self.path} failed its integrity check ({'; '.join(problems[:5])}); "
                "refusing to start. Restore it from a backup or move it aside to start empty."
            )

    def _migrate(self) -> None:
        conn = self.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        known = {v for v, _ in MIGRATIONS}
        newer = applied - known
        if newer:
            raise StoreError(
                f"{self.path} has schema version {max(newer)}, newer than this linegate "
                f"knows ({max(known)}); upgrade linegate or use another data directory"
            )
        for version, sql in MIGRATIONS:
            if version in applied:
                continue
            logger.info("applying schema migration %d", version)
            # executescript commits first; wrap the script in its own transaction so a
            # failed migration leaves the file at the previous version.
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO schema_migrations (version) VALUES ({version});\nCOMMIT;"
            )

    # -- transactions ----------------------------------------------------------------------

    def add_writer(self, writer: Writer) -> None:
        """A component that holds rows in memory during a transaction (the outbox, bulk
        inserts): ``flush`` writes them just before each commit (and on :meth:`flush`),
        ``committed`` follows the commit. Registered once, by the composition root or the
        component itself."""
        self._writers.append(writer)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work; nested calls join the outer one.

        On any failure (the work raised, a writer's flush failed, the commit failed) the
        database rolls back and so does every in-memory change recorded with :meth:`undo`,
        newest first; the callbacks of :meth:`on_commit` are dropped.
        """
        conn = self.conn
        if self._depth:
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        self.in_transaction = True
        self.transaction_id += 1
        self.epoch += 1
        try:
            yield conn
            for writer in self._writers:
                writer.flush()
            conn.execute("COMMIT")
        except BaseException:
            self._depth = 0
            self.in_transaction = False
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._undo_to(0, 0)
            raise
        self._depth = 0
        self.in_transaction = False
        self.commits += 1
        self._undo.clear()
        callbacks, self._after_commit = self._after_commit, []
        for writer in self._writers:
            writer.committed()
        for cb in callbacks:
            cb()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the current transaction that can fail alone: when its body raises,
        the database returns to where it began, and so does every in-memory change
        recorded with :meth:`undo` since; the exception goes on to the caller."""
        if not self._depth:
            raise StoreError("a savepoint needs a transaction")
        conn = self.conn
        self._savepoints += 1
        self.epoch += 1
        name = f"sp{self._savepoints}"
        conn.execute(f"SAVEPOINT {name}")
        mark = (len(self._undo), len(self._after_commit))
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            self._undo_to(*mark)
            self.epoch += 1
            raise
        conn.execute(f"RELEASE {name}")

    def flush(self) -> None:
        """Write what the writers hold into the current transaction, so that SQL reads
        of this transaction see it."""
        for writer in self._writers:
            writer.flush()

    def undo(self, callback: Callable[[], None]) -> None:
        """Record how to take back an in-memory change made in the current transaction
        (a cache adjusted ahead of the commit): called, newest first, if the transaction
        (or the savepoint around the change) rolls back. Outside a transaction there is
        nothing to take back, and nothing is recorded."""
        if self._depth:
            self._undo.append(callback)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the current transaction commits (dropped if it, or the
        savepoint around this call, rolls back)."""
        self._after_commit.append(callback)

    def _undo_to(self, undo_mark: int, commit_mark: int) -> None:
        undone, self._undo[undo_mark:] = self._undo[undo_mark:], []
        del self._after_commit[commit_mark:]
        for cb in reversed(undone):
            cb()

    def next_counter(self, name: str, step: int = 1) -> int:
        """Allocate ``step`` numbers from a named counter; returns the first. In a transaction."""
        row = self.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value RETURNING value",
            (name, step),
        ).fetchone()
        return int(row[0]) - step + 1

    def get_setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- typed reads ---------------------------------------------------------------------

    def fetch_one(self, kind: type[R], sql: str, params: Sequence[object] = ()) -> R | None:
        """The first row of ``sql`` as a ``kind`` (a class of gateway.store.rows), or None."""
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else kind.from_row(row)

    def fetch_all(self, kind: type[R], sql: str, params: Sequence[object] = ()) -> list[R]:
        """Every row of ``sql`` as a ``kind``."""
        return [kind.from_row(r) for r in self.conn.execute(sql, params)]

    def insert(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run an ``INSERT … RETURNING <id>``; the id of the row written."""
        return int(self.conn.execute(sql, params).fetchone()[0])

    def count(self, sql: str, params: Sequence[object] = ()) -> int:
        """The integer in the first column of the first row (0 for none or NULL)."""
        row = self.conn.execute(sql, params).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def number(self, sql: str, params: Sequence[object] = ()) -> float:
        """The number in the first column of the first row (0.0 for none or NULL)."""
        row = self.conn.execute(sql, params).fetchone()
        return 0.0 if row is None or row[0] is None else float(row[0])

    def texts(self, sql: str, params: Sequence[object] = ()) -> list[str]:
        """The first column of every row, as text."""
        return [str(r[0]) for r in self.conn.execute(sql, params)]

    def exists(self, sql: str, params: Sequence[object] = ()) -> bool:
        return self.conn.execute(sql, params).fetchone() is not None

    # -- untyped reads, for the store's own bookkeeping and the tests ----------------------

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params).fetchall())
