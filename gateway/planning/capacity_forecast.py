"""The forecast of the capacity check: its orders checked as intake checks orders, made
into the planner's tasks as intake would make them, and the materials they would lack.

Nothing here writes: the forecast's orders never reach the store. Runs in the planning
worker (gateway/planning/capacity_solve.py), on the line's database opened read-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from cloud_sync import contract, wire_json
from gateway.i18n import t
from gateway.orderbook.context import LineContext
from gateway.orderbook.inbound import check_order
from gateway.planner.problem import Order, Task
from gateway.planner.scenarios import PACK_PER_EXTRA_UNIT_S
from gateway.planning.capacity_answer import NoAnswer, Refused, Shortfall
from gateway.store.documents import RejectionError
from gateway.store.rows import OrderStatus, UnitStatus, WorkOrderRow

__all__ = ["Forecast", "forecast_work", "read_forecast", "shortfalls", "waiting_need"]

_PACK = "pack"
_OPEN = (OrderStatus.RELEASED, OrderStatus.WAITING_MATERIAL)


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast's orders intake would take, and those it would refuse."""

    orders: tuple[contract.Order, ...]
    refused: tuple[Refused, ...]
    total: int  # orders in the file

    @property
    def units(self) -> int:
        return sum(line.qty for o in self.orders for line in o.lines)


def read_forecast(core: LineContext, payload: bytes) -> Forecast | NoAnswer:
    """The forecast file (a JSON array of hub orders, or one order), each order checked by
    intake's rules (gateway/orderbook/inbound.py ``check_order``); an order id the forecast
    holds twice, or one the line already has, is refused too (it would be counted twice).
    NoAnswer when the file is no forecast at all."""
    try:
        doc, suspect = wire_json.parse(payload)
    except ValueError as exc:  # UnicodeDecodeError too
        return NoAnswer(forecast=True, why=t("The forecast is not JSON: {why}", why=str(exc)))
    except RecursionError:
        return NoAnswer(forecast=True, why=t("The forecast is not JSON: nested too deeply"))
    items: list[Any]
    if isinstance(doc, dict):
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        return NoAnswer(forecast=True, why=t("The forecast must be a JSON array of orders."))
    if not items:
        return NoAnswer(forecast=True, why=t("The forecast holds no order."))
    taken: list[contract.Order] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    checked = [check_order(core, item, suspect) for item in items]
    known = _known(core, [o.order_id for o, errors in checked if o is not None and not errors])
    for index, (item, (order, errors)) in enumerate(zip(items, checked, strict=True)):
        if order is not None and not errors:
            if order.order_id in seen:
                errors = [_duplicate("the forecast holds order {id} more than once", order)]
            elif order.order_id in known:
                errors = [_duplicate("the line already has an order {id}", order)]
        if errors:
            refused.append(Refused(index=index, order_id=_readable_id(item, errors), errors=errors))
            continue
        assert order is not None  # no errors: an order
        seen.add(order.order_id)
        taken.append(order)
    return Forecast(tuple(taken), tuple(refused), len(items))


def _duplicate(message: str, order: contract.Order) -> RejectionError:
    return RejectionError(
        code="DUPLICATE", field="order_id", message=message.format(id=order.order_id)
    )


def _readable_id(item: Any, errors: Sequence[RejectionError]) -> str | None:
    """The order's id as intake reports a refused one: when it is text it can read."""
    found = item.get("order_id") if isinstance(item, dict) else None
    if not isinstance(found, str) or len(found) > 64:
        return None
    if any(e.field == "order_id" and e.code != "DUPLICATE" for e in errors):
        return None
    return found


def _known(core: LineContext, order_ids: Sequence[str]) -> set[str]:
    """Those of ``order_ids`` the line has (open or closed)."""
    out: set[str] = set()
    for i in range(0, len(order_ids), 500):
        chunk = order_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        out.update(
            core.store.texts(f"SELECT order_id FROM orders WHERE order_id IN ({marks})", chunk)
        )
    return out


