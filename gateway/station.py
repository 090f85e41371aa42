"""Everything an operator does at a station, as one service behind the station API.

Each action runs in one durable transaction: the reply the operator gets describes what
is committed. A refused action raises :class:`Refused` and changes nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import date
from typing import Any

from gateway import defects, pack, screen
from gateway.barcodes import ScanKind, classify
from gateway.config import StationConfig
from gateway.core import Core
from gateway.gs1 import Gs1Data
from gateway.labels import print_traveller
from gateway.replies import Refused, Reply
from gateway.screen import after_finish, describe, missing_materials, next_step
from gateway.tasks import (
    Need,
    Work,
    complete_task,
    live_units,
    machine_state,
    needs,
    operation,
    record_quality,
    release_unit,
    reservations,
    save_work,
    suggested_lot,
    task_ref,
    task_row,
)
from gateway.work import PACK

logger = logging.getLogger(__name__)

Row = sqlite3.Row


class StationService:
    """Operator actions for every station of the line."""

    def __init__(self, core: Core) -> None:
        self.core = core

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
        """Ready tasks this station can do, by the dispatch rule: ship-by, then priority."""
        caps = self.station(station_id).capabilities
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
        """One entry for everything a scanner delivers. ``symbology`` is the AIM
        identifier a scanner driver reports ("]C1", "]d2" …); the station API has none."""
        scan = classify(raw, symbology)
        if scan.kind is ScanKind.BADGE:
            return self.login(station_id, scan.code)
        if scan.kind is ScanKind.INVALID:
            raise Refused("BAD_CODE", scan.reason, scan.advice)
        self.operator(station_id)
        if scan.gs1 is not None:
            return self._scan_gs1(station_id, scan.gs1)
        code = scan.code
        core = self.core
        unit = core.store.one("SELECT * FROM units WHERE serial = ?", (code,))
        if unit is not None:
            return self._scan_found_unit(station_id, unit)
        label = core.store.one("SELECT * FROM labels WHERE label_id = ?", (code,))
        if label is not None and label["kind"] == "shipping":
            return pack.confirm_label(self, station_id, label)
        found = core.ledger.find_lot(code)
        if found is not None:
            return self._scan_material(station_id, found[0], code)
        if code in core.catalog.materials:
            return self._scan_material(station_id, code, None)
        raise Refused(
            "UNKNOWN_CODE",
            f"'{code}' is not a badge, traveller, lot or label known to this line.",
            "Check that you scanned the right label.",
        )

    def _scan_found_unit(self, station_id: str, unit: Row) -> Reply:
        if PACK in self.station(station_id).capabilities:
            return pack.scan_unit(self, station_id, unit)
        return self._scan_unit(station_id, unit)

    def _scan_gs1(self, station_id: str, label: Gs1Data) -> Reply:
        """A GS1 label: a lot label (lot in AI 10, our material id in AI 240), or a unit's
        traveller printed as GS1 (serial in AI 21)."""
        if label.lot is not None or label.additional_id is not None:
            return self._scan_lot_label(station_id, label)
        if label.serial is not None:
            unit = self.core.store.one("SELECT * FROM units WHERE serial = ?", (label.serial,))
            if unit is None:
                raise Refused(
                    "UNKNOWN_CODE",
                    f"Serial {label.serial} on this GS1 label is not a unit of this line.",
                    "Scan the traveller label on the item.",
                )
            return self._scan_found_unit(station_id, unit)
        if label.sscc is not None:
            # This line's shipping labels carry its own label ids, not SSCCs.
            raise Refused(
                "UNKNOWN_CODE",
                f"SSCC {label.sscc} is not a shipping label of this line "
                "(its parcels carry no SSCC).",
                "Scan the shipping label this station printed.",
            )
        raise Refused(
            "UNKNOWN_CODE",
            f"GS1 label {label.hri()} has no lot (10), material id (240) or serial (21) "
            "that this line tracks.",
            "Check that you scanned the right label.",
        )

    def _scan_lot_label(self, station_id: str, label: Gs1Data) -> Reply:
        """The material is AI 240: the catalog maps no GTINs, so a label without it cannot
        be placed. The lot and its expiry must agree with the stock record."""
        core = self.core
        material, lot = label.additional_id, label.lot
        if material is None:
            raise Refused(
                "MATERIAL_ID_MISSING",
                f"Lot label {label.hri()} does not name the material: this line needs its "
                "material id in AI (240), as the catalog does not map GTINs to materials.",
                "Ask the line lead for a lot label with the material id in AI (240).",
            )
        if material not in core.catalog.materials:
            raise Refused(
                "UNKNOWN_CODE",
                f"Material {material} on this GS1 label is not in this line's catalog.",
                "Check that you scanned the right label.",
            )
        if lot is not None and core.ledger.lot(material, lot) is None:
            found = core.ledger.find_lot(lot)
            if found is not None:
                raise Refused(
                    "LABEL_MISMATCH",
                    f"The label says lot {lot} is {material}; the stock record has it as "
                    f"{found[0]}.",
                    "Put it aside and tell the line lead: the label does not match the stock.",
                )
        return self._scan_material(station_id, material, lot, label.expiry(core.today()))

    def _scan_unit(self, station_id: str, unit: Row) -> Reply:
        core = self.core
        serial = unit["serial"]
        cur = self.current(station_id)
        if cur is not None and cur["serial"] == serial:
            if cur["status"] == "dispatched" and not Work.of(cur).confirmed:
                work = Work.of(cur)
                work.confirmed = True
                with core.store.transaction():
                    save_work(core, cur["task_id"], work)
            return Reply(f"Unit {serial} confirmed.", next_step(self, station_id, cur))
        if cur is not None and cur["status"] in ("running", "paused"):
            raise Refused(
                "BUSY",
                f"Unit {cur['serial']} is still in work here ({cur['op']}).",
                "Complete, pause or fail it before taking another unit.",
            )
        if unit["status"] != "open":
            raise Refused(
                "UNIT_CLOSED",
                f"Unit {serial} is {unit['status']}.",
                "Put it aside and tell the line lead.",
            )
        caps = self.station(station_id).capabilities
        task = core.store.one(
            "SELECT * FROM tasks WHERE serial = ? AND status NOT IN "
            "('done', 'cancelled', 'scrapped') ORDER BY op_index LIMIT 1",
            (serial,),
        )
        if task is None:
            raise Refused(
                "NOTHING_TO_DO",
                f"Unit {serial} has no work left before packing.",
                "Take it to packing.",
            )
        if task["capability"] not in caps:
            raise Refused(
                "WRONG_STATION",
                f"Unit {serial} needs {task['op']} next, which is not done at this station.",
                f"Take it to a {task['capability']} station.",
            )
        if task["status"] == "blocked":
            raise Refused(
                "NOT_READY",
                f"Unit {serial} is waiting for materials.",
                "Put it aside; it is released when stock arrives.",
            )
        if task["status"] != "ready" and task["station"] != station_id:
            raise Refused(
                "TAKEN",
                f"Unit {serial} is assigned to {task['station']}.",
                f"Take it to {task['station']}.",
            )
        with core.store.transaction():
            if cur is not None:
                self._undispatch(cur)
            task = self.dispatch(station_id, task)
            work = Work.of(task)
            work.confirmed = True
            save_work(core, task["task_id"], work)
            task = task_row(core, task["task_id"])
        return Reply(
            f"Unit {serial}: {task['op']} for order {task['order_id']}.",
            next_step(self, station_id, task),
            data={"task_id": task["task_id"]},
        )

    def _scan_material(
        self, station_id: str, material: str, lot: str | None, label_expiry: date | None = None
    ) -> Reply:
        """``label_expiry``: the expiry a GS1 lot label states (AI 17), checked against
        the stock record."""
        core = self.core
        task = self.require_current(station_id)
        if task["status"] not in ("dispatched", "running", "paused"):
            raise Refused("NO_TASK", "There is no task in work here.", "Press Next.")
        required = {n.material: n for n in needs(core, task)}
        need = required.get(material)
        what = lot or material
        if need is None:
            wanted = ", ".join(sorted(required)) or "no material"
            raise Refused(
                "WRONG_MATERIAL",
                f"Wrong material: {what} is {material}, which is not used at "
                f"{task['op']}. This step needs {wanted}.",
                "Put it back and scan the right material.",
            )
        work = Work.of(task)
        if any(e["material"] == material for e in work.lots):
            raise Refused(
                "ALREADY_SCANNED",
                f"{material} is already recorded for this task.",
                next_step(self, station_id, task),
            )
        suggestion = suggested_lot(core, task, material)
        if need.lot_tracked and lot is None:
            raise Refused(
                "LOT_REQUIRED",
                f"{material} is lot-tracked: scan its lot label, not the material code.",
                f"Scan lot {suggestion}." if suggestion else "Scan the lot label.",
            )
        note = ""
        if lot is not None:
            bal = core.ledger.lot(material, lot)
            today = core.today()
            margin = core.config.policies.lot_expiry_margin_days
            use = (
                f"Use lot {suggestion} (first to expire)."
                if suggestion
                else "Ask the line lead for a usable lot."
            )
            if bal is None:
                raise Refused("UNKNOWN_LOT", f"Lot {lot} is not in this line's stock.", use)
            if label_expiry is not None and label_expiry != bal.expires:
                recorded = f"on {bal.expires}" if bal.expires else "never"
                raise Refused(
                    "LABEL_MISMATCH",
                    f"The label says lot {lot} expires on {label_expiry}; the stock record "
                    f"says it expires {recorded}.",
                    "Put it aside and tell the line lead: the label does not match the stock.",
                )
            if not bal.usable(today, margin):
                raise Refused(
                    "EXPIRED_LOT",
                    f"Lot {lot} of {material} expired on {bal.expires}.",
                    "Put it aside. " + use,
                )
            if lot != suggestion:
                held = sum(
                    r["qty"]
                    for r in reservations(core, task)
                    if r["material"] == material and r["lot"] == lot
                )
                if bal.free + held < need.qty - 1e-9:
                    raise Refused(
                        "LOT_EMPTY",
                        f"Lot {lot} has only {bal.free:g} left, not enough for {need.qty:g}.",
                        use,
                    )
                if suggestion:
                    note = f" Note: lot {suggestion} expires first and should be used first."
        with core.store.transaction():
            if lot is not None and lot != suggestion:
                self._move_reservation(task, material, lot, need)
            work.lots.append({"material": material, "lot": lot, "qty": need.qty})
            save_work(core, task["task_id"], work)
            task = task_row(core, task["task_id"])
        return Reply(
            f"{what} accepted for {material} ({need.qty:g}).{note}",
            next_step(self, station_id, task),
        )

    def _move_reservation(self, task: Row, material: str, lot: str, need: Need) -> None:
        core = self.core
        for r in reservations(core, task):
            if r["material"] == material:
                core.ledger.adjust(material, r["lot"], float(r["qty"]))
                core.store.conn.execute("DELETE FROM reservations WHERE id = ?", (r["id"],))
        serials = (
            [task["serial"]]
            if task["serial"] is not None
            else [u["serial"] for u in live_units(core, task["order_id"])]
        )
        share = need.qty / len(serials)
        for serial in serials:
            core.store.conn.execute(
                "INSERT INTO reservations (order_id, serial, op, material, lot, qty) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (task["order_id"], serial, task["op"], material, lot, share),
            )
        core.ledger.adjust(material, lot, -need.qty)
        core.ledger_touched()

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

    def _undispatch(self, task: Row) -> None:
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
        completes with the defect on record (see :mod:`gateway.defects`)."""
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
