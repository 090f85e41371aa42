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
from datetime import datetime
from typing import Any

from cloud_sync.ports import OutboxRecord
from gateway.clock import iso
from gateway.store import Store


class Outbox:
    """Append events inside a store transaction; peek and ack for the hub link."""

    def __init__(self, store: Store, gateway_id: str) -> None:
        self._store = store
        self._gateway_id = gateway_id
        self._committed_seq = 0
        self._new = asyncio.Event()

    def load(self) -> None:
        """Read the last allocated seq after the store opened."""
        row = self._store.one("SELECT value FROM counters WHERE name = 'seq'")
        self._committed_seq = 0 if row is None else int(row[0])

    @property
    def last_seq(self) -> int:
        return self._committed_seq

    def append(
        self, type_: str, data: dict[str, Any], ts: datetime, order_id: str | None = None
    ) -> int:
        """Write one event in the current transaction; returns its seq."""
        seq = self._store.next_counter("seq")
        envelope: dict[str, Any] = {
            "v": 1,
            "gateway_id": self._gateway_id,
            "seq": seq,
            "event_id": f"{self._gateway_id}:{seq}",
            "ts": iso(ts),
            "type": type_,
        }
        if order_id is not None:
            envelope["order_id"] = order_id
        envelope["data"] = data
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        self._store.conn.execute(
            "INSERT INTO outbox (seq, type, body) VALUES (?, ?, ?)", (seq, type_, body)
        )
        self._store.on_commit(lambda: self._committed(seq))
        return seq

    def _committed(self, seq: int) -> None:
        self._committed_seq = max(self._committed_seq, seq)
        self._new.set()

    def peek(self, after_seq: int, limit: int) -> list[OutboxRecord]:
        rows = self._store.conn.execute(
            "SELECT seq, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [OutboxRecord(int(r[0]), bytes(r[1])) for r in rows]

    def ack(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._store.transaction() as conn:
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def pending_count(self) -> int:
        row = self._store.one("SELECT count(*) FROM outbox")
        return 0 if row is None else int(row[0])

    async def wait_for_new(self, after_seq: int) -> None:
        while self._committed_seq <= after_seq:
            self._new.clear()
            await self._new.wait()
