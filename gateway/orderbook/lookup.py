"""Customer service's order lookup: find an order by what the customer knows, then
everything about it, as JSON (served by gateway/web/order_routes.py).

An order is found by its id, by a unit's serial (on the traveller, or read out by the
customer from the engraving), or by the customer's reference: ``customer_ref`` when the
shop sends one (the contract's order admits extra fields), else a prefix of the
destination's name or of the sales channel, in any case (ASCII letters; other scripts
have none). Migration 7 indexes those three, so a search that finds nothing reads no order.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from cloud_sync.contract import Order
from gateway.clock import iso
from gateway.orderbook.context import LineContext
from gateway.orderbook.costing import CostMoney, cost_of
from gateway.orderbook.progress import Stage, history, order_forecast, stage_of, stages
from gateway.store.documents import Personalization
from gateway.store.rows import (
    AttemptRow,
    ConsumptionRow,
    OrderRow,
    Outcome,
    TaskRow,
    TaskStatus,
    UnitRow,
    UnitStatus,
    WorkOrderRow,
)

# Types only: the order book lies below planning (the layers in pyproject.toml).
if TYPE_CHECKING:
    from gateway.planning.planner import LinePlanner

__all__ = [
    "Destination",
    "Failure",
    "LotUsed",
    "MatchKind",
    "OrderDetail",
    "OrderMatch",
    "PackedWith",
    "Parcel",
    "StageReached",
    "Step",
    "UnitDetail",
    "find_orders",
    "order_detail",
]

_FROZEN = ConfigDict(frozen=True)


class MatchKind(StrEnum):
    """What of an order the query matched, best first."""

    ORDER_ID = "order_id"
    SERIAL = "serial"
    CUSTOMER_REF = "customer_ref"
    DESTINATION = "destination"
    CHANNEL = "channel"


class OrderMatch(BaseModel):
    """An order found, with enough to tell it from the others."""

    model_config = _FROZEN

    order_id: str
    matched_by: MatchKind
    stage: Stage
    ship_by: str
    carrier: str | None
    channel: str | None
    customer_ref: str | None
    destination_name: str | None
    accepted_at: str
    completed_at: str | None


# The texts matched by prefix, and the indexed expressions (migration 7) they are read by:
# the same text, or SQLite would read every order instead.
_BY_PREFIX: tuple[tuple[MatchKind, str], ...] = (
    (MatchKind.CUSTOMER_REF, "lower(json_extract(doc, '$.customer_ref'))"),
    (MatchKind.DESTINATION, "lower(json_extract(doc, '$.destination.name'))"),
    (MatchKind.CHANNEL, "lower(json_extract(doc, '$.channel'))"),
)
# SQLite's lower() folds ASCII letters only: the query is folded the same way.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _after_prefix(prefix: str) -> str | None:
    """The least text greater than every text that starts with ``prefix`` (None: there
    is none), in SQLite's order of UTF-8 bytes, which is the order of code points."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i])
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:  # surrogates are no text
                code = 0xE000
            return prefix[:i] + chr(code)
    return None


def _extra_text(order: Order, key: str) -> str | None:
    value = (order.model_extra or {}).get(key)
    return None if value is None else str(value)


def find_orders(core: LineContext, query: str, limit: int) -> list[OrderMatch]:
    """Orders matching ``query``, at most ``limit``: the order of that id, the order of
    the unit of that serial, then orders whose customer reference, destination name or
    channel starts with it (newest first among equal texts)."""
    text = query.strip()
    if not text or limit < 1:
        return []
    store = core.store
    found: dict[str, MatchKind] = {}
    if store.exists("SELECT 1 FROM orders WHERE order_id = ?", (text,)):
        found[text] = MatchKind.ORDER_ID
    for serial in dict.fromkeys((text, text.upper())):  # serials are printed in capitals
        for order_id in store.texts("SELECT order_id FROM units WHERE serial = ?", (serial,)):
            found.setdefault(order_id, MatchKind.SERIAL)
    folded = text.translate(_ASCII_LOWER)
    upper = _after_prefix(folded)
    for kind, expr in _BY_PREFIX:
        if len(found) >= limit:
            break
        below = f"AND {expr} < ? " if upper is not None else ""
        params = (folded, upper) if upper is not None else (folded,)
        for order_id in store.texts(
            f"SELECT order_id FROM orders WHERE {expr} >= ? {below}ORDER BY {expr} DESC LIMIT ?",
            (*params, limit),
        ):
            found.setdefault(order_id, kind)
    chosen = list(found)[:limit]
    rows = {
        r.order_id: r
        for r in store.fetch_all(
            OrderRow,
            f"SELECT * FROM orders WHERE order_id IN ({','.join('?' * len(chosen))})",
            chosen,
        )
    }
    now = stages(core, chosen)
    out: list[OrderMatch] = []
    for order_id in chosen:
        row = rows[order_id]
        order = row.order()
        out.append(
            OrderMatch(
                order_id=order_id,
                matched_by=found[order_id],
                stage=now[order_id],
                ship_by=row.ship_by,
                carrier=order.carrier,
                channel=order.channel,
                customer_ref=_extra_text(order, "customer_ref"),
                destination_name=order.destination.name if order.destination else None,
                accepted_at=row.accepted_at,
                completed_at=row.completed_at,
            )
        )
    return out


