"""Traceability (追溯): a unit's genealogy backward, and a lot's use forward."""

from __future__ import annotations

import json
from typing import Any

from gateway.store.db import Store
from gateway.store.rows import (
    AttemptRow,
    ConsumptionRow,
    DefectRow,
    LabelKind,
    LabelRow,
    OrderRow,
    QualityRow,
    StockRow,
    TaskRow,
    UnitRow,
    WorkOrderRow,
)


def trace_serial(store: Store, serial: str) -> dict[str, Any] | None:
    """Everything that happened to a unit: order, operations, lots, quality, defects."""
    unit = store.fetch_one(UnitRow, "SELECT * FROM units WHERE serial = ?", (serial,))
    if unit is None:
        return None
    order_id = unit.order_id
    order = store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (order_id,))
    wo = store.fetch_one(WorkOrderRow, "SELECT * FROM work_orders WHERE wo_id = ?", (unit.wo_id,))
    replaced_by = store.texts("SELECT serial FROM units WHERE replaces = ?", (serial,))
    mine = "WHERE serial = ? OR (order_id = ? AND serial IS NULL) ORDER BY id"
    operations = [
        {
            "op": a.op,
            "attempt": a.attempt,
            "station": a.station,
            "operator": a.operator,
            "machine": a.machine,
            "started_at": a.started_at,
            "ended_at": a.ended_at,
            "outcome": a.outcome.value,
            "reason": a.reason,
            "lots": [lot.model_dump() for lot in a.lots()],
            "order_level": a.serial is None,
        }
        for a in store.fetch_all(AttemptRow, f"SELECT * FROM attempts {mine}", (serial, order_id))
    ]
    quality = [
        {
            "ts": q.ts,
            "task_id": q.task_id,
            "serial": q.serial,
            "check": q.check_kind,
            "passed": q.passed,
            "measured": q.measured(),
            "station": q.station,
            "operator": q.operator,
        }
        for q in store.fetch_all(QualityRow, f"SELECT * FROM quality {mine}", (serial, order_id))
    ]
    channel = order.order().channel if order is not None else None
    return {
        "serial": serial,
        "status": unit.status.value,
        "replaces": unit.replaces,
        "replaced_by": replaced_by[0] if replaced_by else None,
        "order": None
        if order is None
        else {
            "order_id": order_id,
            "revision": order.revision,
            "status": order.status.value,
            "ship_by": order.ship_by,
            "priority": order.priority,
            "channel": channel,
            "catalog_version": order.catalog_version,
            "accepted_at": order.accepted_at,
            "completed_at": order.completed_at,
            "weight_g": order.weight_g,
            "label_id": order.label_id,
        },
        "work_order": None
        if wo is None
        else {
            "line_no": wo.line_no,
            "sku": wo.sku,
            "qty": wo.qty,
            "routing": wo.routing,
            "status": wo.status.value,
            "personalization": wo.personalization(),
        },
        "operations": operations,
        "lots": [
            {"material": c.material, "lot": c.lot, "qty": c.qty, "ts": c.ts, "task_id": c.task_id}
            for c in store.fetch_all(
                ConsumptionRow, "SELECT * FROM consumption WHERE serial = ? ORDER BY id", (serial,)
            )
        ],
        "quality": quality,
        "defects": [
            {
                "ts": d.ts,
                "op": d.op,
                "reason": d.reason,
                "disposition": d.disposition.value,
                "station": d.station,
                "operator": d.operator,
            }
            for d in store.fetch_all(DefectRow, f"SELECT * FROM defects {mine}", (serial, order_id))
        ],
        "labels": [
            {
                "label_id": lb.label_id,
                "kind": lb.kind.value,
                "printer": lb.printer,
                "station": lb.station,
                "ts": lb.ts,
            }
            for lb in store.fetch_all(
                LabelRow,
                "SELECT * FROM labels WHERE serial = ? OR (order_id = ? AND kind = ?) ORDER BY ts",
                (serial, order_id, LabelKind.SHIPPING),
            )
        ],
    }


def trace_lot(store: Store, lot: str) -> dict[str, Any]:
    """Every unit and order that consumed a lot."""
    used = store.fetch_all(
        ConsumptionRow, "SELECT * FROM consumption WHERE lot = ? ORDER BY id", (lot,)
    )
    task_ids = sorted({c.task_id for c in used if c.task_id is not None})
    where = {
        t.task_id: t
        for t in store.fetch_all(
            TaskRow,
            f"SELECT * FROM tasks WHERE task_id IN ({','.join('?' * len(task_ids))})",
            task_ids,
        )
    }
    uses = []
    for c in used:
        task = where.get(c.task_id) if c.task_id is not None else None
        uses.append(
            {
                "ts": c.ts,
                "material": c.material,
                "qty": c.qty,
                "serial": c.serial,
                "order_id": c.order_id,
                "task_id": c.task_id,
                "op": task.op if task is not None else None,
                "station": task.station if task is not None else None,
            }
        )
    orders = []
    for oid in sorted({c.order_id for c in used if c.order_id}):
        row = store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (oid,))
        if row is not None:
            orders.append(
                {
                    "order_id": row.order_id,
                    "status": row.status.value,
                    "ship_by": row.ship_by,
                    "completed_at": row.completed_at,
                    "label_id": row.label_id,
                }
            )
    stock = store.fetch_one(StockRow, "SELECT * FROM stock WHERE lot = ?", (lot,))
    return {
        "lot": lot,
        "material": stock.material if stock is not None else (used[0].material if used else None),
        "expires": stock.expires if stock is not None else None,
        "uses": uses,
        "units": sorted({c.serial for c in used if c.serial}),
        "orders": orders,
    }


