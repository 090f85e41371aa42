"""What packed parcels went in, against the BOM's containers one per unit: a line for each
packed order and the tally of a run (`linegate demo` prints them; gateway/orderbook/parcels.py
chooses the containers).

Costs are the catalog's ``standard_cost`` (the catalog in force; a container without one
counts 0 here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.orderbook.context import LineContext
from gateway.store.rows import AttemptRow, OrderStatus, Outcome, UnitStatus, UnitWithSku

__all__ = ["PackedOrder", "Tally", "describe", "packed", "packed_since"]


@dataclass(frozen=True, slots=True)
class PackedOrder:
    """A packed order's parcel: its containers and the BOM's, with their costs."""

    order_id: str
    units: int
    containers: dict[str, float]  # what the parcel was packed in
    bom: dict[str, float]  # the BOM's containers, one per unit (as before contract 1.1)
    cost: float
    bom_cost: float


@dataclass
class Tally:
    """Parcels packed so far, against the BOM's containers."""

    orders: int = 0
    units: int = 0
    containers: int = 0
    bom_containers: int = 0
    cost: float = 0.0
    bom_cost: float = 0.0

    def add(self, p: PackedOrder) -> None:
        self.orders += 1
        self.units += p.units
        self.containers += round(sum(p.containers.values()))
        self.bom_containers += round(sum(p.bom.values()))
        self.cost += p.cost
        self.bom_cost += p.bom_cost

    def text(self) -> str:
        if not self.orders:
            return "no parcel packed yet"
        saved = 100.0 * (1.0 - self.cost / self.bom_cost) if self.bom_cost else 0.0
        # Dearer than the BOM when units do not fit the containers their BOM names (the
        # reference catalog's caps, tumblers and gift sets): BENCHMARKS.md, Issue 15.
        verdict = f"{saved:.1f} % saved" if saved >= 0 else f"{-saved:.1f} % dearer"
        return (
            f"{self.orders} parcels, {self.units} units: {self.containers} containers for "
            f"{self.cost:.2f} against the BOM's {self.bom_containers} for "
            f"{self.bom_cost:.2f} ({verdict})"
        )


def packed(core: LineContext, order_id: str) -> PackedOrder | None:
    """The parcel of a packed order; None before it is packed."""
    attempts = core.store.fetch_all(
        AttemptRow,
        "SELECT * FROM attempts WHERE order_id = ? AND serial IS NULL AND outcome = ?",
        (order_id, Outcome.COMPLETED),
    )
    if not attempts:
        return None
    materials = core.catalog.materials
    used: dict[str, float] = {}
    for a in attempts:
        for lot in a.lots():
            found = materials.get(lot.material)
            if found is not None and found.container is not None:
                used[lot.material] = used.get(lot.material, 0.0) + lot.qty
    units = core.store.fetch_all(
        UnitWithSku,
        "SELECT u.*, w.sku_doc FROM units u JOIN work_orders w ON w.wo_id = u.wo_id "
        "WHERE u.order_id = ? AND u.status = ?",
        (order_id, UnitStatus.DONE),
    )
    bom: dict[str, float] = {}
    for u in units:
        for line in u.snapshot().bom:
            if line.container:
                bom[line.material] = bom.get(line.material, 0.0) + line.qty
    return PackedOrder(
        order_id,
        len(units),
        dict(sorted(used.items())),
        dict(sorted(bom.items())),
        _cost(core, used.items()),
        _cost(core, bom.items()),
    )


def _cost(core: LineContext, items: Iterable[tuple[str, float]]) -> float:
    total = 0.0
    for material, qty in items:
        found = core.catalog.materials.get(material)
        if found is not None and found.standard_cost is not None:
            total += float(found.standard_cost) * qty
    return total


def describe(p: PackedOrder) -> str:
    """One line: "SO-1: 3 units in POLYBAG-L ×1 (0.55); BOM: POLYBAG ×3 (1.05)"."""

    def said(c: dict[str, float]) -> str:
        return ", ".join(f"{m} ×{q:g}" for m, q in c.items()) or "nothing"

    return (
        f"{p.order_id}: {p.units} {'unit' if p.units == 1 else 'units'} in "
        f"{said(p.containers)} ({p.cost:.2f}); "
        f"BOM: {said(p.bom)} ({p.bom_cost:.2f})"
    )


def packed_since(core: LineContext, since: str | None) -> list[PackedOrder]:
    """The orders packed after ``since`` (an ISO instant as the store keeps it; None: all),
    oldest first."""
    ids = core.store.texts(
        "SELECT order_id FROM orders WHERE status = ? AND completed_at > ? ORDER BY completed_at",
        (OrderStatus.COMPLETED, since or ""),
    )
    return [p for p in (packed(core, i) for i in ids) if p is not None]
