"""Packing: the order's units come together, are weighed, labelled and confirmed.

The packer scans every unit of the order (a unit of another order, or one not finished,
is refused), scans the packing materials, puts the parcel on the scale (it must weigh the
sum of the units' weights within the sum of their tolerances), and the shipping label is
printed; scanning that label confirms the parcel and completes the order.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from gateway.desk.labels import print_shipping
from gateway.desk.replies import Refused, Reply
from gateway.desk.screen import after_finish, missing_materials, missing_units, next_step
from gateway.orderbook.context import LineContext
from gateway.orderbook.tasks import (
    Work,
    complete_task,
    expected_weight,
    live_units,
    machine_state,
    record_attempt,
    record_quality,
    save_work,
    task_ref,
    task_row,
)

if TYPE_CHECKING:
    from gateway.desk.service import StationService

Row = sqlite3.Row


def release_if_complete(core: LineContext, order_id: str) -> bool:
    """Make the order's pack task ready once every live unit is done."""
    units = live_units(core, order_id)
    if not units or any(u["status"] != "done" for u in units):
        return False
    core.store.conn.execute(
        "UPDATE tasks SET status = 'ready' WHERE order_id = ? AND serial IS NULL "
        "AND status = 'blocked'",
        (order_id,),
    )
    return True


def _pack_task(core: LineContext, order_id: str) -> Row | None:
    return core.store.one(
        "SELECT * FROM tasks WHERE order_id = ? AND serial IS NULL "
        "AND status NOT IN ('done', 'cancelled') ORDER BY task_id DESC LIMIT 1",
        (order_id,),
    )


def scan_unit(svc: StationService, station_id: str, unit: Row) -> Reply:
    """A unit scanned at a pack station: into the current parcel, or starting one."""
    core = svc.core
    serial, order_id = unit["serial"], unit["order_id"]
    cur = svc.current(station_id)
    if cur is not None and cur["order_id"] != order_id:
        raise Refused(
            "FOREIGN_UNIT",
            f"Unit {serial} belongs to order {order_id}, not to order {cur['order_id']} "
            "being packed here.",
            "Put it aside and go on with this parcel.",
        )
    if unit["status"] in ("scrapped", "cancelled"):
        raise Refused(
            "UNIT_CLOSED",
            f"Unit {serial} is {unit['status']}: it must not ship.",
            "Put it in the scrap bin and tell the line lead.",
        )
    if unit["status"] != "done":
        raise Refused(
            "UNIT_NOT_DONE",
            f"Unit {serial} has not finished its operations.",
            "Send it back to the line.",
        )
    task = cur if cur is not None else _pack_task(core, order_id)
    if task is None:
        raise Refused(
            "NOTHING_TO_PACK",
            f"Order {order_id} has nothing left to pack.",
            "Put the unit aside and tell the line lead.",
        )
    if cur is None:
        if task["status"] == "blocked":
            waiting = [u["serial"] for u in live_units(core, order_id) if u["status"] != "done"]
            raise Refused(
                "ORDER_INCOMPLETE",
                f"Order {order_id} is not complete: waiting for " + ", ".join(waiting) + ".",
                "Put the unit in the order's tote until the rest arrives.",
            )
        if task["status"] != "ready":
            raise Refused(
                "TAKEN",
                f"Order {order_id} is being packed at {task['station']}.",
                f"Take the unit to {task['station']}.",
            )
    work = Work.of(task)
    if serial in work.units:
        raise Refused(
            "ALREADY_SCANNED",
            f"Unit {serial} is already in this parcel.",
            next_step(svc, station_id, task),
        )
    with core.store.transaction():
        if cur is None:
            task = svc.dispatch(station_id, task)
            work = Work.of(task)
        work.units.append(serial)
        save_work(core, task["task_id"], work)
        if task["status"] == "dispatched":
            operator = svc.operator(station_id)
            core.store.conn.execute(
                "UPDATE tasks SET status = 'running', operator = ?, "
                "started_at = coalesce(started_at, ?) WHERE task_id = ?",
                (operator, core.now_iso(), task["task_id"]),
            )
            task = task_row(core, task["task_id"])
            core.emit(
                "task.started", {**task_ref(task), "operator": operator, "machine": None}, order_id
            )
            machine_state(core, station_id, "EXECUTE")
        task = task_row(core, task["task_id"])
    total = len(live_units(core, order_id))
    return Reply(
        f"Unit {serial} in the parcel ({len(work.units)} of {total}).",
        next_step(svc, station_id, task),
    )