# -- one order ---------------------------------------------------------------------------------


class Failure(BaseModel):
    """An attempt at a step that failed, and why."""

    model_config = _FROZEN

    attempt: int
    at: str
    station: str | None
    operator: str | None
    reason: str | None


class Step(BaseModel):
    """One operation of a unit (or the order's packing): where, by whom, when."""

    model_config = _FROZEN

    task_id: int
    op: str
    status: TaskStatus
    station: str | None
    operator: str | None
    machine: str | None
    started_at: str | None  # of the attempt in progress, or of the last one
    ended_at: str | None
    attempt: int  # the attempt in progress, or the last one
    failures: list[Failure]


class LotUsed(BaseModel):
    """A material a unit consumed, from which lot (None: the material has no lots)."""

    model_config = _FROZEN

    material: str
    lot: str | None
    qty: float
    at: str


class UnitDetail(BaseModel):
    model_config = _FROZEN

    serial: str
    line_no: int
    sku: str
    sku_name: str
    personalization: Personalization
    status: UnitStatus
    replaces: str | None  # the scrapped unit this one replaces
    completed_at: str | None
    steps: list[Step]
    lots: list[LotUsed]


class PackedWith(BaseModel):
    """A shipping container (a mailer, a carton) the parcel was packed in."""

    model_config = _FROZEN

    material: str
    qty: float


class Parcel(BaseModel):
    """The parcel, once packed: weighed, labelled, confirmed."""

    model_config = _FROZEN

    weight_g: float | None
    label_id: str | None
    tracking: str | None  # the shop's, when it sends one (the gateway makes none)
    containers: list[PackedWith]
    packed_at: str | None


class Destination(BaseModel):
    model_config = _FROZEN

    name: str | None
    city: str | None


class StageReached(BaseModel):
    model_config = _FROZEN

    stage: Stage
    at: str


class OrderDetail(BaseModel):
    """Everything customer service may tell about an order."""

    model_config = _FROZEN

    order_id: str
    revision: int
    stage: Stage
    ship_by: str
    carrier: str | None
    priority: int
    channel: str | None
    customer_ref: str | None
    destination: Destination | None
    accepted_at: str
    completed_at: str | None
    cancel_reason: str | None
    units_total: int
    units_done: int
    units: list[UnitDetail]
    packing: Step | None  # the order's pack task
    # From the plan in force (none: no planner, no plan yet, or the plan does not know it).
    predicted_completion: str | None
    at_risk: bool
    reasons: list[str]
    waiting_for: list[str]  # the materials it lacks, when the plan says it waits
    plan_made_at: str | None
    parcel: Parcel | None
    history: list[StageReached]
    # What it cost (order.costed): from its completion on; None before, or never costed.
    cost: CostMoney | None


def _step(task: TaskRow, attempts: Sequence[AttemptRow]) -> Step:
    return Step(
        task_id=task.task_id,
        op=task.op,
        status=task.status,
        station=task.station,
        operator=task.operator,
        machine=task.machine,
        started_at=task.started_at,
        ended_at=task.completed_at,
        attempt=task.attempt,
        failures=[
            Failure(
                attempt=a.attempt,
                at=a.ended_at,
                station=a.station,
                operator=a.operator,
                reason=a.reason,
            )
            for a in attempts
            if a.outcome is Outcome.FAILED
        ],
    )


def _containers(core: LineContext, pack_attempts: Sequence[AttemptRow]) -> list[PackedWith]:
    """What the parcel was packed in: the materials of its completed packing that the
    catalog calls containers."""
    qty: dict[str, float] = defaultdict(float)
    for a in pack_attempts:
        if a.outcome is not Outcome.COMPLETED:
            continue
        for used in a.lots():
            material = core.catalog.materials.get(used.material)
            if material is not None and material.container is not None:
                qty[used.material] += used.qty
    return [PackedWith(material=m, qty=q) for m, q in sorted(qty.items())]


