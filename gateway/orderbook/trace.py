"""Traceability (追溯): a unit's genealogy backward, and a lot's use forward."""

from __future__ import annotations

import json
from typing import Any

from gateway.store.db import Store


def _rows(store: Store, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    return list(store.db.query(sql, params))


def trace_serial(store: Store, serial: str) -> dict[str, Any] | None:
    """Everything that happened to a unit: order, operations, lots, quality, defects."""
    unit = store.one("SELECT * FROM units WHERE serial = ?", (serial,))
    if unit is None:
        return None
    order_id = unit["order_id"]
    order = store.one(
        "SELECT order_id, revision, status, ship_by, priority, catalog_version, accepted_at, "
        "completed_at, weight_g, label_id, doc FROM orders WHERE order_id = ?",
        (order_id,),
    )
    wo = store.one(
        "SELECT line_no, sku, qty, routing, personalization FROM work_orders WHERE wo_id = ?",
        (unit["wo_id"],),
    )
    replaced_by = store.one("SELECT serial FROM units WHERE replaces = ?", (serial,))
    operations = []
    for a in store.all(
        "SELECT * FROM attempts WHERE serial = ? OR (order_id = ? AND serial IS NULL) ORDER BY id",
        (serial, order_id),
    ):
        operations.append(
            {
                "op": a["op"],
                "attempt": a["attempt"],
                "station": a["station"],
                "operator": a["operator"],
                "machine": a["machine"],
                "started_at": a["started_at"],
                "ended_at": a["ended_at"],
                "outcome": a["outcome"],
                "reason": a["reason"],
                "lots": json.loads(a["lots"]),
                "order_level": a["serial"] is None,
            }
        )
    quality = [
        {**q, "measured": json.loads(q["measured"]), "passed": bool(q["passed"])}
        for q in _rows(
            store,
            "SELECT ts, task_id, serial, check_kind AS check_, passed, measured, station, "
            "operator FROM quality WHERE serial = ? OR (order_id = ? AND serial IS NULL) "
            "ORDER BY id",
            (serial, order_id),
        )
    ]
    for q in quality:
        q["check"] = q.pop("check_")
    doc = json.loads(order["doc"]) if order is not None else {}
    return {
        "serial": serial,
        "status": unit["status"],
        "replaces": unit["replaces"],
        "replaced_by": replaced_by["serial"] if replaced_by is not None else None,
        "order": None
        if order is None
        else {
            "order_id": order_id,
            "revision": order["revision"],
            "status": order["status"],
            "ship_by": order["ship_by"],
            "priority": order["priority"],
            "channel": doc.get("channel"),
            "catalog_version": order["catalog_version"],
            "accepted_at": order["accepted_at"],
            "completed_at": order["completed_at"],
            "weight_g": order["weight_g"],
            "label_id": order["label_id"],
        },
        "work_order": None
        if wo is None
        else {
            "line_no": wo["line_no"],
            "sku": wo["sku"],
            "qty": wo["qty"],
            "routing": wo["routing"],
            "personalization": json.loads(wo["personalization"]),
        },
        "operations": operations,
        "lots": _rows(
            store,
            "SELECT material, lot, qty, ts, task_id FROM consumption WHERE serial = ? ORDER BY id",
            (serial,),
        ),
        "quality": quality,
        "defects": _rows(
            store,
            "SELECT ts, op, reason, disposition, station, operator FROM defects "
            "WHERE serial = ? OR (order_id = ? AND serial IS NULL) ORDER BY id",
            (serial, order_id),
        ),
        "labels": _rows(
            store,
            "SELECT label_id, kind, printer, station, ts FROM labels WHERE serial = ? "
            "OR (order_id = ? AND kind = 'shipping') ORDER BY ts",
            (serial, order_id),
        ),
    }


def trace_lot(store: Store, lot: str) -> dict[str, Any]:
    """Every unit and order that consumed a lot."""
    uses = _rows(
        store,
        "SELECT c.ts, c.material, c.qty, c.serial, c.order_id, c.task_id, t.op, t.station "
        "FROM consumption c LEFT JOIN tasks t ON t.task_id = c.task_id WHERE c.lot = ? "
        "ORDER BY c.id",
        (lot,),
    )
    order_ids = sorted({u["order_id"] for u in uses if u["order_id"]})
    orders = []
    for oid in order_ids:
        row = store.one(
            "SELECT order_id, status, ship_by, completed_at, label_id FROM orders "
            "WHERE order_id = ?",
            (oid,),
        )
        if row is not None:
            orders.append(dict(row))
    stock = store.one("SELECT material, qty, expires FROM stock WHERE lot = ?", (lot,))
    return {
        "lot": lot,
        "material": stock["material"]
        if stock is not None
        else (uses[0]["material"] if uses else None),
        "expires": stock["expires"] if stock is not None else None,
        "uses": uses,
        "units": sorted({u["serial"] for u in uses if u["serial"]}),
        "orders": orders,
    }


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


def format_lot(t: dict[str, Any]) -> str:
    lines = [
        f"lot {t['lot']} of {t['material']}" + (f", expires {t['expires']}" if t["expires"] else "")
    ]
    if not t["uses"]:
        lines.append("  not consumed on this line")
    for u in t["uses"]:
        lines.append(
            f"  {u['ts']}  {u['qty']:g} into {u['serial'] or '(order-level)'} "
            f"order {u['order_id']} at {u['op']} on {u['station']}"
        )
    lines.append(
        f"  {len(t['units'])} units, {len(t['orders'])} orders: "
        + ", ".join(f"{o['order_id']} ({o['status']})" for o in t["orders"])
    )
    return "\n".join(lines)