def weigh(svc: StationService, station_id: str, task: Row, grams: float) -> Reply:
    core = svc.core
    if task["status"] != "running":
        raise Refused(
            "NOT_RUNNING", "Scan the order's units first.", next_step(svc, station_id, task)
        )
    work = Work.of(task)
    missing = missing_units(core, task, work)
    if missing:
        raise Refused(
            "UNITS_MISSING",
            "Not all units are in the parcel: missing " + ", ".join(missing) + ".",
            "Scan the missing units.",
        )
    materials = missing_materials(core, task, work)
    if materials:
        raise Refused(
            "MATERIALS_MISSING",
            "Scan the packing materials first: " + ", ".join(materials) + ".",
            "Scan " + ", ".join(materials) + ".",
        )
    if work.label_id is not None:
        raise Refused(
            "ALREADY_WEIGHED",
            f"The parcel is weighed and labelled ({work.label_id}).",
            f"Scan the shipping label {work.label_id}.",
        )
    expected, tol = expected_weight(core, task["order_id"])
    ok = abs(grams - expected) <= tol + 1e-9
    with core.store.transaction():
        record_quality(
            core, task, "weight", ok, grams, {"expected_g": expected, "tolerance_g": tol}
        )
        work.weight_g, work.weight_ok = grams, ok
        if ok:
            work.label_id = print_shipping(
                core, task["order_id"], station_id, len(work.units), grams
            )
        save_work(core, task["task_id"], work)
    if not ok:
        return Reply(
            f"Parcel weighs {grams:g} g; expected {expected:g} ± {tol:g} g.",
            "Check the parcel's contents (a missing or extra item?) and weigh again.",
            ok=False,
        )
    return Reply(
        f"Weight {grams:g} g OK. Shipping label {work.label_id} printed.",
        f"Apply the label and scan it ({work.label_id}) to confirm the parcel.",
        data={"label_id": work.label_id},
    )


def confirm_label(svc: StationService, station_id: str, label: Row) -> Reply:
    """The confirming scan of the shipping label completes the order."""
    core = svc.core
    task = svc.current(station_id)
    if task is None or task["serial"] is not None:
        raise Refused(
            "NO_PARCEL",
            f"Label {label['label_id']} is for order "
            f"{label['order_id']}, which is not being packed here.",
            "Scan the label at the station that packed the parcel.",
        )
    work = Work.of(task)
    if work.label_id != label["label_id"]:
        raise Refused(
            "WRONG_LABEL",
            f"Label {label['label_id']} belongs to order "
            f"{label['order_id']}; this parcel is order {task['order_id']}"
            + (f" with label {work.label_id}." if work.label_id else "."),
            "Remove the wrong label and apply the one printed for this parcel.",
        )
    order_id = task["order_id"]
    with core.store.transaction():
        now, _ = complete_task(core, task, work)
        svc.set_current(station_id, None)
        core.store.conn.execute(
            "UPDATE orders SET status = 'completed', completed_at = ?, weight_g = ?, "
            "label_id = ? WHERE order_id = ?",
            (now, work.weight_g, work.label_id, order_id),
        )
        ship_by = core.store.one("SELECT ship_by FROM orders WHERE order_id = ?", (order_id,))
        core.emit(
            "order.completed",
            {
                "units": sorted(work.units),
                "weight_g": work.weight_g,
                "label_id": work.label_id,
                "on_time": ship_by is not None and now <= ship_by["ship_by"],
            },
            order_id,
        )
    return Reply(
        f"Order {order_id} is packed and labelled: ready for the carrier.",
        after_finish(svc, station_id),
    )


def fail(svc: StationService, station_id: str, task: Row, reason: str, disposition: str) -> Reply:
    """A parcel that cannot ship as packed is repacked; its units are not scrapped here."""
    core = svc.core
    if disposition != "rework":
        raise Refused(
            "PACK_REWORK_ONLY",
            "At packing a parcel can only be repacked.",
            "Fail it with rework, or scrap a damaged unit at its station.",
        )
    operator = svc.operator(station_id)
    with core.store.transaction():
        record_attempt(core, task, "failed", [], reason)
        core.emit(
            "task.failed",
            {**task_ref(task), "operator": operator, "reason": reason, "disposition": disposition},
            task["order_id"],
        )
        machine_state(core, station_id, "IDLE")
        core.emit(
            "defect.recorded",
            {
                "serial": None,
                "op": task["op"],
                "reason": reason,
                "disposition": disposition,
                "task_id": task["task_id"],
                "station": station_id,
                "operator": operator,
            },
            task["order_id"],
        )
        core.store.conn.execute(
            "INSERT INTO defects (ts, task_id, order_id, serial, op, reason, disposition, "
            "station, operator) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            (
                core.now_iso(),
                task["task_id"],
                task["order_id"],
                task["op"],
                reason,
                disposition,
                station_id,
                operator,
            ),
        )
        core.store.conn.execute(
            "UPDATE tasks SET status = 'dispatched', attempt = attempt + 1, started_at = NULL, "
            "work = '{}' WHERE task_id = ?",
            (task["task_id"],),
        )
        task = task_row(core, task["task_id"])
    return Reply("Parcel to be repacked.", next_step(svc, station_id, task))