def order_detail(
    core: LineContext, planner: LinePlanner | None, order_id: str
) -> OrderDetail | None:
    """The order's units and their steps and lots, its forecast, its parcel and the
    stages it went through; None for an order the line does not know."""
    store = core.store
    row = store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (order_id,))
    stage = stage_of(core, order_id)
    if row is None or stage is None:
        return None
    order = row.order()
    works = {
        w.wo_id: w
        for w in store.fetch_all(
            WorkOrderRow, "SELECT * FROM work_orders WHERE order_id = ?", (order_id,)
        )
    }
    units = store.fetch_all(UnitRow, "SELECT * FROM units WHERE order_id = ?", (order_id,))
    units.sort(key=lambda u: (works[u.wo_id].line_no, u.unit_index, u.created_at, u.serial))
    tasks = store.fetch_all(
        TaskRow, "SELECT * FROM tasks WHERE order_id = ? ORDER BY op_index", (order_id,)
    )
    attempts: dict[int, list[AttemptRow]] = defaultdict(list)
    for a in store.fetch_all(
        AttemptRow, "SELECT * FROM attempts WHERE order_id = ? ORDER BY id", (order_id,)
    ):
        attempts[a.task_id].append(a)
    steps: dict[str, list[Step]] = defaultdict(list)
    packing: Step | None = None
    pack_attempts: list[AttemptRow] = []
    for task in tasks:
        if task.serial is None:
            packing = _step(task, attempts[task.task_id])
            pack_attempts = attempts[task.task_id]
        else:
            steps[task.serial].append(_step(task, attempts[task.task_id]))
    lots: dict[str, list[LotUsed]] = defaultdict(list)
    serials = [u.serial for u in units]
    if serials:
        for c in store.fetch_all(
            ConsumptionRow,
            f"SELECT * FROM consumption WHERE serial IN ({','.join('?' * len(serials))}) "
            "ORDER BY id",
            serials,
        ):
            assert c.serial is not None
            lots[c.serial].append(
                LotUsed(material=c.material, lot=c.lot or None, qty=c.qty, at=c.ts)
            )
    plan = planner.replanner.current if planner is not None else None
    forecast = order_forecast(plan, order_id, stage, row.ship_by, row.completed_at)
    predicted = forecast.predicted
    packed = stage is Stage.COMPLETED or row.label_id is not None
    return OrderDetail(
        order_id=order_id,
        revision=row.revision,
        stage=stage,
        ship_by=row.ship_by,
        carrier=order.carrier,
        priority=row.priority,
        channel=order.channel,
        customer_ref=_extra_text(order, "customer_ref"),
        destination=Destination(name=order.destination.name, city=order.destination.city)
        if order.destination is not None
        else None,
        accepted_at=row.accepted_at,
        completed_at=row.completed_at,
        cancel_reason=row.cancel_reason,
        units_total=row.units,
        units_done=sum(u.status is UnitStatus.DONE for u in units),
        units=[
            UnitDetail(
                serial=u.serial,
                line_no=works[u.wo_id].line_no,
                sku=works[u.wo_id].sku,
                sku_name=works[u.wo_id].snapshot().name,
                personalization=works[u.wo_id].personalization(),
                status=u.status,
                replaces=u.replaces,
                completed_at=u.completed_at,
                steps=steps[u.serial],
                lots=lots[u.serial],
            )
            for u in units
        ],
        packing=packing,
        predicted_completion=None if predicted is None else iso(predicted),
        at_risk=forecast.at_risk,
        reasons=list(forecast.reasons),
        waiting_for=list(plan.waiting.get(order_id, ())) if plan is not None else [],
        plan_made_at=iso(plan.made_at) if plan is not None else None,
        parcel=Parcel(
            weight_g=row.weight_g,
            label_id=row.label_id,
            tracking=_extra_text(order, "tracking"),
            containers=_containers(core, pack_attempts),
            packed_at=row.completed_at,
        )
        if packed
        else None,
        history=[StageReached(stage=h.stage, at=h.at) for h in history(core, order_id)],
        cost=_cost(core, order_id) if row.completed_at is not None else None,
    )


def _cost(core: LineContext, order_id: str) -> CostMoney | None:
    found = cost_of(core, order_id)
    return None if found is None else found.cost
