"""Reading and finishing tasks: requirements, the current attempt's work, consumption.

Shared by the operator actions of :mod:`gateway.desk.service` and :mod:`gateway.desk.pack`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from gateway.orderbook.context import LineContext

Row = sqlite3.Row


@dataclass
class Work:
    """What the operator has done in the current attempt of a task (the ``work`` column)."""

    lots: list[dict[str, Any]] = field(default_factory=list)
    checklist: dict[str, bool] = field(default_factory=dict)
    weight_g: float | None = None
    weight_ok: bool = False
    units: list[str] = field(default_factory=list)
    label_id: str | None = None
    confirmed: bool = False
    pause_reason: str | None = None
    machine_job: str | None = None  # the job downloaded to the station's machine
    machine_done: bool = False  # the machine reported the job finished

    @classmethod
    def of(cls, task: Row) -> Work:
        return cls(**json.loads(task["work"]))

    def dump(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Need:
    """One material a task consumes."""

    material: str
    qty: float
    lot_tracked: bool


def save_work(core: LineContext, task_id: int, work: Work) -> None:
    core.store.conn.execute("UPDATE tasks SET work = ? WHERE task_id = ?", (work.dump(), task_id))


def task_row(core: LineContext, task_id: int) -> Row:
    row = core.store.one("SELECT * FROM tasks WHERE task_id = ?", (task_id,))
    if row is None:
        raise LookupError(f"no task {task_id}")
    return row


def operation(core: LineContext, task: Row) -> dict[str, Any]:
    """The routing operation of a task, from the work order's frozen snapshot.

    An order's pack task belongs to no single work order: its lines may follow different
    routings, so it takes the pack operation of the first line that has it.
    """
    if task["wo_id"] is not None:
        rows = core.store.all(
            "SELECT operations FROM work_orders WHERE wo_id = ?", (task["wo_id"],)
        )
    else:
        rows = core.store.all(
            "SELECT operations FROM work_orders WHERE order_id = ? ORDER BY line_no",
            (task["order_id"],),
        )
    for row in rows:
        ops: list[dict[str, Any]] = json.loads(row["operations"])
        if task["wo_id"] is not None:
            chosen: dict[str, Any] = ops[task["op_index"]]
            return chosen
        for op in ops:
            if op["op"] == task["op"] and op["capability"] == task["capability"]:
                return op
    raise LookupError(f"no operation {task['op']} for task {task['task_id']}")


def live_units(core: LineContext, order_id: str) -> list[Row]:
    """The units that will be shipped: neither scrapped nor cancelled."""
    return core.store.all(
        "SELECT u.serial, u.status, w.sku_doc FROM units u JOIN work_orders w "
        "ON w.wo_id = u.wo_id WHERE u.order_id = ? AND u.status IN ('open', 'done') "
        "ORDER BY u.serial",
        (order_id,),
    )


def expected_weight(core: LineContext, order_id: str) -> tuple[float, float]:
    """The parcel's expected weight and tolerance: sums over its live units."""
    docs = [json.loads(u["sku_doc"]) for u in live_units(core, order_id)]
    return (sum(d["unit_weight_g"] for d in docs), sum(d["weight_tolerance_g"] for d in docs))


def needs(core: LineContext, task: Row) -> list[Need]:
    """Materials consumed at this task: the unit's BOM at this operation, or for a pack
    task the sum over the order's units."""
    if task["serial"] is None:
        docs = [json.loads(u["sku_doc"]) for u in live_units(core, task["order_id"])]
    else:
        row = core.store.one("SELECT sku_doc FROM work_orders WHERE wo_id = ?", (task["wo_id"],))
        docs = [] if row is None else [json.loads(row["sku_doc"])]
    qty: dict[str, float] = defaultdict(float)
    tracked: dict[str, bool] = {}
    for doc in docs:
        for line in doc["bom"]:
            if line["op"] == task["op"]:
                qty[line["material"]] += line["qty"]
                tracked[line["material"]] = line["lot_tracked"]
    return [Need(m, q, tracked[m]) for m, q in qty.items()]


def reservations(core: LineContext, task: Row) -> list[Row]:
    if task["serial"] is None:
        return core.store.all(
            "SELECT * FROM reservations WHERE order_id = ? AND op = ?",
            (task["order_id"], task["op"]),
        )
    return core.store.all(
        "SELECT * FROM reservations WHERE serial = ? AND op = ?", (task["serial"], task["op"])
    )


def suggested_lot(core: LineContext, task: Row, material: str) -> str | None:
    """The lot reserved for this task (first-expiry-first-out at kitting)."""
    for r in reservations(core, task):
        if r["material"] == material and r["lot"]:
            return str(r["lot"])
    need = next((n for n in needs(core, task) if n.material == material), None)
    if need is None:
        return None
    return core.ledger.fefo(
        material, need.qty, core.today(), core.config.policies.lot_expiry_margin_days
    )


