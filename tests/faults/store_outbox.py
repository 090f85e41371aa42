"""The gateway's own outbox for the link fault tests: gateway/store's Store and Outbox on a
real SQLite file (WAL, synchronous=FULL), events appended inside store transactions as every
gateway action appends them, acknowledged by the link as in the gateway. The README's
durability promise rests on this pair, so the faults run against it, not a stand-in.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.db import Store
from gateway.store.outbox import Outbox

GATEWAY = "hz01/line3"


class StoreOutbox:
    """A Store and its Outbox, opened on ``path`` as the gateway opens them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = Store(path)
        self.outbox = Outbox(self.store, GATEWAY)
        self._open()

    def _open(self) -> None:
        self.store.open()
        self.outbox.load()

    def add(self, count: int) -> None:
        """``count`` events committed in one transaction (a burst of work)."""
        with self.store.transaction():
            for _ in range(count):
                self.outbox.append("kpi.snapshot", {}, "2026-11-11T02:00:00.000+00:00")

    @property
    def pending(self) -> int:
        """Events in the outbox: committed, not yet acknowledged by the hub."""
        return self.outbox.pending_count()

    @property
    def last_seq(self) -> int:
        return self.outbox.last_seq

    def on_disk(self) -> int:
        """The events the file holds, read by another connection (what survives a crash)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            conn.close()

    def restart(self) -> None:
        """Close the store and open the file again, as a restarted gateway does."""
        self.store.close()
        self.store = Store(self.path)
        self.outbox = Outbox(self.store, GATEWAY)
        self._open()

    def close(self) -> None:
        self.store.close()