# Where a lot can be known from. attempts.lots is left out: tasks.consume writes each of
# an attempt's lots to consumption in the same transaction, so it would add nothing but a
# scan of every attempt's JSON for each lot the line does not know.
LOT_SOURCES = ("stock", "reservations", "consumption")


def lot_known_in(store: Store, lot: str) -> list[str]:
    """The tables of LOT_SOURCES that name ``lot``; none: the line does not know it (which,
    in a recall, must not read as "this lot was not used here")."""
    return [
        table
        for table in LOT_SOURCES
        if store.exists(f"SELECT 1 FROM {table} WHERE lot = ? LIMIT 1", (lot,))
    ]


def unknown_lot(store: Store, lot: str, where: str) -> str:
    """Why a lot the line does not know has no trace (``where``: "on this line", "in FILE"),
    naming the lots it does know under that name in another case or with spaces."""
    sources = ", ".join(LOT_SOURCES[:-1]) + " or " + LOT_SOURCES[-1]
    return f"no lot {_shown(lot)} {where}: not in its {sources}" + _did_you_mean(
        _lots_like(store, lot)
    )


def unknown_unit(store: Store, serial: str, where: str) -> str:
    """Why a serial has no trace, naming the serials it matches in another case."""
    return f"no unit {_shown(serial)} {where}" + _did_you_mean(_units_like(store, serial))


def _lots_like(store: Store, lot: str) -> list[str]:
    # A lot typed by hand (or read from a recall notice) in the wrong case, or with a space
    # pasted along. Compared here rather than in SQL: SQLite's NOCASE folds ASCII only.
    key = lot.strip().casefold()
    names = store.texts(" UNION ".join(f"SELECT lot FROM {t}" for t in LOT_SOURCES))
    return sorted(n for n in names if n and n != lot and n.strip().casefold() == key)


def _units_like(store: Store, serial: str) -> list[str]:
    # The gateway makes serials of ASCII, so NOCASE is enough here.
    return [
        s
        for s in store.texts(
            "SELECT serial FROM units WHERE serial = ? COLLATE NOCASE ORDER BY serial",
            (serial.strip(),),
        )
        if s != serial
    ]


def _shown(name: str) -> str:
    # Quoted when a space before or after it would otherwise be invisible in the message.
    return repr(name) if name != name.strip() else name


def _did_you_mean(names: list[str]) -> str:
    if not names:
        return ""
    return f"; did you mean {' or '.join(names)}? (names must match exactly, case included)"


def format_serial(t: dict[str, Any]) -> str:
    """The genealogy as text for a terminal."""
    o = t["order"] or {}
    w = t["work_order"] or {}
    lines = [
        f"unit {t['serial']}  ({t['status']})",
        f"  order {o.get('order_id')} rev {o.get('revision')}  {o.get('status')}  "
        f"ship by {o.get('ship_by')}  priority {o.get('priority')}",
        f"  line {w.get('line_no')}: {w.get('sku')} via {w.get('routing')}  "
        f"personalization {json.dumps(w.get('personalization'), ensure_ascii=False)}",
    ]
    if t["replaces"]:
        lines.append(f"  replaces scrapped unit {t['replaces']}")
    if t["replaced_by"]:
        lines.append(f"  replaced by {t['replaced_by']}")
    lines.append("  operations:")
    for op in t["operations"]:
        lots = (
            ", ".join(
                f"{x['material']}" + (f" lot {x['lot']}" if x["lot"] else "") + f" ×{x['qty']:g}"
                for x in op["lots"]
            )
            or "no material"
        )
        lines.append(
            f"    {op['op']:<10} #{op['attempt']} {op['outcome']:<9} at {op['station']} by "
            f"{op['operator']}"
            + (f" on {op['machine']}" if op["machine"] else "")
            + f"  {op['started_at']} → {op['ended_at']}  [{lots}]"
            + (f"  reason: {op['reason']}" if op["reason"] else "")
        )
    for q in t["quality"]:
        lines.append(
            f"  quality {q['check']}: {'pass' if q['passed'] else 'FAIL'} "
            f"{json.dumps(q['measured'], ensure_ascii=False)} at {q['station']}"
        )
    for d in t["defects"]:
        lines.append(f"  defect at {d['op']}: {d['reason']} → {d['disposition']}")
    for lb in t["labels"]:
        lines.append(f"  label {lb['kind']} {lb['label_id']} on {lb['printer']}")
    return "\n".join(lines)


def format_lot(t: dict[str, Any], known_in: list[str]) -> str:
    """A lot's forward trace as text; ``known_in``: :func:`lot_known_in` (the caller has
    refused a lot the line does not know)."""
    lines = [
        f"lot {t['lot']} of {t['material']}" + (f", expires {t['expires']}" if t["expires"] else "")
    ]
    if not t["uses"]:
        # The one answer that clears a lot in a recall: say what it rests on.
        lines.append(f"  known, not consumed on this line (known from: {', '.join(known_in)})")
    for u in t["uses"]:
        lines.append(
            f"  {u['ts']}  {u['qty']:g} into {u['serial'] or '(order-level)'} "
            f"order {u['order_id']} at {u['op']} on {u['station']}"
        )
    summary = f"  {len(t['units'])} units, {len(t['orders'])} orders"
    if t["orders"]:
        summary += ": " + ", ".join(f"{o['order_id']} ({o['status']})" for o in t["orders"])
    lines.append(summary)
    return "\n".join(lines)