def forecast_work(
    core: LineContext, orders: Iterable[contract.Order], now: datetime
) -> tuple[list[Task], list[Order]]:
    """The planner's tasks and orders for the forecast, as intake would make them
    (gateway/orderbook/workorders.py ``explode``) and planning would read them back
    (gateway/planning/line_problem.py): a task per unit per operation in routing order, the
    operation's setup when the personalisation sets its key, one pack task per order after
    all its units (its longest pack time and a little per extra unit). Task ids start with
    ``forecast:``, never a store task's id."""
    tasks: list[Task] = []
    plan_orders: list[Order] = []
    for order in orders:
        oid = order.order_id
        plan_orders.append(Order(oid, _seconds(order.ship_by, now), order.priority, 0))
        last: list[str] = []
        pack_s = 0
        units = 0
        for line in order.lines:
            sku = core.catalog.skus[line.sku]
            routing = core.catalog.routings[sku.routing]
            for _ in range(line.qty):
                units += 1
                prev: str | None = None
                for op in routing.operations:
                    if op.capability == _PACK:
                        pack_s = max(pack_s, int(op.run_s))
                        continue
                    value = line.personalization.get(op.setup_key) if op.setup_key else None
                    key = str(value) if value not in (None, "") else None
                    task = Task(
                        id=f"forecast:{oid}:{units}:{op.op}",
                        order_id=oid,
                        serial=f"{oid}:{units}",
                        operation=op.op,
                        capability=op.capability,
                        duration=int(op.run_s),
                        setup_key=key,
                        setup_s=int(op.setup_s) if key is not None else 0,
                        predecessors=(prev,) if prev else (),
                    )
                    tasks.append(task)
                    prev = task.id
                if prev is not None:
                    last.append(prev)
        tasks.append(
            Task(
                id=f"forecast:{oid}:pack",
                order_id=oid,
                serial=None,
                operation=_PACK,
                capability=_PACK,
                duration=pack_s + PACK_PER_EXTRA_UNIT_S * max(0, units - 1),
                predecessors=tuple(last),
            )
        )
    return tasks, plan_orders


def _seconds(ts: datetime, now: datetime) -> int:
    return int((ts - now).total_seconds())


@dataclass(frozen=True, slots=True)
class _WaitingUnits:
    wo_id: int
    units: int

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        return cls(int(r["wo_id"]), int(r["units"]))


def waiting_need(core: LineContext) -> dict[str, float]:
    """What the backlog's units waiting for material (not kitted: nothing reserved for
    them yet) will take of each material before the forecast gets any."""
    rows = core.store.fetch_all(
        _WaitingUnits,
        "SELECT u.wo_id, count(*) AS units FROM units u JOIN orders o ON o.order_id = u.order_id "
        "WHERE u.kitted = 0 AND u.status = ? AND o.status IN (?, ?) GROUP BY u.wo_id",
        (UnitStatus.OPEN, *_OPEN),
    )
    need: dict[str, float] = {}
    for r in rows:
        wo = core.store.fetch_one(
            WorkOrderRow, "SELECT * FROM work_orders WHERE wo_id = ?", (r.wo_id,)
        )
        for b in wo.snapshot().bom if wo is not None else ():
            need[b.material] = need.get(b.material, 0.0) + b.qty * r.units
    return need


def shortfalls(
    core: LineContext, orders: Sequence[contract.Order], backlog: Mapping[str, float]
) -> list[Shortfall]:
    """The materials the forecast needs more of than is free today (stock less what is
    reserved, less what the backlog's waiting units need), by the catalog's BOMs. Orders
    are served earliest ship-by first; an order is counted short of a material when what
    is left does not cover its need of it."""
    today = core.today()
    margin = core.config.policies.lot_expiry_margin_days
    per_order: list[dict[str, float]] = []
    for order in sorted(orders, key=lambda o: (o.ship_by, o.order_id)):
        need: dict[str, float] = {}
        for line in order.lines:
            for b in core.catalog.skus[line.sku].bom:
                need[b.material] = need.get(b.material, 0.0) + float(b.qty) * line.qty
        per_order.append(need)
    total: dict[str, float] = {}
    for need in per_order:
        for material, qty in need.items():
            total[material] = total.get(material, 0.0) + qty
    free = {
        m: max(0.0, core.ledger.available(m, today, margin) - backlog.get(m, 0.0)) for m in total
    }
    left = dict(free)
    short_orders: dict[str, int] = {}
    for need in per_order:
        for material, qty in need.items():
            if left[material] >= qty - 1e-9:
                left[material] -= qty
            else:
                short_orders[material] = short_orders.get(material, 0) + 1
    return [
        Shortfall(
            material=m,
            need=round(total[m], 3),
            available=round(free[m], 3),
            short=round(total[m] - free[m], 3),
            orders=short_orders.get(m, 0),
        )
        for m in sorted(total)
        if total[m] > free[m] + 1e-9
    ]
