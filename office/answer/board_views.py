"""The site board's and reports' views of the lines' events, kept by a projector
(office.store.Projector) in the transaction that stored the events, and filled from the
stored events by migration 7 (:func:`backfill`).

Odd but valid data must never fail the insert (it would roll the events back): a field
missing or of the wrong type, an unreadable time, a clear before its raise, an order never
seen accepted: each is taken as far as it goes, the rest skipped. Events of one line come
in seq order per batch, but batches may cross (a gap filled later): every "latest" is
decided by seq, never by arrival.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.contract import Envelope
from office.store import schema

__all__ = ["TYPES", "backfill", "minute_of", "project", "project_sync", "utc_text"]

log = logging.getLogger(__name__)

TYPES = frozenset(
    {
        "alarm.raised",
        "alarm.cleared",
        "unit.completed",
        "order.accepted",
        "order.progress",
        "order.cancelled",
        "order.completed",
        "order.costed",
        "kpi.snapshot",
        "report.published",
    }
)
# kpi.snapshot periods kept per period (the site report's numerators and denominators).
_PERIOD_KINDS = frozenset({"shift", "daily", "weekly", "monthly"})
LATEST = "latest"  # board_kpis.kind of each line's newest snapshot
_PAGE = 2000


def utc_text(moment: datetime) -> str:
    """The one text form of an instant in these tables: UTC, microseconds (sorts right)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def minute_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _time(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return utc_text(parsed) if parsed.tzinfo is not None else None


def _text(value: object, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


async def project(conn: AsyncConnection, gateway_id: str, events: Sequence[Envelope]) -> None:
    """The projector (office.store.Projector)."""
    ours = [e for e in events if e.type in TYPES]
    if ours:
        await conn.run_sync(project_sync, gateway_id, ours)


def project_sync(conn: Connection, gateway_id: str, events: Iterable[Envelope]) -> None:
    # Rows gathered by statement shape, then one executemany per shape: a batch of events
    # costs a handful of statements, not one per event. Within a shape the rows keep seq
    # order; across shapes the order does not matter (each "newest" is decided by seq).
    rows: dict[str, list[dict[str, Any]]] = {}
    made: Counter[tuple[str, str]] = Counter()  # (minute, "units" | "orders")
    for e in events:
        if e.type in ("alarm.raised", "alarm.cleared"):
            found = _alarm(gateway_id, e)
        elif e.type == "unit.completed":
            made[(minute_of(e.ts), "units")] += 1
            continue
        elif e.type.startswith("order."):
            if e.type == "order.completed":
                made[(minute_of(e.ts), "orders")] += 1
            found = _order(gateway_id, e)
        elif e.type == "kpi.snapshot":
            for shape, row in _kpi(gateway_id, e):
                rows.setdefault(shape, []).append(row)
            continue
        elif e.type == "report.published":
            found = _report(gateway_id, e)
        else:
            continue
        if found is not None:
            rows.setdefault(found[0], []).append(found[1])
    for minute in sorted({m for m, _ in made}):
        rows.setdefault("minutes", []).append(
            {
                "gateway_id": gateway_id,
                "minute": minute,
                "units": made[(minute, "units")],
                "orders": made[(minute, "orders")],
            }
        )
    for shape, params in rows.items():
        conn.execute(_STATEMENTS[shape.split(":")[0]](conn, shape), params)


Row = tuple[str, dict[str, Any]]


def _minutes_stmt(conn: Connection, _shape: str) -> Any:
    t = schema.board_minutes
    stmt = _insert(conn, t)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.gateway_id, t.c.minute],
        set_={
            "units": t.c.units + stmt.excluded.units,
            "orders": t.c.orders + stmt.excluded.orders,
        },
    )


