"""Defects at a station: fail a task with a reason and a disposition.

Rework repeats the operation at the same station (the operator has the unit in hand);
scrap ends the unit, frees what it held and plans a replacement unit through kitting;
use as is completes the task with the defect on record.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

from gateway.desk import pack
from gateway.desk.replies import Refused, Reply
from gateway.desk.screen import after_finish, next_step
from gateway.orderbook.tasks import (
    Work,
    consume,
    machine_state,
    operation,
    record_attempt,
    record_quality,
    release_unit,
    task_ref,
    task_row,
)
from gateway.orderbook.workorders import PACK, kit_order, report_shortage, serial_prefix

if TYPE_CHECKING:
    from gateway.desk.service import StationService

Row = sqlite3.Row
DISPOSITIONS = ("rework", "scrap", "use_as_is")


def fail(svc: StationService, station_id: str, reason: str, disposition: str) -> Reply:
    """Record a defect on the station's current task and dispose of it."""
    core = svc.core
    operator = svc.operator(station_id)
    task = svc.require_current(station_id)
    if disposition not in DISPOSITIONS:
        raise Refused(
            "BAD_DISPOSITION",
            f"'{disposition}' is not a disposition.",
            "Choose rework, scrap or use as is.",
        )
    if not reason.strip():
        raise Refused("REASON_REQUIRED", "Give the defect reason.", "Choose a defect reason.")
    if task["status"] not in ("dispatched", "running", "paused"):
        raise Refused("NOT_IN_WORK", "The task is not in work.", next_step(svc, station_id, task))
    if task["serial"] is None:
        return pack.fail(svc, station_id, task, reason.strip(), disposition)
    reason = reason.strip()
    with core.store.transaction():
        conn = core.store.conn
        conn.execute("UPDATE tasks SET operator = ? WHERE task_id = ?", (operator, task["task_id"]))
        task = task_row(core, task["task_id"])
        work = Work.of(task)
        items: list[str] = operation(core, task).get("qc", {}).get("checklist", [])
        replacement = None
        if disposition != "use_as_is":
            lots = consume(core, task, work)
            if work.checklist:
                answers = {items[int(k)]: v for k, v in work.checklist.items()}
                record_quality(core, task, "checklist", all(answers.values()), answers, {})
            record_attempt(core, task, "failed", lots, reason)
            core.emit(
                "task.failed",
                {
                    **task_ref(task),
                    "operator": operator,
                    "reason": reason,
                    "disposition": disposition,
                },
                task["order_id"],
            )
            machine_state(core, station_id, "IDLE")
        if disposition == "scrap":
            replacement = _scrap(svc, task)
        core.emit(
            "defect.recorded",
            {
                "serial": task["serial"],
                "op": task["op"],
                "reason": reason,
                "disposition": disposition,
                "task_id": task["task_id"],
                "station": station_id,
                "operator": operator,
                "replacement": replacement,
            },
            task["order_id"],
        )
        conn.execute(
            "INSERT INTO defects (ts, task_id, order_id, serial, op, reason, disposition, "
            "station, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                core.now_iso(),
                task["task_id"],
                task["order_id"],
                task["serial"],
                task["op"],
                reason,
                disposition,
                station_id,
                operator,
            ),
        )
        if disposition == "rework":
            # The operator has the unit in hand: the repeat stays at this station.
            conn.execute(
                "UPDATE tasks SET status = 'dispatched', attempt = attempt + 1, "
                "started_at = NULL, work = ? WHERE task_id = ?",
                (Work(confirmed=True).dump(), task["task_id"]),
            )
            task = task_row(core, task["task_id"])
            return Reply(
                f"Defect recorded; {task['op']} of {task['serial']} is to be redone.",
                next_step(svc, station_id, task),
            )
        if disposition == "scrap":
            svc.set_current(station_id, None)
            tail = f" Replacement unit {replacement} is queued." if replacement else ""
            return Reply(
                f"Unit {task['serial']} scrapped.{tail}",
                "Put the scrapped item in the scrap bin. " + after_finish(svc, station_id),
            )
        # use as is: the defect is on record and the unit goes on as if it passed.
        message = svc.finish(station_id, task, work, [])
    return Reply("Defect recorded, used as is. " + message, after_finish(svc, station_id))


def _scrap(svc: StationService, task: Row) -> str | None:
    """Scrap the unit; unless its order is cancelled, a replacement unit is planned."""
    core = svc.core
    conn = core.store.conn
    serial = task["serial"]
    release_unit(core, serial)
    conn.execute(
        "UPDATE tasks SET status = 'scrapped' WHERE serial = ? AND status != 'done'", (serial,)
    )
    conn.execute("UPDATE units SET status = 'scrapped' WHERE serial = ?", (serial,))
    order = core.store.one(
        "SELECT status, ship_by, priority FROM orders WHERE order_id = ?", (task["order_id"],)
    )
    if order is None or order["status"] == "cancelled":
        return None
    unit = core.store.one("SELECT * FROM units WHERE serial = ?", (serial,))
    assert unit is not None
    wo = core.store.one("SELECT operations FROM work_orders WHERE wo_id = ?", (unit["wo_id"],))
    assert wo is not None
    new_serial = f"{serial_prefix(core)}-{core.store.next_counter('serial'):08d}"
    conn.execute(
        "INSERT INTO units (serial, order_id, wo_id, unit_index, status, kitted, replaces, "
        "created_at) VALUES (?, ?, ?, ?, 'open', 0, ?, ?)",
        (
            new_serial,
            unit["order_id"],
            unit["wo_id"],
            unit["unit_index"],
            serial,
            core.now_iso(),
        ),
    )
    for i, op in enumerate(json.loads(wo["operations"])):
        if op["capability"] == PACK:
            continue
        conn.execute(
            "INSERT INTO tasks (order_id, serial, wo_id, op, op_index, capability, status, "
            "ship_by, priority) VALUES (?, ?, ?, ?, ?, ?, 'blocked', ?, ?)",
            (
                unit["order_id"],
                new_serial,
                unit["wo_id"],
                op["op"],
                i,
                op["capability"],
                order["ship_by"],
                order["priority"],
            ),
        )
    short = kit_order(core, unit["order_id"])
    if short:
        report_shortage(core, unit["order_id"], short)
    return new_serial
