"""The transactional outbox: events written with their state change, read by the hub link.

``seq`` comes from a counter row updated in the same transaction as the event, so it is
contiguous from 1 for the life of the database, across restarts: a rolled-back change
takes its numbers with it. Rows leave only when the hub acknowledged them. Implements
:class:`cloud_sync.ports.Outbox`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from cloud_sync import wire_json
from cloud_sync.ports import OutboxRecord
from gateway.store.db import Store

logger = logging.getLogger(__name__)


class Outbox:
    """Append events inside a store transaction; peek and ack for the hub link.

    Events of the transaction in progress wait in memory and are written with the seq
    counter just before the commit (a :class:`~gateway.store.db.Writer`: two statements
    per transaction, not two per event). An append is recorded with the store's undo, so a
    rollback of the transaction, or of a savepoint around the append, gives its seq back.
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
        self._epoch = -1  # the store's epoch of the last undo registered
        # Told of each commit's events (seq, type, body) once they are durable: the live
        # screens (gateway/web/live.py). Called synchronously, so each must be cheap.
        self.listeners: list[Callable[[Sequence[tuple[int, str, bytes]]], None]] = []
        store.add_writer(self)

    def load(self) -> None:
        """Read the last allocated seq after the store opened."""
        self._committed_seq = self._store.count("SELECT value FROM counters WHERE name = 'seq'")
        self._next_seq = self._committed_seq + 1
        self._bytes = self._store.count("SELECT sum(length(body)) FROM outbox")

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

    def committed(self) -> None:
        if not self._pending:
            return
        self._bytes += sum(len(p[2]) for p in self._pending)
        done, self._pending = self._pending, []
        self._written = 0
        self._committed_seq = self._next_seq - 1
        self._new.set()
        for listener in self.listeners:
            listener(done)

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
        return self._store.count("SELECT count(*) FROM outbox")

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