def _alarm(gateway_id: str, e: Envelope) -> Row | None:
    alarm_id = _text(e.data.get("alarm_id"))
    if alarm_id is None:
        return None
    if e.type == "alarm.raised":
        return "raised", {
            "gateway_id": gateway_id,
            "alarm_id": alarm_id,
            "raised_seq": e.seq,
            "severity": _text(e.data.get("severity"), 32),
            "kind": _text(e.data.get("kind"), 100),
            "source": _text(e.data.get("source")),
            "message": _text(e.data.get("message"), 4000),
            "since": utc_text(e.ts),
        }
    return "cleared", {"gateway_id": gateway_id, "alarm_id": alarm_id, "cleared_seq": e.seq}


def _raised_stmt(conn: Connection, _shape: str) -> Any:
    t = schema.board_alarms
    stmt = _insert(conn, t)
    newer = ("raised_seq", "severity", "kind", "source", "message", "since")
    return stmt.on_conflict_do_update(
        index_elements=[t.c.gateway_id, t.c.alarm_id],
        set_={c: stmt.excluded[c] for c in newer},
        where=or_(t.c.raised_seq.is_(None), t.c.raised_seq < stmt.excluded.raised_seq),
    )


def _cleared_stmt(conn: Connection, _shape: str) -> Any:
    t = schema.board_alarms
    stmt = _insert(conn, t)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.gateway_id, t.c.alarm_id],
        set_={"cleared_seq": stmt.excluded.cleared_seq},
        where=or_(t.c.cleared_seq.is_(None), t.c.cleared_seq < stmt.excluded.cleared_seq),
    )


def _order(gateway_id: str, e: Envelope) -> Row | None:
    order_id = e.order_id or _text(e.data.get("order_id"))
    if order_id is None:
        return None
    at = utc_text(e.ts)
    values: dict[str, Any] = {}
    if e.type in ("order.accepted", "order.progress"):
        ship_by = _time(e.data.get("ship_by"))
        values |= {"ship_by": ship_by, "ship_by_seq": e.seq if ship_by is not None else None}
        if e.type == "order.accepted":
            values["accepted_at"] = at
        else:
            values["cancelled_at"] = at if e.data.get("stage") == "cancelled" else None
    elif e.type == "order.cancelled":
        values["cancelled_at"] = at
    elif e.type == "order.completed":
        values["completed_at"] = at
    elif e.type == "order.costed":
        cost = e.data.get("cost")
        if not isinstance(cost, dict) or (total := _number(cost.get("total"))) is None:
            return None
        values |= {"cost_total": total, "currency": _text(cost.get("currency"), 8)}
    if not values:
        return None
    shape = "order:" + ",".join(values)
    return shape, {"gateway_id": gateway_id, "order_id": order_id, **values}


def _order_stmt(conn: Connection, shape: str) -> Any:
    t = schema.board_orders
    stmt = _insert(conn, t)
    columns = shape.split(":", 1)[1].split(",")
    update: dict[str, Any] = {}
    for column in columns:
        if column in ("ship_by", "ship_by_seq"):
            continue
        if column in ("cost_total", "currency"):
            update[column] = stmt.excluded[column]
        else:  # the first time it happened (a redelivered revision does not move it)
            update[column] = func.coalesce(t.c[column], stmt.excluded[column])
    if "ship_by" in columns:  # the newest event that said it
        newer = or_(t.c.ship_by_seq.is_(None), t.c.ship_by_seq < stmt.excluded.ship_by_seq)
        for column in ("ship_by", "ship_by_seq"):
            update[column] = case((newer, stmt.excluded[column]), else_=t.c[column])
    return stmt.on_conflict_do_update(index_elements=[t.c.gateway_id, t.c.order_id], set_=update)


def _kpi(gateway_id: str, e: Envelope) -> list[Row]:
    start, end = _time(e.data.get("period_start")), _time(e.data.get("period_end"))
    if start is None or end is None:
        return []
    period = e.data.get("period")
    kind = _text(period.get("kind"), 16) if isinstance(period, dict) else None
    doc = json.dumps(e.data, ensure_ascii=False)
    row = {"gateway_id": gateway_id, "period_end": end, "seq": e.seq, "doc": doc}
    found: list[Row] = [("latest", {**row, "kind": LATEST, "period_start": ""})]
    if kind in _PERIOD_KINDS:
        found.append(("period", {**row, "kind": kind, "period_start": start}))
    return found


