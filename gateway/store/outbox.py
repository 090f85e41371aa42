"""The transactional outbox: events written with their state change, read by the hub link.

``seq`` comes from a counter row updated in the same transaction as the event, so it is
contiguous from 1 for the life of the database, across restarts: a rolled-back change
takes its numbers with it. Rows leave only when the hub acknowledged them, and not in a
commit of their own: the next transaction takes their removal along (usually an
operator's next action, whose new event goes to the same page), or, on a quiet line,
:meth:`Outbox.retire_forever` after a while. A commit is a WAL append and an fsync on the
SD card; one per acknowledgement was a third of all commits (issue 14). Until they are
removed they are neither offered again nor counted as waiting; a crash before then sends
them again (delivery is at-least-once, the hub drops a repeated seq). Implements
:class:`cloud_sync.ports.Outbox`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from cloud_sync import wire_json
from cloud_sync.ports import OutboxRecord
from gateway.store.db import Store

logger = logging.getLogger(__name__)

# Acknowledged events wait for another transaction this long at most (a quiet line)...
RETIRE_IDLE_S = 10.0
# ... and this many at most (a backlog draining while nothing else commits): they are
# skipped by every peek until then.
RETIRE_BATCH = 1000
_CHUNK = 500  # seqs per statement (SQLite's host parameters)


class Outbox:
    """Append events inside a store transaction; peek and ack for the hub link.

    Events of the transaction in progress wait in memory and are written with the seq
    counter just before the commit (a :class:`~gateway.store.db.Writer`: two statements
    per transaction, not two per event). An append is recorded with the store's undo, so a
    rollback of the transaction, or of a savepoint around the append, gives its seq back.
    The same flush removes the events the hub acknowledged since the last one.
    """

    def __init__(self, store: Store, gateway_id: str) -> None:
        self._store = store
        self._gateway_id = gateway_id
        self._committed_seq = 0
        self._next_seq = 1
        self._pending: list[tuple[int, str, bytes]] = []  # of the transaction in progress
        self._written = 0  # how many of them are in the database already
        self._new = asyncio.Event()
        self._bytes = 0  # the bodies waiting for the hub, in bytes
        # How many events wait for the hub, kept like _bytes: a count(*) over the table at
        # every health poll and metrics scrape cost ~6 ms of the loop at 15,000 waiting.
        self._waiting = 0
        self._epoch = -1  # the store's epoch of the last undo registered
        # Acknowledged by the hub, still in the table: the next transaction removes them.
        self._acked: set[int] = set()
        self._acked_new = asyncio.Event()
        # Told of each commit's events (seq, type, body) once they are durable: the live
        # screens (gateway/web/live.py). Called synchronously, so each must be cheap.
        self.listeners: list[Callable[[Sequence[tuple[int, str, bytes]]], None]] = []
        store.add_writer(self)
        store.before_close(self.retire)

    def load(self) -> None:
        """Read the last allocated seq after the store opened."""
        self._committed_seq = self._store.count("SELECT value FROM counters WHERE name = 'seq'")
        self._next_seq = self._committed_seq + 1
        total = self._store.count("SELECT sum(length(body)) FROM outbox")
        acked = self._sizes(sorted(self._acked))
        self._bytes = total - sum(size for _, size in acked)
        self._waiting = self._store.count("SELECT count(*) FROM outbox") - len(acked)

    @property
    def size_bytes(self) -> int:
        """What the events waiting for the hub take in the store (their JSON bodies)."""
        return self._bytes

    @property
    def last_seq(self) -> int:
        return self._committed_seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(self, type_: str, data: dict[str, Any], ts: str, order_id: str | None = None) -> int:
        """Write one event in the current transaction; returns its seq."""
        if not self._store.in_transaction:
            raise RuntimeError("an event is appended inside a store transaction")
        seq = self._next_seq
        self._next_seq += 1
        envelope: dict[str, Any] = {
            "v": 1,
            "gateway_id": self._gateway_id,
            "seq": seq,
            "event_id": f"{self._gateway_id}:{seq}",
            "ts": ts,
            "type": type_,
        }
        if order_id is not None:
            envelope["order_id"] = order_id
        envelope["data"] = data
        try:
            text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            body = text.encode()
            if "\\u0000" in text:
                raise ValueError("U+0000 in a text")
        except ValueError as exc:  # UnicodeEncodeError (a lone surrogate) is one
            # Whatever its source (a device's text, a bug), an event the hub cannot read
            # (NaN is no JSON; PostgreSQL's jsonb refuses U+0000) would block the stream
            # behind it: it goes out cleaned, and the log says what was wrong.
            logger.error("event %d (%s) carried what is no wire JSON: %s", seq, type_, exc)
            envelope["data"] = wire_json.cleaned(data)
            text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
            body = text.encode()
        store = self._store
        if store.epoch != self._epoch:
            # Covers every append until the next savepoint (see Store.epoch).
            self._epoch = store.epoch
            store.undo(functools.partial(self._take_back, len(self._pending)))
        self._pending.append((seq, type_, body))
        return seq

    def _take_back(self, keep: int) -> None:
        """Undo the appends after the first ``keep`` (their transaction or savepoint rolled
        back; the database forgets their rows by itself, if they were written)."""
        self._next_seq -= len(self._pending) - keep
        del self._pending[keep:]
        self._written = min(self._written, keep)

    def flush(self) -> None:
        if self._acked:
            self._retire_in_transaction()
        fresh = self._pending[self._written :]
        if not fresh:
            return
        # A flush inside a savepoint that then rolls back leaves the database without
        # these rows: those appended before the savepoint must be written again.
        self._store.undo(functools.partial(self._unwrite, self._written))
        self._store.conn.executemany("INSERT INTO outbox (seq, type, body) VALUES (?, ?, ?)", fresh)
        self._store.conn.execute(
            "INSERT INTO counters (name, value) VALUES ('seq', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (self._next_seq - 1,),
        )
        self._written = len(self._pending)

    def _unwrite(self, written: int) -> None:
        self._written = min(self._written, written)

    def _retire_in_transaction(self) -> None:
        """Remove the acknowledged events' rows in the current transaction."""
        gone = sorted(self._acked)
        self._acked.clear()
        # Rolled back (the transaction, or a savepoint around this flush): they wait again.
        self._store.undo(functools.partial(self._acked.update, gone))
        conn = self._store.conn
        for k in range(0, len(gone), _CHUNK):
            part = gone[k : k + _CHUNK]
            conn.execute(f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(part))})", part)

    def committed(self) -> None:
        if not self._pending:
            return
        self._bytes += sum(len(p[2]) for p in self._pending)
        self._waiting += len(self._pending)
        done, self._pending = self._pending, []
        self._written = 0
        self._committed_seq = self._next_seq - 1
        self._new.set()
        for listener in self.listeners:
            listener(done)

    def peek(self, after_seq: int, limit: int) -> list[OutboxRecord]:
        """Up to ``limit`` events after ``after_seq`` that the hub does not hold yet."""
        out: list[OutboxRecord] = []
        cursor = after_seq
        while len(out) < limit:
            want = limit - len(out)
            rows = self._store.conn.execute(
                "SELECT seq, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, want)
            ).fetchall()
            out.extend(
                OutboxRecord(int(r[0]), bytes(r[1])) for r in rows if int(r[0]) not in self._acked
            )
            if len(rows) < want:
                break  # nothing more in the table
            cursor = int(rows[-1][0])
        return out

    def ack(self, seqs: Sequence[int]) -> None:
        """The hub holds these events: they are no longer offered nor counted as waiting;
        their rows go with the next transaction (see the module's doc)."""
        fresh = [
            (seq, size) for seq, size in self._sizes(sorted(set(seqs))) if seq not in self._acked
        ]
        if not fresh:
            return
        self._acked.update(seq for seq, _ in fresh)
        self._bytes = max(0, self._bytes - sum(size for _, size in fresh))
        self._waiting = max(0, self._waiting - len(fresh))
        if len(self._acked) >= RETIRE_BATCH:
            self.retire()
        else:
            self._acked_new.set()

    def _sizes(self, seqs: Sequence[int]) -> list[tuple[int, int]]:
        """(seq, body length) of those of ``seqs`` that are still in the table."""
        out: list[tuple[int, int]] = []
        for k in range(0, len(seqs), _CHUNK):
            part = seqs[k : k + _CHUNK]
            rows = self._store.conn.execute(
                f"SELECT seq, length(body) FROM outbox WHERE seq IN ({','.join('?' * len(part))})",
                part,
            ).fetchall()
            out.extend((int(r[0]), int(r[1])) for r in rows)
        return out

    def retire(self) -> None:
        """Remove the acknowledged events' rows now, in a transaction of their own (or in
        the one in progress)."""
        if self._acked:
            with self._store.transaction():
                pass  # the flush before the commit removes them

    async def retire_forever(self, idle_s: float = RETIRE_IDLE_S) -> None:
        """Remove acknowledged events that no other transaction took along within
        ``idle_s`` (a quiet line). Until cancelled."""
        while True:
            await self._acked_new.wait()
            await asyncio.sleep(idle_s)
            self._acked_new.clear()
            try:
                self.retire()
            except sqlite3.Error as exc:  # a full disk: they stay, skipped, and go later
                logger.warning("cannot remove %d acknowledged events: %s", len(self._acked), exc)
                self._acked_new.set()

    def pending_count(self) -> int:
        """Events the hub does not hold yet."""
        return self._waiting

    async def wait_for_new(self, after_seq: int) -> None:
        while True:
            if self._committed_seq > after_seq:
                if self.peek(after_seq, 1):
                    return
                # Everything up to the last commit already left (acked before a restart):
                # wait for something newer, or a link starting from 0 would spin.
                after_seq = self._committed_seq
            self._new.clear()
            await self._new.wait()
