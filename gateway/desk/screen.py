"""What a station's screen shows, and the one next step it asks of the operator.

Pure reads of the store: the station API answers ``GET /api/stations/{id}`` from here, and
every reply's ``next`` text comes from :func:`next_step`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from gateway.orderbook.context import LineContext
from gateway.orderbook.tasks import (
    Work,
    expected_weight,
    live_units,
    needs,
    operation,
    suggested_lot,
)

if TYPE_CHECKING:
    from gateway.desk.service import StationService

Row = sqlite3.Row


def missing_materials(core: LineContext, task: Row, work: Work) -> list[str]:
    """Materials of the task not scanned yet, with the lot to use for lot-tracked ones."""
    scanned = {e["material"] for e in work.lots}
    out = []
    for need in needs(core, task):
        if need.material in scanned:
            continue
        lot = suggested_lot(core, task, need.material) if need.lot_tracked else None
        out.append(f"{need.material} (lot {lot})" if lot else need.material)
    return out


def missing_units(core: LineContext, task: Row, work: Work) -> list[str]:
    """Units of the order not yet scanned into the parcel."""
    return [
        u["serial"] for u in live_units(core, task["order_id"]) if u["serial"] not in work.units
    ]


def describe(task: Row) -> str:
    if task["serial"] is None:
        return f"pack order {task['order_id']}"
    return f"{task['op']} of unit {task['serial']} (order {task['order_id']})"


def after_finish(svc: StationService, station_id: str) -> str:
    return (
        "Press Next for the next task."
        if svc.queue(station_id, 1)
        else "Nothing is waiting for this station."
    )


def next_step(svc: StationService, station_id: str, task: Row) -> str:
    """The one thing the operator should do now for this task."""
    core = svc.core
    work = Work.of(task)
    status = task["status"]
    if status == "paused":
        return f"Paused ({work.pause_reason}). Press Resume to continue."
    if task["serial"] is None:
        return _pack_step(core, task, work)
    if status == "dispatched":
        if not work.confirmed:
            return f"Fetch unit {task['serial']} and scan its traveller."
        missing = missing_materials(core, task, work)
        if missing:
            return "Scan " + ", ".join(missing) + "."
        return "Press Start."
    if status == "running":
        op = operation(core, task)
        items: list[str] = op.get("qc", {}).get("checklist", [])
        open_items = [it for i, it in enumerate(items) if str(i) not in work.checklist]
        if any(v is False for v in work.checklist.values()):
            return "Fail the task with a defect reason: rework, scrap or use as is."
        if open_items:
            return "Check: " + open_items[0] + "."
        if op.get("qc", {}).get("weight") and not work.weight_ok:
            return "Place the item on the scale."
        return "Press Complete."
    return "Press Next."


def _pack_step(core: LineContext, task: Row, work: Work) -> str:
    missing = missing_units(core, task, work)
    if missing:
        return "Scan unit " + ", ".join(missing) + "."
    materials = missing_materials(core, task, work)
    if materials:
        return "Scan " + ", ".join(materials) + "."
    if work.label_id is None:
        return "Place the parcel on the scale."
    return f"Apply the label and scan it ({work.label_id}) to confirm the parcel."


def view(svc: StationService, station_id: str) -> dict[str, Any]:
    """What the station screen shows."""
    cfg = svc.station(station_id)
    s = svc.session(station_id)
    task = svc.current(station_id)
    names = {o.badge: o.name for o in svc.core.config.operators}
    operator = s["operator"] if s is not None else None
    if task is not None:
        nxt = next_step(svc, station_id, task)
    else:
        nxt = "Scan your badge to log in." if operator is None else "Press Next."
    return {
        "station": station_id,
        "name": cfg.name,
        "capabilities": cfg.capabilities,
        "operator": operator,
        "operator_name": names.get(operator) if operator else None,
        "task": None if task is None else task_view(svc.core, task),
        "next": nxt,
        "queue": [_queue_item(t) for t in svc.queue(station_id, 10)],
    }


def _queue_item(task: Row) -> dict[str, Any]:
    return {
        "task_id": task["task_id"],
        "order_id": task["order_id"],
        "serial": task["serial"],
        "op": task["op"],
        "ship_by": task["ship_by"],
        "priority": task["priority"],
    }


def task_view(core: LineContext, task: Row) -> dict[str, Any]:
    """A task as the operator sees it: e-SOP, personalisation, materials, checks."""
    op = operation(core, task)
    work = Work.of(task)
    items: list[str] = op.get("qc", {}).get("checklist", [])
    shown: dict[str, Any] = {
        **_queue_item(task),
        "status": task["status"],
        "attempt": task["attempt"],
        "op_index": task["op_index"],
        "confirmed": work.confirmed,
        "pause_reason": work.pause_reason,
        "instructions": op.get("instructions", []),
        "checklist": [
            {"item": it, "passed": work.checklist.get(str(i))} for i, it in enumerate(items)
        ],
        "materials": [
            {
                "material": n.material,
                "qty": n.qty,
                "lot_tracked": n.lot_tracked,
                "suggested_lot": suggested_lot(core, task, n.material) if n.lot_tracked else None,
                "scanned": next((e for e in work.lots if e["material"] == n.material), None),
            }
            for n in needs(core, task)
        ],
        "weight_check": bool(op.get("qc", {}).get("weight")),
        "weight_g": work.weight_g,
        "machine_job": work.machine_job,
        "machine_done": work.machine_done,
    }
    if task["serial"] is not None:
        wo = core.store.one(
            "SELECT sku, sku_doc, personalization FROM work_orders WHERE wo_id = ?",
            (task["wo_id"],),
        )
        if wo is not None:
            personalization = json.loads(wo["personalization"])
            shown["sku"] = wo["sku"]
            shown["sku_name"] = json.loads(wo["sku_doc"])["name"]
            shown["personalization"] = personalization
            shown["params"] = {p: personalization.get(p) for p in op.get("params", [])}
    else:
        expected, tol = expected_weight(core, task["order_id"])
        shown.update(
            {
                "units": [
                    {"serial": u["serial"], "scanned": u["serial"] in work.units}
                    for u in live_units(core, task["order_id"])
                ],
                "expected_weight_g": expected,
                "tolerance_g": tol,
                "label_id": work.label_id,
                "weight_check": True,
            }
        )
    return shown


def awaiting_weight(svc: StationService, station_id: str) -> bool:
    """True when the station's task waits for a weight (the scale supplies it)."""
    task = svc.current(station_id)
    if task is None or task["status"] != "running":
        return False
    core = svc.core
    work = Work.of(task)
    if task["serial"] is None:
        return (
            work.label_id is None
            and not missing_units(core, task, work)
            and not missing_materials(core, task, work)
        )
    return bool(operation(core, task).get("qc", {}).get("weight")) and not work.weight_ok
