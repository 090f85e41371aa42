"""Reading the order view: one order on every line that has it, and a search by order id
prefix or customer reference, newest first. Typed answers (dataclasses), one shape for the
JSON and the pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from office.answer.orders_view import TraceKind
from office.store import schema

__all__ = [
    "SEARCH_LIMIT",
    "TIMELINE_LIMIT",
    "Check",
    "Container",
    "Cost",
    "Current",
    "Found",
    "Hit",
    "Lot",
    "OrderOnLine",
    "Parcel",
    "Problem",
    "Progress",
    "Stage",
    "Status",
    "Step",
    "TimelineEvent",
    "Unit",
    "WorkOrder",
    "find",
    "search",
]

SEARCH_LIMIT = 50  # results of one search: customer service narrows, it does not page
TIMELINE_LIMIT = 300  # the newest events of an order on one line


class Status(StrEnum):
    """Where the order stands with its line (the newest of what the line said)."""

    SENT = "sent"  # fed to the line, nothing heard back yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class Stage(StrEnum):
    """``order.progress`` ``stage`` (hub protocol 1.1)."""

    WAITING_MATERIAL = "waiting_material"
    QUEUED = "queued"
    IN_PROCESS = "in_process"
    PACKING = "packing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Problem:
    code: str | None
    field: str | None
    message: str | None


@dataclass(frozen=True)
class Current:
    serial: str | None
    op: str | None
    station: str | None


@dataclass(frozen=True)
class Progress:
    stage: Stage | None  # None: a stage this office does not know (a newer gateway)
    stage_text: str | None  # as the line sent it
    units_total: int | None
    units_done: int | None
    predicted_completion: datetime | None  # None: not planned yet
    at_risk: bool
    reasons: tuple[str, ...]
    current: tuple[Current, ...]
    at: datetime | None  # when the line said it


@dataclass(frozen=True)
class Container:
    material: str | None
    qty: float | None


@dataclass(frozen=True)
class Parcel:
    completed_at: datetime | None
    units: tuple[str, ...]
    weight_g: float | None
    label_id: str | None
    containers: tuple[Container, ...]


@dataclass(frozen=True)
class Cost:
    labour: float | None
    machine: float | None
    materials: float | None
    scrap: float | None
    total: float | None
    currency: str | None


@dataclass(frozen=True)
class Lot:
    material: str
    lot: str | None
    qty: float | None


@dataclass(frozen=True)
class Step:
    """A task the unit went through (``task.completed``)."""

    op: str | None
    station: str | None
    operator: str | None
    machine: str | None
    at: datetime | None
    lots: tuple[Lot, ...]


@dataclass(frozen=True)
class Check:
    """A quality check (``kind`` check: ``name``, ``passed``) or a defect (``kind`` defect:
    ``name`` is the reason, with its ``disposition``)."""

    kind: str
    name: str | None
    passed: bool | None
    disposition: str | None
    op: str | None
    station: str | None
    at: datetime | None


@dataclass(frozen=True)
class Unit:
    serial: str
    sku: str | None
    line_no: int | None
    done_at: datetime | None  # unit.completed
    steps: tuple[Step, ...]
    lots: tuple[Lot, ...]  # every lot consumed into it, from its steps and material.consumed
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class WorkOrder:
    line_no: int | None
    sku: str | None
    qty: int | None


@dataclass(frozen=True)
class TimelineEvent:
    seq: int
    type: str
    at: datetime


@dataclass(frozen=True)
class OrderOnLine:
    """One order as one line reported it."""

    order_id: str
    line: str  # the gateway id, site/line
    customer_ref: str | None
    channel: str | None
    shop: str | None
    status: Status
    revision: int | None
    units_ordered: int | None
    ship_by: datetime | None
    first_at: datetime
    last_at: datetime
    work_orders: tuple[WorkOrder, ...]
    progress: Progress | None
    errors: tuple[Problem, ...]  # the newest order.rejected's
    cancel_reason: str | None
    parcel: Parcel | None
    cost: Cost | None
    units: tuple[Unit, ...]
    timeline: tuple[TimelineEvent, ...]  # oldest first, the newest TIMELINE_LIMIT
    timeline_cut: bool  # older events left out


@dataclass(frozen=True)
class Found:
    order_id: str
    on_lines: tuple[OrderOnLine, ...]


@dataclass(frozen=True)
class Hit:
    """A search result: enough to pick the order."""

    order_id: str
    line: str
    customer_ref: str | None
    channel: str | None
    status: Status
    stage: Stage | None
    predicted_completion: datetime | None
    at_risk: bool
    ship_by: datetime | None
    first_at: datetime
    last_at: datetime


# -- decoding what the projector wrote --------------------------------------------------


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _loads(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _dicts(value: str | None) -> list[dict[str, Any]]:
    found = _loads(value)
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _s(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    return value if isinstance(value, str) else None


def _n(d: dict[str, Any], key: str) -> float | None:
    value = d.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _i(d: dict[str, Any], key: str) -> int | None:
    value = d.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stage(value: str | None) -> Stage | None:
    try:
        return Stage(value) if value else None
    except ValueError:
        return None


def _status(row: Row[Any]) -> Status:
    # The newest thing the line said about the order as a whole; completed and cancelled
    # are final whatever came after (a revision rejected IN_PROGRESS does not undo work).
    if row.completed_seq is not None:
        return Status.COMPLETED
    if row.cancelled_seq is not None:
        return Status.CANCELLED
    if row.accepted_seq is not None:
        return Status.ACCEPTED
    return Status.REJECTED if row.rejected_seq is not None else Status.SENT


def _progress(row: Row[Any]) -> Progress | None:
    if row.progress_seq is None:
        return None
    reasons = _loads(row.reasons)
    return Progress(
        stage=_stage(row.stage),
        stage_text=row.stage,
        units_total=row.units_total,
        units_done=row.units_done,
        predicted_completion=_time(row.predicted_completion),
        at_risk=bool(row.at_risk),
        reasons=tuple(r for r in reasons if isinstance(r, str))
        if isinstance(reasons, list)
        else (),
        current=tuple(
            Current(_s(c, "serial"), _s(c, "op"), _s(c, "station")) for c in _dicts(row.current)
        ),
        at=_time(row.progress_at),
    )


def _parcel(row: Row[Any]) -> Parcel | None:
    if row.completed_seq is None:
        return None
    serials = _loads(row.parcel_units)
    return Parcel(
        completed_at=_time(row.completed_at),
        units=tuple(s for s in serials if isinstance(s, str)) if isinstance(serials, list) else (),
        weight_g=row.weight_g,
        label_id=row.label_id,
        containers=tuple(
            Container(_s(c, "material"), _n(c, "qty")) for c in _dicts(row.containers)
        ),
    )


def _cost(row: Row[Any]) -> Cost | None:
    data = _loads(row.cost)
    if not isinstance(data, dict) or not isinstance(data.get("cost"), dict):
        return None
    c = data["cost"]
    return Cost(
        labour=_n(c, "labour"),
        machine=_n(c, "machine"),
        materials=_n(c, "materials"),
        scrap=_n(c, "scrap"),
        total=_n(c, "total"),
        currency=_s(c, "currency"),
    )


def _lots(value: str | None) -> tuple[Lot, ...]:
    return tuple(
        Lot(material, _s(d, "lot"), _n(d, "qty"))
        for d in _dicts(value)
        if (material := _s(d, "material")) is not None
    )


def _units(trace: Sequence[Row[Any]]) -> tuple[Unit, ...]:
    """Units by serial in the order they first appear (seq order). A lot reported by both
    ``task.completed`` and ``material.consumed`` (the same consumption, one task) counts
    once: the task's list wins for its task_id."""
    tasks_seen = {r.task_id for r in trace if r.kind == TraceKind.TASK and r.task_id}
    serials: dict[str, dict[str, Any]] = {}
    for r in trace:
        if not r.serial:
            continue
        unit = serials.setdefault(
            r.serial,
            {"sku": None, "line_no": None, "done": None, "steps": [], "lots": [], "checks": []},
        )
        if r.kind == TraceKind.UNIT:
            unit["sku"] = r.sku
            unit["line_no"] = r.line_no
            unit["done"] = _time(r.at)
        elif r.kind == TraceKind.TASK:
            lots = _lots(r.lots)
            unit["steps"].append(Step(r.op, r.station, r.operator, r.machine, _time(r.at), lots))
            unit["lots"].extend(lots)
        elif r.kind == TraceKind.CONSUMED and r.task_id not in tasks_seen:
            unit["lots"].extend(_lots(r.lots))
        elif r.kind in (TraceKind.CHECK, TraceKind.DEFECT):
            unit["checks"].append(
                Check(r.kind, r.detail, r.passed, r.disposition, r.op, r.station, _time(r.at))
            )
    return tuple(
        Unit(
            serial,
            u["sku"],
            u["line_no"],
            u["done"],
            tuple(u["steps"]),
            tuple(u["lots"]),
            tuple(u["checks"]),
        )
        for serial, u in serials.items()
    )


