"""New work rows, inserted together just before the transaction commits.

A burst of orders creates units, tasks and reservations by the thousand; one
``executemany`` per table per transaction instead of three per order is most of what makes
intake fast. Anything that reads those tables inside the same transaction calls
:meth:`BulkInserts.flush` first (the inbound handler does, for revisions, cancels and
stock), so the buffer is never visible as missing rows.
"""

from __future__ import annotations

from typing import Any

from gateway.store.db import Store

_STATEMENTS = {
    "units": "INSERT INTO units (serial, order_id, wo_id, unit_index, status, kitted, "
    "created_at) VALUES (?, ?, ?, ?, 'open', ?, ?)",
    "tasks": "INSERT INTO tasks (order_id, serial, wo_id, op, op_index, capability, status, "
    "ship_by, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "reservations": "INSERT INTO reservations (order_id, serial, op, material, lot, qty) "
    "VALUES (?, ?, ?, ?, ?, ?)",
}


class BulkInserts:
    """Rows waiting for the end of the current transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _STATEMENTS}
        self._armed = False

    def add(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if not self._armed:
            self._armed = True
            self._store.before_commit(self.flush)
            self._store.on_commit(self._disarm)
            self._store.on_rollback(self.discard)
        self._rows[table].extend(rows)

    def flush(self) -> None:
        """Write what waits, in the current transaction."""
        for table, rows in self._rows.items():
            if rows:
                self._store.conn.executemany(_STATEMENTS[table], rows)
                rows.clear()

    def discard(self) -> None:
        """Forget what waits (its transaction, or savepoint, was rolled back)."""
        for rows in self._rows.values():
            rows.clear()
        self._armed = False

    def _disarm(self) -> None:
        self._armed = False
