"""Everything an operator does at a station, as one service behind the station API.

Each action runs in one durable transaction: the reply the operator gets describes what
is committed. A refused action raises :class:`Refused` and changes nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from gateway.config.line import StationConfig
from gateway.desk import defects, pack, scanning, screen
from gateway.desk.labels import print_traveller
from gateway.desk.replies import Refused, Reply
from gateway.desk.screen import after_finish, describe, missing_materials, next_step
from gateway.orderbook.context import LineContext
from gateway.orderbook.tasks import (
    Work,
    complete_task,
    machine_state,
    operation,
    record_quality,
    release_unit,
    save_work,
    task_ref,
    task_row,
)

logger = logging.getLogger(__name__)

Row = sqlite3.Row


class Sequencer(Protocol):
    """What orders a station's queue when the line is planned (gateway/planning/planner.py)."""

    def queue(self, station_id: str, capabilities: Sequence[str], limit: int) -> list[Row]: ...


class StationService:
    """Operator actions for every station of the line."""

    def __init__(self, core: LineContext) -> None:
        self.core = core
        # Set by the composition root when the planner runs; None: the dispatch rule.
        self.sequencer: Sequencer | None = None

    # -- lookups --------------------------------------------------------------------

    def station(self, station_id: str) -> StationConfig:
        cfg = self.core.config.stations.get(station_id)
        if cfg is None:
            raise KeyError(station_id)
        return cfg

    def session(self, station_id: str) -> Row | None:
        return self.core.store.one("SELECT * FROM sessions WHERE station = ?", (station_id,))

    def operator(self, station_id: str) -> str:
        s = self.session(station_id)
        if s is None or s["operator"] is None:
            raise Refused(
                "NOT_LOGGED_IN",
                "No operator is logged in at this station.",
                "Scan your badge to log in.",
            )
        return str(s["operator"])

    def current(self, station_id: str) -> Row | None:
        s = self.session(station_id)
        if s is None or s["task_id"] is None:
            return None
        return task_row(self.core, s["task_id"])

    def require_current(self, station_id: str) -> Row:
        task = self.current(station_id)
        if task is None:
            raise Refused(
                "NO_TASK",
                "There is no task at this station.",
                "Press Next for the next task, or scan a unit's traveller.",
            )
        return task

    def set_current(self, station_id: str, task_id: int | None) -> None:
        self.core.store.conn.execute(
            "INSERT INTO sessions (station, task_id) VALUES (?, ?) "
            "ON CONFLICT(station) DO UPDATE SET task_id = excluded.task_id",
            (station_id, task_id),
        )

    def queue(self, station_id: str, limit: int = 10) -> list[Row]:
        """Ready tasks this station can do: in the plan's order when the line is planned,
        else by the dispatch rule (ship-by, then priority)."""
        caps = self.station(station_id).capabilities
        if self.sequencer is not None:
            return self.sequencer.queue(station_id, caps, limit)
        marks = ",".join("?" * len(caps))
        return self.core.store.all(
            f"SELECT * FROM tasks WHERE status = 'ready' AND capability IN ({marks}) "
            "ORDER BY ship_by, priority DESC, task_id LIMIT ?",
            (*caps, limit),
        )

    # -- badge -------------------------------------------------------------------------

    def login(self, station_id: str, badge: str) -> Reply:
        cfg = self.station(station_id)
        known = {o.badge: o.name for o in self.core.config.operators}
        if badge not in known:
            raise Refused(
                "UNKNOWN_BADGE",
                f"Badge {badge} is not an operator of this line.",
                "Ask the line lead to add your badge.",
            )
        if cfg.operators is not None and badge not in cfg.operators:
            raise Refused(
                "NOT_PERMITTED",
                f"{known[badge]} may not work at {station_id}.",
                "Go to a station you are trained for, or ask the line lead.",
            )
        with self.core.store.transaction() as conn:
            elsewhere = conn.execute(
                "SELECT station FROM sessions WHERE operator = ? AND station != ?",
                (badge, station_id),
            ).fetchall()
            for (other,) in elsewhere:
                self._logout(other)
            s = self.session(station_id)
            if s is not None and s["operator"] not in (None, badge):
                self._logout(station_id)
            conn.execute(
                "INSERT INTO sessions (station, operator, login_at) VALUES (?, ?, ?) "
                "ON CONFLICT(station) DO UPDATE SET operator = excluded.operator, "
                "login_at = excluded.login_at",
                (station_id, badge, self.core.now_iso()),
            )
        task = self.current(station_id)
        nxt = (
            next_step(self, station_id, task)
            if task is not None
            else "Press Next for your first task."
        )
        return Reply(f"Welcome, {known[badge]}.", nxt)

    def logout(self, station_id: str) -> Reply:
        with self.core.store.transaction():
            paused = self._logout(station_id)
        return Reply(
            "Logged out." + (" The running task is paused." if paused else ""),
            "Scan a badge to log in.",
        )

    def _logout(self, station_id: str) -> bool:
        task = self.current(station_id)
        paused = False
        if task is not None and task["status"] == "running":
            self._pause(task, "operator logged out")
            paused = True
        self.core.store.conn.execute(
            "UPDATE sessions SET operator = NULL, login_at = NULL WHERE station = ?",
            (station_id,),
        )
        return paused

    # -- scan ----------------------------------------------------------------------

    def scan(self, station_id: str, raw: str, symbology: str | None = None) -> Reply:
        """One entry for everything a scanner delivers (see :mod:`gateway.desk.scanning`).
        ``symbology`` is the AIM identifier a scanner driver reports ("]C1", "]d2" …)."""
        return scanning.scan(self, station_id, raw, symbology)

    # -- dispatch ------------------------------------------------------------------------

    def next_task(self, station_id: str) -> Reply:
        """Take the head of this station's queue."""
        self.operator(station_id)
        cur = self.current(station_id)
        if cur is not None:
            return Reply(
                f"You still have {describe(cur)}.",
                next_step(self, station_id, cur),
                data={"task_id": cur["task_id"]},
            )
        head = self.queue(station_id, 1)
        if not head:
            return Reply(
                "Nothing to do at this station right now.",
                "Wait for the next task; the screen updates by itself.",
            )
        with self.core.store.transaction():
            task = self.dispatch(station_id, head[0])
        message = f"Next: {describe(task)}."
        if task["op_index"] == 0 and task["serial"] is not None:
            message += f" Traveller {task['serial']} printed: stick it on the item."
        return Reply(message, next_step(self, station_id, task), data={"task_id": task["task_id"]})

    def dispatch(self, station_id: str, task: Row) -> Row:
        """Hand ``task`` to the station: it becomes its current task (traveller printed at a
        first operation)."""
        core = self.core
        cfg = self.station(station_id)
        operator = self.operator(station_id)
        work = Work(confirmed=task["op_index"] == 0)
        core.store.conn.execute(
            "UPDATE tasks SET status = 'dispatched', station = ?, operator = ?, machine = ?, "
            "dispatched_at = ?, work = ? WHERE task_id = ?",
            (station_id, operator, cfg.machine_id, core.now_iso(), work.dump(), task["task_id"]),
        )
        self.set_current(station_id, task["task_id"])
        task = task_row(core, task["task_id"])
        core.emit("task.dispatched", task_ref(task), task["order_id"])
        if task["op_index"] == 0 and task["serial"] is not None:
            print_traveller(core, task["serial"], station_id)
        return task

    def undispatch(self, task: Row) -> None:
        """Put a dispatched task back in the queue; its unit keeps its reservations."""
        self.core.store.conn.execute(
            "UPDATE tasks SET status = 'ready', station = NULL, work = '{}' WHERE task_id = ?",
            (task["task_id"],),
        )

    # -- start / pause / resume -------------------------------------------------------

    def start(self, station_id: str) -> Reply:
        core = self.core
        operator = self.operator(station_id)
        task = self.require_current(station_id)
        if task["serial"] is None:
            raise Refused(
                "PACK_STARTS_BY_SCAN",
                "Packing starts when you scan the first unit.",
                next_step(self, station_id, task),
            )
        if task["status"] != "dispatched":
            raise Refused(
                "NOT_STARTABLE",
                f"This task is {task['status']}, not waiting to start.",
                next_step(self, station_id, task),
            )
        work = Work.of(task)
        if not work.confirmed:
            raise Refused(
                "CONFIRM_UNIT",
                f"Scan the traveller of unit {task['serial']} first, "
                "to be sure you have the right item.",
                f"Scan {task['serial']}.",
            )
        missing = missing_materials(self.core, task, work)
        if missing:
            raise Refused(
                "MATERIALS_MISSING",
                "Scan the materials before starting: " + ", ".join(missing) + ".",
                next_step(self, station_id, task),
            )
        with core.store.transaction():
            core.store.conn.execute(
                "UPDATE tasks SET status = 'running', operator = ?, "
                "started_at = coalesce(started_at, ?) WHERE task_id = ?",
                (operator, core.now_iso(), task["task_id"]),
            )
            task = task_row(core, task["task_id"])
            core.emit(
                "task.started",
                {**task_ref(task), "operator": operator, "machine": task["machine"]},
                task["order_id"],
            )
            machine_state(core, station_id, "EXECUTE")
        return Reply(
            f"Started {task['op']} of {task['serial']}.", next_step(self, station_id, task)
        )

    def pause(self, station_id: str, reason: str) -> Reply:
        self.operator(station_id)
        task = self.require_current(station_id)
        if task["status"] != "running":
            raise Refused(
                "NOT_RUNNING",
                "Only a running task can be paused.",
                next_step(self, station_id, task),
            )
        if not reason.strip():
            raise Refused(
                "REASON_REQUIRED", "Say why the task is paused.", "Choose a pause reason."
            )
        with self.core.store.transaction():
            self._pause(task, reason.strip())
        return Reply(f"Paused: {reason.strip()}.", "Press Resume when you continue.")

    def _pause(self, task: Row, reason: str) -> None:
        work = Work.of(task)
        work.pause_reason = reason
        self.core.store.conn.execute(
            "UPDATE tasks SET status = 'paused', work = ? WHERE task_id = ?",
            (work.dump(), task["task_id"]),
        )
        self.core.emit("task.paused", {**task_ref(task), "reason": reason}, task["order_id"])
        machine_state(self.core, task["station"], "HELD", reason)

    def pause_task(self, task: Row, reason: str) -> None:
        """Hold a running task for a reason that is not the operator's (a machine fault)."""
        with self.core.store.transaction():
            self._pause(task, reason)

    def resume_task(self, task: Row, note: str) -> None:
        """Lift a hold the gateway put on a task (the machine fault is cleared)."""
        work = Work.of(task)
        reason, work.pause_reason = work.pause_reason, None
        with self.core.store.transaction():
            self.core.store.conn.execute(
                "UPDATE tasks SET status = 'running', work = ? WHERE task_id = ?",
                (work.dump(), task["task_id"]),
            )
            self.core.emit(
                "task.resumed",
                {
                    **task_ref(task),
                    "operator": task["operator"],
                    "paused_for": reason,
                    "note": note,
                },
                task["order_id"],
            )

    def resume(self, station_id: str) -> Reply:
        operator = self.operator(station_id)
        task = self.require_current(station_id)
        if task["status"] != "paused":
            raise Refused(
                "NOT_PAUSED", "The task is not paused.", next_step(self, station_id, task)
            )
        work = Work.of(task)
        reason, work.pause_reason = work.pause_reason, None
        with self.core.store.transaction():
            self.core.store.conn.execute(
                "UPDATE tasks SET status = 'running', operator = ?, work = ? WHERE task_id = ?",
                (operator, work.dump(), task["task_id"]),
            )
            self.core.emit(
                "task.resumed",
                {**task_ref(task), "operator": operator, "paused_for": reason},
                task["order_id"],
            )
            machine_state(self.core, station_id, "EXECUTE")
        task = task_row(self.core, task["task_id"])
        return Reply("Resumed.", next_step(self, station_id, task))

    # -- quality ---------------------------------------------------------------------------

    def checklist(self, station_id: str, item: int | str, passed: bool) -> Reply:
        self.operator(station_id)
        task = self.require_current(station_id)
        if task["status"] != "running":
            raise Refused(
                "NOT_RUNNING",
                "Start the task before answering its checklist.",
                next_step(self, station_id, task),
            )
        items: list[str] = operation(self.core, task).get("qc", {}).get("checklist", [])
        index = _item_index(items, item)
        if index is None:
            raise Refused(
                "UNKNOWN_ITEM",
                f"'{item}' is not on this task's checklist.",
                "Answer the items shown on the screen.",
            )
        work = Work.of(task)
        work.checklist[str(index)] = passed
        with self.core.store.transaction():
            save_work(self.core, task["task_id"], work)
        task = task_row(self.core, task["task_id"])
        if not passed:
            return Reply(
                f"Check failed: {items[index]}.",
                "Fail the task with a defect reason: rework, scrap or use as is.",
                ok=False,
            )
        return Reply(f"Checked: {items[index]}.", next_step(self, station_id, task))

    def weight(self, station_id: str, grams: float) -> Reply:
        self.operator(station_id)
        task = self.require_current(station_id)
        if task["serial"] is None:
            return pack.weigh(self, station_id, task, grams)
        if not operation(self.core, task).get("qc", {}).get("weight"):
            raise Refused(
                "NO_WEIGHT_CHECK",
                "This step has no weight check.",
                next_step(self, station_id, task),
            )
        if task["status"] != "running":
            raise Refused(
                "NOT_RUNNING", "Start the task before weighing.", next_step(self, station_id, task)
            )
        row = self.core.store.one(
            "SELECT sku_doc FROM work_orders WHERE wo_id = ?", (task["wo_id"],)
        )
        doc = json.loads(row["sku_doc"]) if row is not None else {}
        expected, tol = doc.get("unit_weight_g", 0.0), doc.get("weight_tolerance_g", 0.0)
        ok = abs(grams - expected) <= tol + 1e-9
        work = Work.of(task)
        work.weight_g, work.weight_ok = grams, ok
        with self.core.store.transaction():
            save_work(self.core, task["task_id"], work)
            record_quality(
                self.core, task, "weight", ok, grams, {"expected_g": expected, "tolerance_g": tol}
            )
        task = task_row(self.core, task["task_id"])
        if ok:
            return Reply(
                f"Weight {grams:g} g is within {expected:g} ± {tol:g} g.",
                next_step(self, station_id, task),
            )
        return Reply(
            f"Weight {grams:g} g is outside {expected:g} ± {tol:g} g.",
            "Check the item and weigh again, or fail the task.",
            ok=False,
        )

    # -- complete / fail ---------------------------------------------------------------

    def complete(self, station_id: str) -> Reply:
        core = self.core
        self.operator(station_id)
        task = self.require_current(station_id)
        if task["serial"] is None:
            raise Refused(
                "SCAN_LABEL",
                "A parcel is completed by scanning its shipping label.",
                next_step(self, station_id, task),
            )
        if task["status"] != "running":
            raise Refused(
                "NOT_RUNNING",
                f"The task is {task['status']}; only a running task can be completed.",
                next_step(self, station_id, task),
            )
        work = Work.of(task)
        op = operation(core, task)
        items: list[str] = op.get("qc", {}).get("checklist", [])
        failed = [it for i, it in enumerate(items) if work.checklist.get(str(i)) is False]
        if failed:
            raise Refused(
                "CHECKLIST_FAILED",
                "A check failed: " + "; ".join(failed) + ".",
                "Fail the task with a defect reason: rework, scrap or use as is.",
            )
        unanswered = [it for i, it in enumerate(items) if str(i) not in work.checklist]
        if unanswered:
            raise Refused(
                "CHECKLIST_OPEN",
                "Answer the checklist first: " + "; ".join(unanswered) + ".",
                "Confirm each check on the screen.",
            )
        if op.get("qc", {}).get("weight") and not work.weight_ok:
            raise Refused(
                "WEIGHT_REQUIRED",
                "Weigh the item first: the weight must be in tolerance.",
                "Place the item on the scale.",
            )
        with core.store.transaction():
            message = self.finish(station_id, task, work, items)
        return Reply(message, after_finish(self, station_id))

    def finish(self, station_id: str, task: Row, work: Work, items: list[str]) -> str:
        """Complete a unit task: consume, check, report, release the next step."""
        core = self.core
        if items:
            answers = {items[int(k)]: v for k, v in work.checklist.items()}
            record_quality(core, task, "checklist", all(answers.values()), answers, {})
        complete_task(core, task, work)
        self.set_current(station_id, None)
        return f"{task['op']} of {task['serial']} completed." + self._advance(task)

    def _advance(self, task: Row) -> str:
        """Release the unit's next operation, or complete the unit (and free its pack)."""
        core = self.core
        conn = core.store.conn
        order = core.store.one("SELECT status FROM orders WHERE order_id = ?", (task["order_id"],))
        if order is not None and order["status"] == "cancelled":
            conn.execute(
                "UPDATE units SET status = 'cancelled' WHERE serial = ?", (task["serial"],)
            )
            conn.execute(
                "UPDATE tasks SET status = 'cancelled' WHERE serial = ? AND status = 'blocked'",
                (task["serial"],),
            )
            release_unit(core, task["serial"])
            return f" Order {task['order_id']} was cancelled: put the unit in the returns bin."
        nxt = core.store.one(
            "SELECT task_id, op FROM tasks WHERE serial = ? AND op_index > ? "
            "AND status = 'blocked' ORDER BY op_index LIMIT 1",
            (task["serial"], task["op_index"]),
        )
        if nxt is not None:
            conn.execute("UPDATE tasks SET status = 'ready' WHERE task_id = ?", (nxt["task_id"],))
            return f" Next for this unit: {nxt['op']}."
        unit = core.store.one(
            "SELECT u.serial, w.line_no, w.sku FROM units u JOIN work_orders w "
            "ON w.wo_id = u.wo_id WHERE u.serial = ?",
            (task["serial"],),
        )
        conn.execute(
            "UPDATE units SET status = 'done', completed_at = ? WHERE serial = ?",
            (core.now_iso(), task["serial"]),
        )
        if unit is not None:
            core.emit(
                "unit.completed",
                {"serial": unit["serial"], "sku": unit["sku"], "line_no": unit["line_no"]},
                task["order_id"],
            )
        pack.release_if_complete(core, task["order_id"])
        return " The unit goes to packing."

    def fail(self, station_id: str, reason: str, disposition: str) -> Reply:
        """A defect: rework repeats the operation, scrap plans a replacement unit, use as is
        completes with the defect on record (see :mod:`gateway.desk.defects`)."""
        return defects.fail(self, station_id, reason, disposition)

    # -- what next -------------------------------------------------------------------

    def view(self, station_id: str) -> dict[str, Any]:
        """What the station screen shows."""
        return screen.view(self, station_id)


def _item_index(items: list[str], item: int | str) -> int | None:
    if isinstance(item, int):
        return item if 0 <= item < len(items) else None
    try:
        return items.index(item)
    except ValueError:
        return None
