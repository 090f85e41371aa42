"""What an order cost: ``order.costed`` (contract 1.1), written and reported in the
transaction of its ``order.completed`` (gateway/desk/pack.py).

Time, over every attempt at the order's tasks, failed ones too (the work was done):

- ``labour_s``: Σ (end − start) of the attempts plus the changeover before each
  (``attempts.setup_s``: from taking the task to starting it, when the station's setup
  value changed; it lies before the attempt's start, so it is added here, not found in it);
- ``machine_s``: the part of that at stations with a machine (the attempt's recorded
  machine: the station's ``machine_id`` when it took the task);
- ``setup_s``: the changeovers alone. They are already inside labour and machine time, in
  seconds and in money: never add them again.

Money, from ``[costs]`` in line.toml (per hour; a station's rate beats its capability's,
which beats the line's) and the catalog's ``standard_cost``:

- labour = Σ seconds ÷ 3600 × the labour rate of the attempt's station and capability;
  machine likewise, with machine rates, over machine time;
- materials = the standard cost of what the units that shipped and the parcel consumed
  (their failed attempts' too: a rework's second blank is a loss this order made);
- scrap = the standard cost of what the units that did not ship (scrapped) consumed;
- total = labour + machine + materials + scrap.

A material without ``standard_cost`` (or no longer in the catalog in force) counts 0 and is
named in ``uncosted``; every material is, when ``[costs] currency`` is not the catalog's
(the gateway knows no rate of exchange). Each sum is rounded to cents (half up), and the
total is the sum of the rounded parts, so the figures add up as printed.

Quantities: what the order consumed, per material, against the standard (the BOM of each
shipped unit's SKU snapshot, ``work_orders.sku_doc``, summed over the units shipped). What an
attempt consumed is read from its ``lots``: tasks.consume writes the same lots to
``consumption`` in the same transaction, and the attempts are indexed by order, where
``consumption`` is not.

``by_sku`` splits the order by SKU for the reports (gateway/numbers/elements.py reads it
from ``order_costs.doc``): a unit's attempts and consumption go to its SKU, the parcel's
(the pack task's) are shared by the SKUs' shares of the units shipped.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from sqlite3 import Row
from typing import Self

from pydantic import BaseModel, ConfigDict

from gateway.orderbook.context import LineContext
from gateway.store.documents import SkuSnapshot
from gateway.store.rows import AttemptRow, UnitStatus, UnitWithSku

__all__ = ["CostMoney", "MaterialQty", "OrderCost", "SkuCost", "cost_order", "record_cost"]

logger = logging.getLogger(__name__)

_FROZEN = ConfigDict(frozen=True)
_CENT = Decimal("0.01")


class MaterialQty(BaseModel):
    model_config = _FROZEN

    material: str
    qty: float  # consumed by the order (its scrapped units' too)
    standard_qty: float  # the BOM × the units shipped


class CostMoney(BaseModel):
    model_config = _FROZEN

    labour: float
    machine: float
    materials: float
    scrap: float
    total: float
    currency: str | None  # None: neither [costs] nor the catalog names one


class SkuCost(BaseModel):
    model_config = _FROZEN

    share: float  # of the order's units shipped
    units: int  # shipped
    labour: float
    machine: float
    materials: float
    scrap: float
    total: float


class OrderCost(BaseModel):
    """``order.costed``'s data, as sent and as kept in ``order_costs.doc``."""

    model_config = _FROZEN

    labour_s: float
    machine_s: float
    setup_s: float
    units_scrapped: int
    materials: list[MaterialQty]
    cost: CostMoney
    uncosted: list[str]  # materials counted at 0: no standard_cost in the catalog's currency
    by_sku: dict[str, SkuCost]


@dataclass(frozen=True, slots=True)
class _Attempt:
    """An attempt with its task's capability (``SELECT a.*, t.capability``)."""

    attempt: AttemptRow
    capability: str

    @classmethod
    def from_row(cls, r: Row) -> Self:
        return cls(AttemptRow.from_row(r), str(r["capability"]))

    @property
    def seconds(self) -> float:
        """Start to end, and the changeover before the start."""
        a = self.attempt
        worked = 0.0
        if a.started_at is not None:
            worked = (
                datetime.fromisoformat(a.ended_at) - datetime.fromisoformat(a.started_at)
            ).total_seconds()
        return max(0.0, worked) + a.setup_s


@dataclass(slots=True)
class _Spend:
    labour: float = 0.0
    machine: float = 0.0
    materials: float = 0.0
    scrap: float = 0.0

    def rounded(self) -> tuple[float, float, float, float, float]:
        """(labour, machine, materials, scrap, total) in cents; total = their sum."""
        parts = [_cents(x) for x in (self.labour, self.machine, self.materials, self.scrap)]
        return parts[0], parts[1], parts[2], parts[3], _cents(sum(parts))


def _cents(x: float) -> float:
    return float(Decimal(repr(x)).quantize(_CENT, rounding=ROUND_HALF_UP))


def _catalog_currency(core: LineContext) -> str | None:
    if core.catalog.version is None:
        return None
    found = core.store.texts(
        "SELECT coalesce(json_extract(doc, '$.currency'), '') FROM catalogs WHERE version = ?",
        (core.catalog.version,),
    )
    return found[0] if found and found[0] else None