def consume(core: LineContext, task: Row, work: Work) -> list[dict[str, Any]]:
    """Record what the attempt used (``material.consumed``); returns the lots list."""
    now = core.now_iso()
    lots = []
    for entry in work.lots:
        lot = entry["lot"] or ""
        core.store.conn.execute(
            "INSERT INTO consumption (ts, material, lot, qty, serial, task_id, order_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                entry["material"],
                lot,
                entry["qty"],
                task["serial"],
                task["task_id"],
                task["order_id"],
            ),
        )
        core.ledger.adjust(entry["material"], lot, -float(entry["qty"]))
        core.emit(
            "material.consumed",
            {
                "material": entry["material"],
                "lot": entry["lot"],
                "qty": entry["qty"],
                "serial": task["serial"],
                "task_id": task["task_id"],
            },
            task["order_id"],
        )
        lots.append({"material": entry["material"], "lot": entry["lot"], "qty": entry["qty"]})
    return lots


def release_reservations(core: LineContext, task: Row) -> None:
    """The task's materials were consumed (or its unit is gone): free what was held."""
    for r in reservations(core, task):
        core.ledger.adjust(r["material"], r["lot"], float(r["qty"]))
        core.store.conn.execute("DELETE FROM reservations WHERE id = ?", (r["id"],))


def release_unit(core: LineContext, serial: str) -> None:
    """A unit leaves the line (scrapped, or its order cancelled): free all it held,
    including what was held for it at the order's pack task."""
    for r in core.store.all("SELECT * FROM reservations WHERE serial = ?", (serial,)):
        core.ledger.adjust(r["material"], r["lot"], float(r["qty"]))
    core.store.conn.execute("DELETE FROM reservations WHERE serial = ?", (serial,))


def record_attempt(
    core: LineContext,
    task: Row,
    outcome: str,
    lots: list[dict[str, Any]],
    reason: str | None = None,
) -> None:
    core.store.conn.execute(
        "INSERT INTO attempts (task_id, order_id, serial, op, attempt, station, operator, "
        "machine, started_at, ended_at, outcome, lots, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task["task_id"],
            task["order_id"],
            task["serial"],
            task["op"],
            task["attempt"],
            task["station"],
            task["operator"],
            task["machine"],
            task["started_at"],
            core.now_iso(),
            outcome,
            json.dumps(lots),
            reason,
        ),
    )


def machine_state(
    core: LineContext, station: str | None, state: str, reason: str | None = None
) -> None:
    """Move a station's state (PackML names) and report ``machine.state`` on a change.

    A station whose machine is online reports the machine's own states instead. Otherwise
    (a manual station, or its machine is offline) the state follows its tasks: a task
    running is EXECUTE, paused is HELD, none is IDLE, so OEE is defined for manual work too.
    """
    if station is None:
        return
    if station in core.live_machines:
        return  # its machine is online and reports its own state (gateway.floor.machines)
    row = core.store.one("SELECT machine_state FROM sessions WHERE station = ?", (station,))
    previous = (row["machine_state"] if row is not None else None) or "IDLE"
    if previous == state:
        return
    core.store.conn.execute(
        "INSERT INTO sessions (station, machine_state) VALUES (?, ?) "
        "ON CONFLICT(station) DO UPDATE SET machine_state = excluded.machine_state",
        (station, state),
    )
    cfg = core.config.stations.get(station)
    core.emit(
        "machine.state",
        {
            "machine": (cfg.machine_id if cfg is not None else None) or station,
            "station": station,
            "state": state,
            "previous": previous,
            "reason": reason,
            "synthesised": True,
        },
    )


def complete_task(core: LineContext, task: Row, work: Work) -> tuple[str, list[dict[str, Any]]]:
    """The common end of every task: consume what was scanned, free what was held, record
    the attempt, mark it done and report ``task.completed``; returns (time, lots)."""
    lots = consume(core, task, work)
    release_reservations(core, task)
    now = core.now_iso()
    record_attempt(core, task, "completed", lots)
    core.store.conn.execute(
        "UPDATE tasks SET status = 'done', completed_at = ? WHERE task_id = ?",
        (now, task["task_id"]),
    )
    machine_state(core, task["station"], "IDLE")
    core.emit(
        "task.completed",
        {
            **task_ref(task),
            "operator": task["operator"],
            "machine": task["machine"],
            "lots": lots,
            "started_at": task["started_at"],
            "completed_at": now,
            "attempt": task["attempt"],
        },
        task["order_id"],
    )
    return now, lots


def record_quality(
    core: LineContext, task: Row, check: str, passed: bool, measured: Any, extra: dict[str, Any]
) -> None:
    core.store.conn.execute(
        "INSERT INTO quality (ts, task_id, order_id, serial, check_kind, passed, measured, "
        "station, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            core.now_iso(),
            task["task_id"],
            task["order_id"],
            task["serial"],
            check,
            int(passed),
            json.dumps(measured, ensure_ascii=False),
            task["station"],
            task["operator"],
        ),
    )
    core.emit(
        "quality.checked",
        {
            "task_id": task["task_id"],
            "serial": task["serial"],
            "check": check,
            "passed": passed,
            "measured": measured,
            "op": task["op"],
            **extra,
        },
        task["order_id"],
    )


def task_ref(task: Row) -> dict[str, Any]:
    """The fields every task event carries."""
    return {
        "task_id": task["task_id"],
        "serial": task["serial"],
        "op": task["op"],
        "station": task["station"],
    }
