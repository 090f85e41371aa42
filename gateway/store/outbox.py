"""The transactional outbox: events written with their state change, read by the hub link.

``seq`` comes from a counter row updated in the same transaction as the event, so it is
contiguous from 1 for the life of the database, across restarts: a rolled-back change
takes its numbers with it. Rows leave only when the hub acknowledged them. Implements
:class:`cloud_sync.ports.Outbox`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from cloud_sync.ports import OutboxRecord
from gateway.store.db import Store


class Outbox:
    """Append events inside a store transaction; peek and ack for the hub link."""

    def __init__(self, store: Store, gateway_id: str) -> None:
        self._store = store
        self._gateway_id = gateway_id
        self._committed_seq = 0
        self._next_seq = 1
        self._in_txn = False
        self._pending: list[tuple[int, str, bytes]] = []
        self._new = asyncio.Event()
        self._bytes = 0  # the bodies waiting for the hub, in bytes
        self._pending_bytes = 0  # of the transaction in progress
        self._flushed_bytes = 0  # written, the commit still to come

    def load(self) -> None:
        """Read the last allocated seq after the store opened."""
        row = self._store.one("SELECT value FROM counters WHERE name = 'seq'")
        self._committed_seq = 0 if row is None else int(row[0])
        self._next_seq = self._committed_seq + 1
        size = self._store.one("SELECT coalesce(sum(length(body)), 0) FROM outbox")
        self._bytes = int(size[0]) if size is not None else 0

    @property
    def size_bytes(self) -> int:
        """What the events waiting for the hub take in the store (their JSON bodies)."""
        return self._bytes

    @property
    def last_seq(self) -> int:
        return self._committed_seq

    def append(self, type_: str, data: dict[str, Any], ts: str, order_id: str | None = None) -> int:
        """Write one event in the current transaction; returns its seq."""
        # seq is counted in memory; the rows and the counter are written once per
        # transaction, just before it commits: the same atomicity, two statements in all.
        if not self._in_txn:
            self._in_txn = True
            self._store.before_commit(self._flush)
            self._store.on_commit(self._committed)
            self._store.on_rollback(self._rolled_back)
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
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        self._pending.append((seq, type_, body))
        self._pending_bytes += len(body)
        return seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def rewind(self, next_seq: int) -> None:
        """Forget the events appended since ``next_seq`` (a rollback to a savepoint)."""
        self._next_seq = next_seq
        self._pending = [p for p in self._pending if p[0] < next_seq]
        self._pending_bytes = sum(len(p[2]) for p in self._pending)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._flushed_bytes, self._pending_bytes = self._pending_bytes, 0
        self._store.conn.executemany(
            "INSERT INTO outbox (seq, type, body) VALUES (?, ?, ?)", pending
        )
        self._store.conn.execute(
            "INSERT INTO counters (name, value) VALUES ('seq', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (self._next_seq - 1,),
        )

    def _committed(self) -> None:
        self._in_txn = False
        self._committed_seq = self._next_seq - 1
        self._bytes += self._flushed_bytes
        self._flushed_bytes = 0
        self._new.set()

    def _rolled_back(self) -> None:
        self._in_txn = False
        self._pending = []
        self._pending_bytes = self._flushed_bytes = 0
        self._next_seq = self._committed_seq + 1

    def peek(self, after_seq: int, limit: int) -> list[OutboxRecord]:
        rows = self._store.conn.execute(
            "SELECT seq, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [OutboxRecord(int(r[0]), bytes(r[1])) for r in rows]

    def ack(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        gone = 0
        with self._store.transaction() as conn:
            for chunk in range(0, len(seqs), 500):
                part = seqs[chunk : chunk + 500]
                rows = conn.execute(
                    f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(part))}) "
                    "RETURNING length(body)",
                    part,
                ).fetchall()
                gone += sum(int(r[0]) for r in rows)
        self._bytes = max(0, self._bytes - gone)

    def pending_count(self) -> int:
        row = self._store.one("SELECT count(*) FROM outbox")
        return 0 if row is None else int(row[0])

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
