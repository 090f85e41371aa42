"""Material availability and reservations: the kitting check (齐套检查).

Availability = stock snapshot − consumed since the snapshot's ``as_of`` − open
reservations, per material and lot. The :class:`Ledger` keeps that sum in memory (a few
hundred lots) so a burst of orders is checked without aggregate queries; it is rebuilt
from the tables at start-up, on every stock snapshot and after any rollback, so it is a
cache of the database, never a second truth. Lot-tracked materials are allocated
first-expiry-first-out.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta

from gateway.store.db import Store, UndoLog

NO_LOT = ""
_NEVER = date.max


@dataclass(slots=True)
class LotBalance:
    """What is free of one lot (or of a material without lots, ``lot == ""``)."""

    lot: str
    expires: date | None
    free: float

    def usable(self, today: date, margin_days: int) -> bool:
        return self.expires is None or self.expires >= today + timedelta(days=margin_days)


class Ledger:
    """Free quantity per material and lot.

    Every change is recorded with the store's undo (an :class:`~gateway.store.db.UndoLog`),
    so a rolled-back transaction or savepoint takes its changes back with it.
    """

    def __init__(self, store: Store | None = None) -> None:
        self._lots: dict[str, list[LotBalance]] = {}
        # What changed in the current transaction: a lot's free quantity (balance, taken),
        # a balance added to a material's list (the list, the balance), or every lot
        # replaced (the previous lots).
        self._changes: UndoLog[_Change] = UndoLog(store, self._revert)

    def load(self, conn: sqlite3.Connection, as_of: str | None) -> None:
        lots: dict[str, list[LotBalance]] = {}
        index: dict[tuple[str, str], LotBalance] = {}
        for material, lot, qty, expires in conn.execute(
            "SELECT material, lot, qty, expires FROM stock"
        ):
            bal = LotBalance(lot, date.fromisoformat(expires) if expires else None, float(qty))
            lots.setdefault(material, []).append(bal)
            index[(material, lot)] = bal
        consumed = conn.execute(
            "SELECT material, lot, sum(qty) FROM consumption WHERE ts > ? GROUP BY material, lot",
            (as_of or "",),
        )
        reserved = conn.execute(
            "SELECT material, lot, sum(qty) FROM reservations GROUP BY material, lot"
        )
        for rows in (consumed, reserved):
            for material, lot, qty in rows:
                found = index.get((material, lot))
                if found is None:
                    # Used or reserved beyond what the snapshot knows: a negative balance
                    # keeps the arithmetic honest until the next snapshot.
                    found = LotBalance(lot, None, 0.0)
                    lots.setdefault(material, []).append(found)
                    index[(material, lot)] = found
                found.free -= float(qty)
        for balances in lots.values():
            balances.sort(key=lambda b: (b.expires or _NEVER, b.lot))
        previous, self._lots = self._lots, lots
        self._changes.add(previous)

    def lots(self, material: str) -> list[LotBalance]:
        return self._lots.get(material, [])

    def lot(self, material: str, lot: str) -> LotBalance | None:
        for bal in self._lots.get(material, []):
            if bal.lot == lot:
                return bal
        return None

    def find_lot(self, lot: str) -> tuple[str, LotBalance] | None:
        """The material and balance of a lot id, wherever it is."""
        if lot == NO_LOT:
            return None
        for material, balances in self._lots.items():
            for bal in balances:
                if bal.lot == lot:
                    return material, bal
        return None

    def available(self, material: str, today: date, margin_days: int = 0) -> float:
        return sum(b.free for b in self._lots.get(material, []) if b.usable(today, margin_days))

    def fefo(self, material: str, qty: float, today: date, margin_days: int = 0) -> str | None:
        """The first-expiring usable lot that holds ``qty`` on its own, if any."""
        for bal in self._lots.get(material, []):
            if bal.usable(today, margin_days) and bal.free >= qty - 1e-9:
                return bal.lot
        return None

    def allocate(
        self, material: str, qty: float, today: date, margin_days: int = 0
    ) -> list[tuple[str, float]] | None:
        """Take ``qty`` first-expiry-first-out; None (and nothing taken) when short."""
        lots = self._lots.get(material, [])
        for bal in lots:  # the common case: the first usable lot holds it all
            if bal.free > 1e-9 and bal.usable(today, margin_days):
                if bal.free >= qty - 1e-9:
                    self._take(bal, qty)
                    return [(bal.lot, qty)]
                break
        if self.available(material, today, margin_days) < qty - 1e-9:
            return None
        taken: list[tuple[str, float]] = []
        left = qty
        for bal in self._lots.get(material, []):
            if left <= 1e-9:
                break
            if not bal.usable(today, margin_days) or bal.free <= 1e-9:
                continue
            part = min(bal.free, left)
            self._take(bal, part)
            left -= part
            taken.append((bal.lot, part))
        return taken

    def adjust(self, material: str, lot: str, delta: float) -> None:
        """Change the free quantity of one lot (negative takes, positive gives back)."""
        bal = self.lot(material, lot)
        if bal is None:
            bal = LotBalance(lot, None, 0.0)
            balances = self._lots.setdefault(material, [])
            balances.append(bal)
            self._changes.add((balances, bal))
        self._take(bal, -delta)

    def _take(self, bal: LotBalance, qty: float) -> None:
        bal.free -= qty
        self._changes.add((bal, qty))

    def _revert(self, change: _Change) -> None:
        if isinstance(change, dict):
            self._lots = change
        elif isinstance(change[0], LotBalance):
            change[0].free += change[1]
        else:
            change[0].remove(change[1])


_Change = (
    tuple[LotBalance, float] | tuple[list[LotBalance], LotBalance] | dict[str, list[LotBalance]]
)