def _on_line(
    row: Row[Any], trace: Sequence[Row[Any]], timeline: list[TimelineEvent], cut: bool
) -> OrderOnLine:
    first = _time(row.first_at)
    last = _time(row.last_at)
    assert first is not None and last is not None  # written by the projector, RFC 3339
    return OrderOnLine(
        order_id=row.order_id,
        line=row.gateway_id,
        customer_ref=row.customer_ref,
        channel=row.channel,
        shop=row.shop,
        status=_status(row),
        revision=row.revision,
        units_ordered=row.units,
        ship_by=_time(row.ship_by),
        first_at=first,
        last_at=last,
        work_orders=tuple(
            WorkOrder(_i(w, "line_no"), _s(w, "sku"), _i(w, "qty")) for w in _dicts(row.lines)
        ),
        progress=_progress(row),
        errors=tuple(
            Problem(_s(e, "code"), _s(e, "field"), _s(e, "message")) for e in _dicts(row.errors)
        ),
        cancel_reason=row.cancel_reason,
        parcel=_parcel(row),
        cost=_cost(row),
        units=_units(trace),
        timeline=tuple(timeline),
        timeline_cut=cut,
    )


# -- the queries ------------------------------------------------------------------------


async def find(conn: AsyncConnection, order_id: str) -> Found | None:
    """The order on every line that has it; None when no line has said anything of it."""
    v, tr, e = schema.order_view, schema.order_trace, schema.events
    rows = (
        await conn.execute(select(v).where(v.c.order_id == order_id).order_by(v.c.first_at.desc()))
    ).all()
    if not rows:
        return await _fed_only(conn, order_id)
    trace = (
        await conn.execute(
            select(tr).where(tr.c.order_id == order_id).order_by(tr.c.gateway_id, tr.c.seq)
        )
    ).all()
    found = []
    for row in rows:
        events = (
            await conn.execute(
                select(e.c.seq, e.c.type, e.c.ts)
                .where(e.c.order_id == order_id, e.c.gateway_id == row.gateway_id)
                # seq + 0: ordering by the bare column lets SQLite walk the whole line's
                # primary key backwards instead of the order's few rows (events_order).
                .order_by((e.c.seq + 0).desc())
                .limit(TIMELINE_LIMIT + 1)
            )
        ).all()
        timeline = [
            TimelineEvent(r.seq, r.type, at)
            for r in reversed(events[:TIMELINE_LIMIT])
            if (at := _time(r.ts)) is not None
        ]
        mine = [t for t in trace if t.gateway_id == row.gateway_id]
        found.append(_on_line(row, mine, timeline, len(events) > TIMELINE_LIMIT))
    return Found(order_id, tuple(found))