def cost_order(core: LineContext, order_id: str) -> OrderCost:
    """The order's cost from the store as it stands (see the module's docstring)."""
    store = core.store
    costs = core.config.costs
    units = store.fetch_all(
        UnitWithSku,
        "SELECT u.*, w.sku_doc FROM units u JOIN work_orders w ON w.wo_id = u.wo_id "
        "WHERE u.order_id = ?",
        (order_id,),
    )
    attempts = store.fetch_all(
        _Attempt,
        "SELECT a.*, t.capability FROM attempts a JOIN tasks t ON t.task_id = a.task_id "
        "WHERE a.order_id = ? ORDER BY a.id",
        (order_id,),
    )

    snapshots: dict[int, SkuSnapshot] = {}
    sku_of: dict[str, str] = {}
    ships: set[str] = set()
    shipped: dict[str, int] = defaultdict(int)
    standard: dict[str, float] = defaultdict(float)
    scrapped = 0
    for u in units:
        snapshot = snapshots.get(u.unit.wo_id)
        if snapshot is None:
            snapshot = snapshots[u.unit.wo_id] = u.snapshot()
        sku_of[u.unit.serial] = snapshot.sku
        if u.unit.status is UnitStatus.DONE:
            ships.add(u.unit.serial)
            shipped[snapshot.sku] += 1
            for line in snapshot.bom:
                standard[line.material] += line.qty
        elif u.unit.status is UnitStatus.SCRAPPED:
            scrapped += 1

    catalog_currency = _catalog_currency(core)
    currency = costs.currency or catalog_currency
    # Standard costs are in the catalog's currency: priced only when that is ours.
    comparable = costs.currency is None or catalog_currency in (None, costs.currency)

    def price(material: str) -> float | None:
        found = core.catalog.materials.get(material)
        if not comparable or found is None or found.standard_cost is None:
            return None
        return float(found.standard_cost)

    # Keyed by SKU; None: the parcel (the order's pack task), shared out below.
    spend: dict[str | None, _Spend] = defaultdict(_Spend)
    used: dict[str, float] = defaultdict(float)
    labour_s = machine_s = setup_s = 0.0
    for item in attempts:
        a = item.attempt
        key = None if a.serial is None else sku_of.get(a.serial, a.sku)
        seconds = item.seconds
        labour_s += seconds
        setup_s += a.setup_s
        s = spend[key]
        s.labour += seconds / 3600 * costs.labour_rate(a.station, item.capability)
        if a.machine is not None:
            machine_s += seconds
            s.machine += seconds / 3600 * costs.machine_rate(a.station, item.capability)
        wasted = a.serial is not None and a.serial not in ships
        for lot in a.lots():
            used[lot.material] += lot.qty
            unit_cost = price(lot.material)
            if unit_cost is None:
                continue
            if wasted:
                s.scrap += unit_cost * lot.qty
            else:
                s.materials += unit_cost * lot.qty

    order = _Spend()
    for s in spend.values():
        order.labour += s.labour
        order.machine += s.machine
        order.materials += s.materials
        order.scrap += s.scrap
    labour, machine, materials, scrap, total = order.rounded()
    names = sorted(set(used) | set(standard))
    return OrderCost(
        labour_s=round(labour_s, 3),
        machine_s=round(machine_s, 3),
        setup_s=round(setup_s, 3),
        units_scrapped=scrapped,
        materials=[
            MaterialQty(material=m, qty=round(used[m], 6), standard_qty=round(standard[m], 6))
            for m in names
        ],
        cost=CostMoney(
            labour=labour,
            machine=machine,
            materials=materials,
            scrap=scrap,
            total=total,
            currency=currency,
        ),
        uncosted=[m for m in names if price(m) is None],
        by_sku=_by_sku(spend, shipped),
    )


def _by_sku(spend: dict[str | None, _Spend], shipped: dict[str, int]) -> dict[str, SkuCost]:
    units = sum(shipped.values())
    parcel = spend.get(None, _Spend())
    out: dict[str, SkuCost] = {}
    for sku in sorted(k for k in spend.keys() | shipped.keys() if k is not None):
        share = shipped.get(sku, 0) / units if units else 0.0
        own = spend.get(sku, _Spend())
        mine = _Spend(
            own.labour + parcel.labour * share,
            own.machine + parcel.machine * share,
            own.materials + parcel.materials * share,
            own.scrap + parcel.scrap * share,
        )
        labour, machine, materials, scrap, total = mine.rounded()
        out[sku] = SkuCost(
            share=round(share, 6),
            units=shipped.get(sku, 0),
            labour=labour,
            machine=machine,
            materials=materials,
            scrap=scrap,
            total=total,
        )
    return out


def record_cost(core: LineContext, order_id: str) -> OrderCost | None:
    """Cost the order, keep it in ``order_costs`` and emit ``order.costed``: called in the
    transaction that emits its ``order.completed``, right after it. None when the costing
    failed (logged): it is taken back alone and the parcel ships all the same, uncosted,
    since a figure for finance must never stop the packing bench."""
    if not core.store.in_transaction:
        raise RuntimeError("order.costed goes in the transaction of order.completed")
    try:
        with core.store.savepoint():
            cost = cost_order(core, order_id)
            doc = cost.model_dump(mode="json")
            core.store.conn.execute(
                "INSERT INTO order_costs (order_id, costed_at, doc) VALUES (?, ?, ?)",
                (
                    order_id,
                    core.now_iso(),
                    json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
                ),
            )
            core.emit("order.costed", doc, order_id)
    except Exception:  # whatever failed, the order is packed and ships
        logger.exception("order %s could not be costed; it ships without order.costed", order_id)
        return None
    return cost


def cost_of(core: LineContext, order_id: str) -> OrderCost | None:
    """The cost reported for the order (``order_costs``), or None: not costed (yet)."""
    found = core.store.texts("SELECT doc FROM order_costs WHERE order_id = ?", (order_id,))
    return OrderCost.model_validate_json(found[0]) if found else None