def _kpi_stmt(conn: Connection, shape: str) -> Any:
    t = schema.board_kpis
    stmt = _insert(conn, t)
    if shape == "latest":  # the newest period; the same period: the newest event
        newer = or_(
            t.c.period_end < stmt.excluded.period_end,
            (t.c.period_end == stmt.excluded.period_end) & (t.c.seq < stmt.excluded.seq),
        )
    else:
        newer = t.c.seq < stmt.excluded.seq
    return stmt.on_conflict_do_update(
        index_elements=[t.c.gateway_id, t.c.kind, t.c.period_start],
        set_={c: stmt.excluded[c] for c in ("period_end", "seq", "doc")},
        where=newer,
    )


def _report(gateway_id: str, e: Envelope) -> Row | None:
    d = e.data
    report_id, kind = _text(d.get("report_id")), _text(d.get("kind"), 16)
    start, end = _time(d.get("period_start")), _time(d.get("period_end"))
    if report_id is None or kind is None or start is None or end is None:
        return None
    summary = d.get("summary")
    return "report", {
        "gateway_id": gateway_id,
        "report_id": report_id,
        "kind": kind,
        "period_start": start,
        "period_end": end,
        "timezone": _text(d.get("timezone"), 64),
        "label": _text(d.get("label"), 100),
        "summary": json.dumps(summary if isinstance(summary, dict) else {}, ensure_ascii=False),
        "url": _text(d.get("url"), 2000),
        "sha256": _text(d.get("sha256"), 64),
        "seq": e.seq,
    }


def _report_stmt(conn: Connection, _shape: str) -> Any:
    t = schema.board_reports
    stmt = _insert(conn, t)
    changed = ("kind", "period_start", "period_end", "timezone", "label", "summary", "url")
    return stmt.on_conflict_do_update(
        index_elements=[t.c.gateway_id, t.c.report_id],
        set_={c: stmt.excluded[c] for c in (*changed, "sha256", "seq")},
        where=t.c.seq < stmt.excluded.seq,
    )


_STATEMENTS: dict[str, Callable[[Connection, str], Any]] = {
    "minutes": _minutes_stmt,
    "raised": _raised_stmt,
    "cleared": _cleared_stmt,
    "order": _order_stmt,
    "latest": _kpi_stmt,
    "period": _kpi_stmt,
    "report": _report_stmt,
}


def backfill(conn: Connection) -> None:
    """Fill the views from the events already stored, a page at a time in (line, seq)
    order; an event stored whole but no longer readable as an envelope is skipped."""
    ev = schema.events
    after: tuple[str, int] = ("", 0)
    while True:
        rows = conn.execute(
            select(ev.c.gateway_id, ev.c.seq, ev.c.body)
            .where(
                ev.c.type.in_(sorted(TYPES)),
                or_(
                    ev.c.gateway_id > after[0],
                    (ev.c.gateway_id == after[0]) & (ev.c.seq > after[1]),
                ),
            )
            .order_by(ev.c.gateway_id, ev.c.seq)
            .limit(_PAGE)
        ).all()
        if not rows:
            return
        by_line: dict[str, list[Envelope]] = {}
        for gateway_id, seq, body in rows:
            try:
                by_line.setdefault(gateway_id, []).append(Envelope.model_validate_json(body))
            except ValidationError:
                log.warning("%s seq %d: not an envelope; left out of the board", gateway_id, seq)
        for gateway_id, envelopes in by_line.items():
            project_sync(conn, gateway_id, envelopes)
        after = (rows[-1].gateway_id, rows[-1].seq)