async def _fed_only(conn: AsyncConnection, order_id: str) -> Found | None:
    """An order the office fed to a line that has not said anything of it yet (its
    message waits at the broker, or the line is off): sent, as far as the office knows."""
    f = schema.feed_orders
    row = (
        await conn.execute(
            select(f).where(f.c.order_id == order_id).order_by(f.c.revision.desc()).limit(1)
        )
    ).first()
    received = _time(row.received_at) if row is not None else None
    if row is None or row.gateway_id is None or received is None:
        return None  # unknown, or no line can make it (the feed reports that to the shop)
    body = _loads(row.body)
    doc: dict[str, Any] = body if isinstance(body, dict) else {}
    sent = OrderOnLine(
        order_id=order_id,
        line=row.gateway_id,
        customer_ref=_s(doc, "customer_ref"),
        channel=_s(doc, "channel"),
        shop=row.shop,
        status=Status.SENT,
        revision=row.revision,
        units_ordered=None,
        ship_by=_time(_s(doc, "ship_by")),
        first_at=received,
        last_at=received,
        work_orders=(),
        progress=None,
        errors=(),
        cancel_reason=None,
        parcel=None,
        cost=None,
        units=(),
        timeline=(),
        timeline_cut=False,
    )
    return Found(order_id, (sent,))


def _prefix(conn: AsyncConnection, column: Any, q: str) -> Any:
    # Both take an index: SQLite's GLOB is case-sensitive like the BINARY index on the
    # column; PostgreSQL's LIKE uses the text_pattern_ops index (order id) whatever the
    # database's collation.
    if conn.dialect.name == "sqlite":
        escaped = "".join(f"[{c}]" if c in "*?[" else c for c in q)
        return column.op("GLOB")(escaped + "*")
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


async def search(conn: AsyncConnection, q: str, limit: int = SEARCH_LIMIT) -> list[Hit]:
    """Orders whose id starts with ``q`` or whose customer reference is ``q`` (or starts
    with it), newest first (by when the office first heard of them), at most ``limit``."""
    q = q.strip()
    if not q:
        return []
    v = schema.order_view
    rows = (
        await conn.execute(
            select(v)
            .where(or_(_prefix(conn, v.c.order_id, q), _prefix(conn, v.c.customer_ref, q)))
            .order_by(v.c.first_at.desc(), v.c.order_id, v.c.gateway_id)
            .limit(limit)
        )
    ).all()
    hits = []
    for row in rows:
        progress = _progress(row)
        first, last = _time(row.first_at), _time(row.last_at)
        assert first is not None and last is not None
        hits.append(
            Hit(
                order_id=row.order_id,
                line=row.gateway_id,
                customer_ref=row.customer_ref,
                channel=row.channel,
                status=_status(row),
                stage=progress.stage if progress else None,
                predicted_completion=progress.predicted_completion if progress else None,
                at_risk=progress.at_risk if progress else False,
                ship_by=_time(row.ship_by),
                first_at=first,
                last_at=last,
            )
        )
    return hits
