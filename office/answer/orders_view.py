"""Customer service's view of every order on every line, kept by a projector.

The projector runs in the transaction that stored the events (office.store.Projector), with
the events of one line new to the store, so the view never misses one nor counts one
twice. Each part of an order's row (accepted, rejected, cancelled, completed, progress,
cost) carries the seq of the event that set it and is only overwritten by a higher seq:
events may arrive out of order (HTTP retries, a replayed range). What a unit went through
(tasks, lots, checks, defects) goes to ``order_trace``, one row per event.

What the data holds is taken as far as it is understood: an unknown field is ignored, a
field of the wrong type is left empty, an order the office never fed gets a row of its own
(a line's own order). A projector that raised would roll the events back.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import Envelope
from office.store import schema

__all__ = [
    "TraceKind",
    "ViewTables",
    "backfill",
    "migration_6",
    "note_fed",
    "order_placed",
    "project_orders",
]

log = logging.getLogger(__name__)

# Events read per page when the migration builds the view from what is stored.
_BACKFILL_PAGE = 2000


class TraceKind:
    """``order_trace.kind``: which event a trace row came from."""

    TASK = "task"  # task.completed: a step with its lots
    CONSUMED = "consumed"  # material.consumed: one lot
    CHECK = "check"  # quality.checked
    DEFECT = "defect"  # defect.recorded
    UNIT = "unit"  # unit.completed

    ALL = (TASK, CONSUMED, CHECK, DEFECT, UNIT)


_TRACE_TYPES = {
    "task.completed": TraceKind.TASK,
    "material.consumed": TraceKind.CONSUMED,
    "quality.checked": TraceKind.CHECK,
    "defect.recorded": TraceKind.DEFECT,
    "unit.completed": TraceKind.UNIT,
}
_ORDER_TYPES = {
    "order.accepted",
    "order.rejected",
    "order.cancelled",
    "order.completed",
    "order.progress",
    "order.costed",
    "workorder.created",
}
PROJECTED_TYPES = frozenset(_TRACE_TYPES) | _ORDER_TYPES


@dataclass(frozen=True)
class ViewTables:
    """The tables written: the store's (schema.py), or migration 6's frozen ones."""

    view: Table
    trace: Table


def _live() -> ViewTables:
    return ViewTables(schema.order_view, schema.order_trace)


# -- reading the data, tolerantly -------------------------------------------------------


def _text(data: dict[str, Any], key: str, limit: int = 200) -> str | None:
    value = data.get(key)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)[:limit]
    return None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**62) < value < 2**62 else None


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _bool(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    return value if isinstance(value, bool) else None


def _objects(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _moment(data: dict[str, Any], key: str) -> str | None:
    """An RFC 3339 time in the data, in UTC (sorts right as text); None if unreadable."""
    value = data.get(key)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return _utc(parsed) if parsed.tzinfo is not None else None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _lots(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"material": _text(i, "material"), "lot": _text(i, "lot"), "qty": _number(i, "qty")}
        for i in items
        if _text(i, "material") is not None
    ]


# -- the projector ----------------------------------------------------------------------

# Rows per statement: under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 200


async def project_orders(
    conn: AsyncConnection, gateway_id: str, events: Sequence[Envelope]
) -> None:
    """The office.store.Projector of this view."""
    wanted = [e for e in events if e.order_id is not None and e.type in PROJECTED_TYPES]
    if wanted:
        await conn.run_sync(project, _live(), gateway_id, wanted)


def project(
    conn: Connection, tables: ViewTables, gateway_id: str, events: Sequence[Envelope]
) -> None:
    """Fold ``events`` (one line's, new to the store) into the view; synchronous, so the
    migration's backfill runs the very same code. A handful of statements per batch, not
    per event (each statement is a round trip to the database's thread or server): rows
    go in many at a time, and of the events setting the same part of an order only the
    highest seq is written."""
    by_order: dict[str, list[Envelope]] = defaultdict(list)
    for event in events:
        if event.order_id is not None and event.type in PROJECTED_TYPES:
            by_order[event.order_id[:200]].append(event)
    if not by_order:
        return
    _touch(conn, tables.view, gateway_id, by_order)
    newest: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    ship_by: dict[str, str] = {}
    trace: list[dict[str, Any]] = []
    for order_id, found in by_order.items():
        for event in found:
            kind = _TRACE_TYPES.get(event.type)
            if kind is not None:
                trace.append(_trace_row(gateway_id, order_id, kind, event))
            elif event.type == "workorder.created":
                _work_order(conn, tables.view, gateway_id, order_id, event.data)
            else:
                part = _part(event)
                if part is None:
                    continue
                seen = newest.get((order_id, part[0]))
                if seen is None or seen[0] < event.seq:
                    newest[(order_id, part[0])] = (event.seq, part[1])
                if event.type == "order.progress":
                    said = _moment(event.data, "ship_by")
                    if said is not None:
                        ship_by.setdefault(order_id, said)
    _write_parts(conn, tables.view, gateway_id, newest)
    if ship_by:
        v = tables.view
        conn.execute(
            update(v)
            .where(
                v.c.order_id == bindparam("b_order"),
                v.c.gateway_id == gateway_id,
                v.c.ship_by.is_(None),
            )
            .values(ship_by=bindparam("b_ship_by")),
            [{"b_order": o, "b_ship_by": s} for o, s in ship_by.items()],
        )
    for start in range(0, len(trace), _CHUNK):
        chunk = trace[start : start + _CHUNK]
        conn.execute(_insert(conn, tables.trace).values(chunk).on_conflict_do_nothing())


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _touch(
    conn: Connection, view: Table, gateway_id: str, by_order: dict[str, list[Envelope]]
) -> None:
    """Each order's row exists and its first and last times and seq cover its events; a
    new row takes the customer reference from what the shop sent, if the office fed it."""
    orders = list(by_order)
    existing: set[str] = set()
    for start in range(0, len(orders), _CHUNK):
        existing.update(
            conn.scalars(
                select(view.c.order_id).where(
                    view.c.gateway_id == gateway_id,
                    view.c.order_id.in_(orders[start : start + _CHUNK]),
                )
            )
        )
    span = {
        o: (min(_utc(e.ts) for e in es), max(_utc(e.ts) for e in es), max(e.seq for e in es))
        for o, es in by_order.items()
    }
    fresh = [o for o in orders if o not in existing]
    fed = _fed(conn, fresh)
    rows = [
        {
            "order_id": o,
            "gateway_id": gateway_id,
            "first_at": span[o][0],
            "last_at": span[o][1],
            "last_seq": span[o][2],
            **fed.get(o, {"customer_ref": None, "channel": None, "shop": None}),
        }
        for o in fresh
    ]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        conn.execute(_insert(conn, view).values(chunk).on_conflict_do_nothing())
    known = [o for o in orders if o in existing]
    if known:
        first: Any = bindparam("b_first")
        last: Any = bindparam("b_last")
        seq: Any = bindparam("b_seq")
        conn.execute(
            update(view)
            .where(view.c.order_id == bindparam("b_order"), view.c.gateway_id == gateway_id)
            .values(
                first_at=case((view.c.first_at > first, first), else_=view.c.first_at),
                last_at=case((view.c.last_at < last, last), else_=view.c.last_at),
                last_seq=case((view.c.last_seq < seq, seq), else_=view.c.last_seq),
            ),
            [
                {"b_order": o, "b_first": span[o][0], "b_last": span[o][1], "b_seq": span[o][2]}
                for o in known
            ],
        )


def _refs(body: str) -> tuple[str | None, str | None]:
    """(customer_ref, channel) of what a shop sent: the order schema allows extra fields,
    and shops put the platform's order number or the buyer's reference in ``customer_ref``."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    return _text(doc, "customer_ref"), _text(doc, "channel", 64)


def _fed(conn: Connection, orders: list[str]) -> dict[str, dict[str, str | None]]:
    """What the shops sent for these orders (the newest revision of each); an order the
    office never fed (a line's own, or fed by another system) is not in the answer."""
    f = schema.feed_orders
    newest: dict[str, tuple[int, str, str]] = {}
    for start in range(0, len(orders), _CHUNK):
        rows = conn.execute(
            select(f.c.order_id, f.c.revision, f.c.body, f.c.shop).where(
                f.c.order_id.in_(orders[start : start + _CHUNK])
            )
        ).all()
        for row in rows:
            if row.order_id not in newest or newest[row.order_id][0] < row.revision:
                newest[row.order_id] = (row.revision, row.body, row.shop)
    found: dict[str, dict[str, str | None]] = {}
    for order_id, (_revision, body, shop) in newest.items():
        customer_ref, channel = _refs(body)
        found[order_id] = {"customer_ref": customer_ref, "channel": channel, "shop": shop}
    return found


def note_fed(
    conn: Connection, order_id: str, gateway_id: str, body: dict[str, Any], shop: str, at: datetime
) -> None:
    """For the feed (office/feed/ledger.py), in the order's transaction: the order is
    findable by its customer reference before its line has said anything."""
    view = schema.order_view
    customer_ref, channel = _refs(_json(body))
    values = {"customer_ref": customer_ref, "channel": channel, "shop": shop}
    created = conn.execute(
        _insert(conn, view)
        .values(
            order_id=order_id,
            gateway_id=gateway_id,
            first_at=_utc(at),
            last_at=_utc(at),
            last_seq=0,
            **values,
        )
        .on_conflict_do_nothing()
    ).rowcount
    if not created:
        conn.execute(
            update(view)
            .where(view.c.order_id == order_id, view.c.gateway_id == gateway_id)
            .values(**values)
        )


async def order_placed(
    conn: AsyncConnection,
    order_id: str,
    gateway_id: str,
    body: dict[str, Any],
    shop: str,
    at: datetime,
) -> None:
    """:func:`note_fed` as the feed's ``Ledger(placed=...)`` calls it."""
    await conn.run_sync(note_fed, order_id, gateway_id, body, shop, at)


def _part(event: Envelope) -> tuple[str, dict[str, Any]] | None:
    """The part of the order's row this event sets: (its seq column, the values)."""
    data = event.data
    at = _utc(event.ts)
    if event.type == "order.accepted":
        return "accepted_seq", {
            "accepted_at": at,
            "revision": _int(data, "revision"),
            "units": _int(data, "units"),
            "ship_by": _moment(data, "ship_by"),
        }
    if event.type == "order.rejected":
        errors = [
            {k: _text(e, k, 2000) for k in ("code", "field", "message")}
            for e in _objects(data, "errors")
        ]
        return "rejected_seq", {"rejected_at": at, "errors": _json(errors)}
    if event.type == "order.cancelled":
        return "cancelled_seq", {"cancelled_at": at, "cancel_reason": _text(data, "reason", 2000)}
    if event.type == "order.completed":
        units = data.get("units")
        serials = [str(u) for u in units if isinstance(u, str)] if isinstance(units, list) else []
        containers = [
            {"material": _text(c, "material"), "qty": _number(c, "qty")}
            for c in _objects(data, "containers")
        ]
        return "completed_seq", {
            "completed_at": at,
            "parcel_units": _json(serials),
            "weight_g": _number(data, "weight_g"),
            "label_id": _text(data, "label_id"),
            "containers": _json(containers),
        }
    if event.type == "order.progress":
        reasons = data.get("reasons")
        current = [
            {k: _text(c, k) for k in ("serial", "op", "station")} for c in _objects(data, "current")
        ]
        return "progress_seq", {
            "progress_at": at,
            "stage": _text(data, "stage", 32),
            "units_total": _int(data, "units_total"),
            "units_done": _int(data, "units_done"),
            "predicted_completion": _moment(data, "predicted_completion"),
            "at_risk": _bool(data, "at_risk"),
            "reasons": _json(
                [str(r)[:2000] for r in reasons if isinstance(r, str)]
                if isinstance(reasons, list)
                else []
            ),
            "current": _json(current),
        }
    if event.type == "order.costed":
        return "costed_seq", {"cost": _json(data)}
    return None


def _write_parts(
    conn: Connection,
    view: Table,
    gateway_id: str,
    newest: dict[tuple[str, str], tuple[int, dict[str, Any]]],
) -> None:
    """One statement per part (executemany): only an event newer than the one that set
    the part may set it again, so an older event arriving late changes nothing."""
    by_part: dict[str, list[tuple[str, int, dict[str, Any]]]] = defaultdict(list)
    for (order_id, part), (seq, values) in newest.items():
        by_part[part].append((order_id, seq, values))
    for part, items in by_part.items():
        column = view.c[part]
        names = list(items[0][2])
        conn.execute(
            update(view)
            .where(
                view.c.order_id == bindparam("b_order"),
                view.c.gateway_id == gateway_id,
                or_(column.is_(None), column < bindparam("b_seq")),
            )
            .values({part: bindparam("b_seq"), **{n: bindparam(f"b_{n}") for n in names}}),
            [
                {"b_order": o, "b_seq": seq, **{f"b_{n}": values[n] for n in names}}
                for o, seq, values in items
            ],
        )


def _work_order(
    conn: Connection, view: Table, gateway_id: str, order_id: str, data: dict[str, Any]
) -> None:
    # One per order line, once per order: read, merge by line_no, write.
    line_no = _int(data, "line_no")
    if line_no is None:
        return
    mine = (view.c.order_id == order_id, view.c.gateway_id == gateway_id)
    stored = conn.scalar(select(view.c.lines).where(*mine))
    try:
        lines = json.loads(stored) if stored else []
    except ValueError:
        lines = []
    kept = [w for w in lines if isinstance(w, dict) and w.get("line_no") != line_no]
    kept.append({"line_no": line_no, "sku": _text(data, "sku"), "qty": _int(data, "qty")})
    kept.sort(key=lambda w: w["line_no"] if isinstance(w.get("line_no"), int) else 0)
    conn.execute(update(view).where(*mine).values(lines=_json(kept)))


def _trace_row(gateway_id: str, order_id: str, kind: str, event: Envelope) -> dict[str, Any]:
    data = event.data
    lots: list[dict[str, Any]] = []
    if kind == TraceKind.TASK:
        lots = _lots(_objects(data, "lots"))
    elif kind == TraceKind.CONSUMED:
        lots = _lots([data])
    at = _moment(data, "completed_at") if kind == TraceKind.TASK else None
    return {
        "gateway_id": gateway_id,
        "seq": event.seq,
        "order_id": order_id,
        "kind": kind,
        "at": at or _utc(event.ts),
        "serial": _text(data, "serial"),
        "task_id": _text(data, "task_id"),
        "op": _text(data, "op"),
        "station": _text(data, "station"),
        "operator": _text(data, "operator"),
        "machine": _text(data, "machine"),
        "sku": _text(data, "sku"),
        "line_no": _int(data, "line_no"),
        "lots": _json(lots) if lots else None,
        "passed": _bool(data, "passed"),
        "detail": _text(data, "check" if kind == TraceKind.CHECK else "reason", 2000),
        "disposition": _text(data, "disposition", 16),
    }


# -- migration 6 ------------------------------------------------------------------------


def _frozen() -> ViewTables:
    # Migration 6's shapes, frozen here (schema.py follows the newest migration).
    m = MetaData()
    view = Table(
        "order_view",
        m,
        Column("order_id", String(200), nullable=False),
        Column("gateway_id", String(65), nullable=False),
        Column("customer_ref", String(200)),
        Column("channel", String(64)),
        Column("shop", String(64)),
        Column("first_at", String(40), nullable=False),
        Column("last_at", String(40), nullable=False),
        Column("last_seq", BigInteger, nullable=False),
        Column("revision", BigInteger),
        Column("units", Integer),
        Column("ship_by", String(40)),
        Column("lines", Text),
        Column("accepted_seq", BigInteger),
        Column("accepted_at", String(40)),
        Column("rejected_seq", BigInteger),
        Column("rejected_at", String(40)),
        Column("errors", Text),
        Column("cancelled_seq", BigInteger),
        Column("cancelled_at", String(40)),
        Column("cancel_reason", Text),
        Column("completed_seq", BigInteger),
        Column("completed_at", String(40)),
        Column("parcel_units", Text),
        Column("weight_g", Float),
        Column("label_id", String(200)),
        Column("containers", Text),
        Column("progress_seq", BigInteger),
        Column("progress_at", String(40)),
        Column("stage", String(32)),
        Column("units_total", Integer),
        Column("units_done", Integer),
        Column("predicted_completion", String(40)),
        Column("at_risk", Boolean),
        Column("reasons", Text),
        Column("current", Text),
        Column("costed_seq", BigInteger),
        Column("cost", Text),
        PrimaryKeyConstraint("order_id", "gateway_id"),
    )
    Index(
        "order_view_customer_ref",
        view.c.customer_ref,
        postgresql_ops={"customer_ref": "text_pattern_ops"},
    )
    Index("order_view_first_at", view.c.first_at)
    Index("order_view_id_prefix", view.c.order_id, postgresql_ops={"order_id": "text_pattern_ops"})
    trace = Table(
        "order_trace",
        m,
        Column("gateway_id", String(65), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("order_id", String(200), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("at", String(40), nullable=False),
        Column("serial", String(200)),
        Column("task_id", String(200)),
        Column("op", String(200)),
        Column("station", String(200)),
        Column("operator", String(200)),
        Column("machine", String(200)),
        Column("sku", String(200)),
        Column("line_no", Integer),
        Column("lots", Text),
        Column("passed", Boolean),
        Column("detail", Text),
        Column("disposition", String(16)),
        PrimaryKeyConstraint("gateway_id", "seq"),
    )
    Index("order_trace_order", trace.c.order_id)
    return ViewTables(view, trace)


def migration_6(conn: Connection) -> None:
    """Create the view's tables and build them from the events already stored."""
    tables = _frozen()
    tables.view.create(conn)
    tables.trace.create(conn)
    backfill(conn, tables)


def backfill(conn: Connection, tables: ViewTables) -> None:
    """Fold every stored event of the projected types, line by line in seq order, a page
    at a time (keyset on the primary key). An event whose body no longer reads as an
    envelope is skipped, as the receiving ends would have refused it."""
    e = schema.events
    after: tuple[str, int] = ("", 0)
    while True:
        rows = conn.execute(
            select(e.c.gateway_id, e.c.seq, e.c.body)
            .where(
                or_(
                    e.c.gateway_id > after[0],
                    (e.c.gateway_id == after[0]) & (e.c.seq > after[1]),
                ),
                e.c.type.in_(sorted(PROJECTED_TYPES)),
                e.c.order_id.is_not(None),
            )
            .order_by(e.c.gateway_id, e.c.seq)
            .limit(_BACKFILL_PAGE)
        ).all()
        if not rows:
            return
        by_line: dict[str, list[Envelope]] = defaultdict(list)
        for row in rows:
            try:
                by_line[row.gateway_id].append(Envelope.model_validate_json(row.body))
            except ValueError:
                log.warning("order view: event %s:%s not readable, skipped", *row[:2])
        for gateway_id, envelopes in by_line.items():
            project(conn, tables, gateway_id, envelopes)
        after = (rows[-1].gateway_id, rows[-1].seq)
