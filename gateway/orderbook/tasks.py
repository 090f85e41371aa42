"""Tasks through their life: read, handed to a station, started, paused, resumed, finished;
what they need and consume, what they record. Every change here is one step of the order
book, in the caller's transaction, and reports its event.

A task is a unit's operation, or an order's pack task (no serial) where its units come
together. The station desk (gateway/desk) decides *whether* an operator may do a thing
and tells them; this module does it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from cloud_sync.contract import Operation
from gateway.config.line import StationConfig
from gateway.i18n import t
from gateway.orderbook import parcels, picking, station_state
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.orderbook.station_state import EXECUTE, HELD, IDLE
from gateway.planner.scenarios import PACK_PER_EXTRA_UNIT_S
from gateway.store.documents import ParcelMode, Progress, SkuSnapshot, UsedLot
from gateway.store.rows import (
    OrderRow,
    OrderStatus,
    Outcome,
    ReservationRow,
    Severity,
    TaskRow,
    TaskStatus,
    UnitStatus,
    UnitWithSku,
    WorkOrderRow,
    WorkOrderStatus,
)

PACK = "pack"


# -- reading --------------------------------------------------------------------------------


def get(core: LineContext, task_id: int) -> TaskRow:
    task = find(core, task_id)
    if task is None:
        raise LookupError(f"no task {task_id}")
    return task


def find(core: LineContext, task_id: int) -> TaskRow | None:
    return core.store.fetch_one(TaskRow, "SELECT * FROM tasks WHERE task_id = ?", (task_id,))


def work_order(core: LineContext, wo_id: int) -> WorkOrderRow | None:
    return core.store.fetch_one(WorkOrderRow, "SELECT * FROM work_orders WHERE wo_id = ?", (wo_id,))


def order(core: LineContext, order_id: str) -> OrderRow | None:
    return core.store.fetch_one(OrderRow, "SELECT * FROM orders WHERE order_id = ?", (order_id,))


def operation(core: LineContext, task: TaskRow) -> Operation:
    """The routing operation of a task, from the work order's frozen snapshot.

    An order's pack task belongs to no single work order: its lines may follow different
    routings, so it takes the pack operation of the first line that has it.
    """
    if task.wo_id is not None:
        wo = work_order(core, task.wo_id)
        if wo is not None:
            return core.catalog.operations(wo.operations)[task.op_index]
    else:
        for frozen in core.store.texts(
            "SELECT operations FROM work_orders WHERE order_id = ? ORDER BY line_no",
            (task.order_id,),
        ):
            for op in core.catalog.operations(frozen):
                if op.op == task.op and op.capability == task.capability:
                    return op
    raise LookupError(f"no operation {task.op} for task {task.task_id}")


def checklist(op: Operation) -> list[str]:
    return list(op.qc.checklist)


def live_units(core: LineContext, order_id: str) -> list[UnitWithSku]:
    """The units that will be shipped: neither scrapped nor cancelled."""
    return core.store.fetch_all(
        UnitWithSku,
        "SELECT u.*, w.sku_doc FROM units u JOIN work_orders w ON w.wo_id = u.wo_id "
        "WHERE u.order_id = ? AND u.status IN (?, ?) ORDER BY u.serial",
        (order_id, UnitStatus.OPEN, UnitStatus.DONE),
    )


def expected_weight(core: LineContext, order_id: str) -> tuple[float, float]:
    """The parcel's expected weight and tolerance: sums over its live units."""
    docs = [u.snapshot() for u in live_units(core, order_id)]
    return (sum(d.unit_weight_g for d in docs), sum(d.weight_tolerance_g for d in docs))


def unit_snapshot(core: LineContext, task: TaskRow) -> SkuSnapshot | None:
    """The SKU snapshot of a unit task's work order."""
    wo = work_order(core, task.wo_id) if task.wo_id is not None else None
    return wo.snapshot() if wo is not None else None


@dataclass(frozen=True, slots=True)
class Need:
    """One material a task consumes."""

    material: str
    qty: float
    lot_tracked: bool
    container: bool = False  # a shipping container of the parcel (contract 1.1)


def needs(core: LineContext, task: TaskRow) -> list[Need]:
    """Materials consumed at this task: the unit's BOM at this operation, or for a pack
    task the sum over the order's units, except that BOM lines naming a container are
    not summed per unit: the parcel's containers are the need instead (its proposal as
    the scans changed it, or a line lead's decision; before its first unit, the proposal
    it would get: gateway/orderbook/parcels.py). A parcel packed as the BOM says sums
    them as any line."""
    parcel = None
    if task.serial is None:
        units = live_units(core, task.order_id)
        docs = [u.snapshot() for u in units]
        parcel = task.progress().parcel or parcels.plan(core, units)
    else:
        snapshot = unit_snapshot(core, task)
        docs = [] if snapshot is None else [snapshot]
    by_parcel = parcel is not None and parcel.mode is not ParcelMode.BOM
    qty: dict[str, float] = defaultdict(float)
    tracked: dict[str, bool] = {}
    boxes: set[str] = set()
    for doc in docs:
        for line in doc.bom:
            if line.op != task.op:
                continue
            if line.container:
                if by_parcel:
                    continue
                boxes.add(line.material)
            qty[line.material] += line.qty
            tracked[line.material] = line.lot_tracked
    out = [Need(m, q, tracked[m], m in boxes) for m, q in qty.items()]
    if by_parcel and parcel is not None:
        for material, n in parcels.container_needs(parcel).items():
            found = core.catalog.materials.get(material)
            out.append(Need(material, float(n), found is not None and found.lot_tracked, True))
    return out


def reservations(core: LineContext, task: TaskRow) -> list[ReservationRow]:
    if task.serial is None:
        return core.store.fetch_all(
            ReservationRow,
            "SELECT * FROM reservations WHERE order_id = ? AND op = ?",
            (task.order_id, task.op),
        )
    return core.store.fetch_all(
        ReservationRow,
        "SELECT * FROM reservations WHERE serial = ? AND op = ?",
        (task.serial, task.op),
    )


def suggested_lot(core: LineContext, task: TaskRow, material: str) -> str | None:
    """The lot reserved for this task (first-expiry-first-out at kitting)."""
    for r in reservations(core, task):
        if r.material == material and r.lot:
            return r.lot
    need = next((n for n in needs(core, task) if n.material == material), None)
    if need is None:
        return None
    return core.ledger.fefo(
        material, need.qty, core.today(), core.config.policies.lot_expiry_margin_days
    )


def task_ref(task: TaskRow) -> dict[str, Any]:
    """The fields every task event carries."""
    return {"task_id": task.task_id, "serial": task.serial, "op": task.op, "station": task.station}


# -- the lifecycle --------------------------------------------------------------------------


def save_progress(core: LineContext, task_id: int, progress: Progress) -> None:
    core.store.conn.execute(
        "UPDATE tasks SET work = ? WHERE task_id = ?", (progress.dump(), task_id)
    )


def dispatch(core: LineContext, task: TaskRow, station: StationConfig, operator: str) -> TaskRow:
    """Hand ``task`` to a station; a unit's first operation starts unconfirmed (its traveller
    is printed and then scanned), a later one too (the unit must be fetched)."""
    progress = Progress(confirmed=task.op_index == 0)
    core.store.conn.execute(
        "UPDATE tasks SET status = ?, station = ?, operator = ?, machine = ?, "
        "dispatched_at = ?, work = ? WHERE task_id = ?",
        (
            TaskStatus.DISPATCHED,
            station.id,
            operator,
            station.machine_id,
            core.now_iso(),
            progress.dump(),
            task.task_id,
        ),
    )
    task = get(core, task.task_id)
    core.emit("task.dispatched", task_ref(task), task.order_id)
    return task


def undispatch(core: LineContext, task: TaskRow) -> None:
    """Put a dispatched task back in the queue; its unit keeps its reservations."""
    core.store.conn.execute(
        "UPDATE tasks SET status = ?, station = NULL, work = '{}' WHERE task_id = ?",
        (TaskStatus.READY, task.task_id),
    )


def start(core: LineContext, task: TaskRow, operator: str) -> TaskRow:
    core.store.conn.execute(
        "UPDATE tasks SET status = ?, operator = ?, started_at = coalesce(started_at, ?) "
        "WHERE task_id = ?",
        (TaskStatus.RUNNING, operator, core.now_iso(), task.task_id),
    )
    task = get(core, task.task_id)
    core.emit(
        "task.started",
        {**task_ref(task), "operator": operator, "machine": task.machine},
        task.order_id,
    )
    station_state.follow_tasks(core, task.station, EXECUTE)
    return task


def pause(core: LineContext, task: TaskRow, reason: str) -> None:
    progress = task.progress()
    progress.pause_reason = reason
    core.store.conn.execute(
        "UPDATE tasks SET status = ?, work = ? WHERE task_id = ?",
        (TaskStatus.PAUSED, progress.dump(), task.task_id),
    )
    core.emit("task.paused", {**task_ref(task), "reason": reason}, task.order_id)
    station_state.follow_tasks(core, task.station, HELD, reason)


def resume(core: LineContext, task: TaskRow, operator: str | None, note: str | None) -> TaskRow:
    """Lift a pause: by the operator (``operator``), or by the gateway for a hold it put
    (a machine fault cleared: ``note`` says so)."""
    progress = task.progress()
    reason, progress.pause_reason = progress.pause_reason, None
    core.store.conn.execute(
        "UPDATE tasks SET status = ?, operator = coalesce(?, operator), work = ? WHERE task_id = ?",
        (TaskStatus.RUNNING, operator, progress.dump(), task.task_id),
    )
    data: dict[str, Any] = {
        **task_ref(task),
        "operator": operator or task.operator,
        "paused_for": reason,
    }
    if note is not None:
        data["note"] = note
    core.emit("task.resumed", data, task.order_id)
    if operator is not None:
        station_state.follow_tasks(core, task.station, EXECUTE)
    return get(core, task.task_id)


def consume(core: LineContext, task: TaskRow, progress: Progress) -> list[UsedLot]:
    """Record what the attempt used (``material.consumed``); returns the lots."""
    now = core.now_iso()
    lots: list[UsedLot] = []
    for entry in progress.lots:
        lot = entry.lot or ""
        core.store.conn.execute(
            "INSERT INTO consumption (ts, material, lot, qty, serial, task_id, order_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now, entry.material, lot, entry.qty, task.serial, task.task_id, task.order_id),
        )
        core.ledger.adjust(entry.material, lot, -entry.qty)
        if task.station is not None:  # what was brought to the station goes down
            picking.consume(core, task.station, entry.material, entry.lot, entry.qty)
        core.emit(
            "material.consumed",
            {
                "material": entry.material,
                "lot": entry.lot,
                "qty": entry.qty,
                "serial": task.serial,
                "task_id": task.task_id,
            },
            task.order_id,
        )
        lots.append(UsedLot(material=entry.material, lot=entry.lot, qty=entry.qty))
    return lots


def release_reservations(core: LineContext, task: TaskRow) -> None:
    """The task's materials were consumed (or its unit is gone): free what was held."""
    for r in reservations(core, task):
        core.ledger.adjust(r.material, r.lot, r.qty)
        core.store.conn.execute("DELETE FROM reservations WHERE id = ?", (r.id,))


def release_unit(core: LineContext, serial: str) -> None:
    """A unit leaves the line (scrapped, or its order cancelled): free all it held,
    including what was held for it at the order's pack task."""
    for r in core.store.fetch_all(
        ReservationRow, "SELECT * FROM reservations WHERE serial = ?", (serial,)
    ):
        core.ledger.adjust(r.material, r.lot, r.qty)
    core.store.conn.execute("DELETE FROM reservations WHERE serial = ?", (serial,))


def record_attempt(
    core: LineContext,
    task: TaskRow,
    outcome: Outcome,
    lots: list[UsedLot],
    reason: str | None = None,
) -> None:
    sku, standard_s, setup = measure(core, task)
    setup_s = 0.0
    if is_changeover(core, task, setup) and task.dispatched_at and task.started_at:
        # The time from taking the task to starting it went on changing over (ISO 22400
        # AUST).
        setup_s = max(
            0.0,
            (
                datetime.fromisoformat(task.started_at) - datetime.fromisoformat(task.dispatched_at)
            ).total_seconds(),
        )
    core.store.conn.execute(
        "INSERT INTO attempts (task_id, order_id, serial, op, attempt, station, operator, "
        "machine, started_at, ended_at, outcome, lots, reason, sku, standard_s, setup, "
        "dispatched_at, setup_s) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task.task_id,
            task.order_id,
            task.serial,
            task.op,
            task.attempt,
            task.station,
            task.operator,
            task.machine,
            task.started_at,
            core.now_iso(),
            outcome,
            json.dumps([lot.model_dump() for lot in lots]),
            reason,
            sku,
            standard_s,
            setup,
            task.dispatched_at,
            setup_s,
        ),
    )


def is_changeover(core: LineContext, task: TaskRow, setup: str | None) -> bool:
    """Whether ``task``, run with ``setup`` (:func:`measure`), changes its station over: the
    station ran another setup before, or none yet."""
    if setup is None or task.station is None:
        return False
    before = core.store.texts(
        "SELECT coalesce(setup, '') FROM attempts WHERE station = ? ORDER BY id DESC LIMIT 1",
        (task.station,),
    )
    return not before or before[0] != setup


def measure(core: LineContext, task: TaskRow) -> tuple[str | None, float | None, str | None]:
    """(SKU, standard time, setup value) of a task, as the planner reckons them
    (gateway/planning/line_problem.py): a unit's operation takes its routing's run time; an
    order's pack task the longest pack time of its lines plus a little per extra unit."""
    if task.wo_id is not None:
        wo = work_order(core, task.wo_id)
        if wo is None:
            return None, None, None
        op = core.catalog.operations(wo.operations)[task.op_index]
        person = wo.personalization() if wo.personalization_doc != "{}" else {}
        value = person.get(op.setup_key) if op.setup_key else None
        setup = str(value) if value not in (None, "") else None
        return wo.sku, float(op.run_s), setup
    pack_s = 0.0
    for frozen in core.store.texts(
        "SELECT operations FROM work_orders WHERE order_id = ?", (task.order_id,)
    ):
        for op in core.catalog.operations(frozen):
            if op.capability == task.capability:
                pack_s = max(pack_s, float(op.run_s))
    units = len(live_units(core, task.order_id))
    return None, pack_s + PACK_PER_EXTRA_UNIT_S * max(0, units - 1), None


def record_quality(
    core: LineContext,
    task: TaskRow,
    check: str,
    passed: bool,
    measured: Any,
    extra: dict[str, Any],
) -> None:
    core.store.conn.execute(
        "INSERT INTO quality (ts, task_id, order_id, serial, check_kind, passed, measured, "
        "station, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            core.now_iso(),
            task.task_id,
            task.order_id,
            task.serial,
            check,
            int(passed),
            json.dumps(measured, ensure_ascii=False),
            task.station,
            task.operator,
        ),
    )
    core.emit(
        "quality.checked",
        {
            "task_id": task.task_id,
            "serial": task.serial,
            "check": check,
            "passed": passed,
            "measured": measured,
            "op": task.op,
            **extra,
        },
        task.order_id,
    )
    if task.station is not None:
        _quality_streak(core, task.station, passed)


def _quality_streak(core: LineContext, station: str, passed: bool) -> None:
    """The ``quality`` alarm of ``station``: raised when its last [alarms]
    quality_failures checks all failed, cleared by the next that passes."""
    alarm_id = f"quality:{station}"
    if passed:
        clear_alarm(core, alarm_id, f"a quality check passed at {station}")
        return
    n = core.config.alarms.quality_failures
    last = core.store.texts(
        "SELECT passed FROM quality WHERE station = ? ORDER BY id DESC LIMIT ?", (station, n)
    )
    if len(last) == n and all(p == "0" for p in last):
        raise_alarm(
            core,
            alarm_id,
            "quality",
            station,
            Severity.MAJOR,
            t("{n} quality checks in a row failed at {station}", n=n, station=station),
        )


def complete(core: LineContext, task: TaskRow, progress: Progress) -> tuple[str, list[UsedLot]]:
    """The common end of every task: consume what was scanned, free what was held, record
    the attempt, mark it done and report ``task.completed``; returns (time, lots)."""
    lots = consume(core, task, progress)
    release_reservations(core, task)
    now = core.now_iso()
    record_attempt(core, task, Outcome.COMPLETED, lots)
    core.store.conn.execute(
        "UPDATE tasks SET status = ?, completed_at = ? WHERE task_id = ?",
        (TaskStatus.DONE, now, task.task_id),
    )
    station_state.follow_tasks(core, task.station, IDLE)
    core.emit(
        "task.completed",
        {
            **task_ref(task),
            "operator": task.operator,
            "machine": task.machine,
            "lots": [lot.model_dump() for lot in lots],
            "started_at": task.started_at,
            "completed_at": now,
            "attempt": task.attempt,
        },
        task.order_id,
    )
    return now, lots


def record_checklist(
    core: LineContext, task: TaskRow, progress: Progress, items: list[str]
) -> None:
    """The checklist's answers as one quality check (when the operation has one)."""
    if items and progress.checklist:
        answers = {items[int(k)]: v for k, v in progress.checklist.items()}
        record_quality(core, task, "checklist", all(answers.values()), answers, {})


class Advance(Enum):
    """What became of a unit when one of its tasks ended."""

    NEXT_OPERATION = "next operation"  # its next operation is ready
    TO_PACKING = "to packing"  # its last operation before packing was done
    ORDER_CANCELLED = "order cancelled"  # its order was cancelled meanwhile: it stops here


def advance_unit(core: LineContext, task: TaskRow) -> tuple[Advance, str | None]:
    """After a unit task is done: release the unit's next operation (returned by name), or
    complete the unit (and free its order's pack task when it was the last)."""
    assert task.serial is not None
    conn = core.store.conn
    found = order(core, task.order_id)
    if found is not None and found.status is OrderStatus.CANCELLED:
        conn.execute(
            "UPDATE units SET status = ? WHERE serial = ?", (UnitStatus.CANCELLED, task.serial)
        )
        conn.execute(
            "UPDATE tasks SET status = ? WHERE serial = ? AND status = ?",
            (TaskStatus.CANCELLED, task.serial, TaskStatus.BLOCKED),
        )
        release_unit(core, task.serial)
        return Advance.ORDER_CANCELLED, None
    nxt = core.store.fetch_one(
        TaskRow,
        "SELECT * FROM tasks WHERE serial = ? AND op_index > ? AND status = ? "
        "ORDER BY op_index LIMIT 1",
        (task.serial, task.op_index, TaskStatus.BLOCKED),
    )
    if nxt is not None:
        conn.execute(
            "UPDATE tasks SET status = ? WHERE task_id = ?", (TaskStatus.READY, nxt.task_id)
        )
        return Advance.NEXT_OPERATION, nxt.op
    conn.execute(
        "UPDATE units SET status = ?, completed_at = ? WHERE serial = ?",
        (UnitStatus.DONE, core.now_iso(), task.serial),
    )
    wo = work_order(core, task.wo_id) if task.wo_id is not None else None
    if wo is not None:
        core.emit(
            "unit.completed",
            {"serial": task.serial, "sku": wo.sku, "line_no": wo.line_no},
            task.order_id,
        )
        if not core.store.exists(
            "SELECT 1 FROM units WHERE wo_id = ? AND status = ?", (wo.wo_id, UnitStatus.OPEN)
        ):
            conn.execute(
                "UPDATE work_orders SET status = ? WHERE wo_id = ? AND status = ?",
                (WorkOrderStatus.DONE, wo.wo_id, WorkOrderStatus.OPEN),
            )
    release_pack_if_complete(core, task.order_id)
    return Advance.TO_PACKING, None


def release_pack_if_complete(core: LineContext, order_id: str) -> bool:
    """Make the order's pack task ready once every live unit is done."""
    units = live_units(core, order_id)
    if not units or any(u.unit.status is not UnitStatus.DONE for u in units):
        return False
    core.store.conn.execute(
        "UPDATE tasks SET status = ? WHERE order_id = ? AND serial IS NULL AND status = ?",
        (TaskStatus.READY, order_id, TaskStatus.BLOCKED),
    )
    return True


def pack_task(core: LineContext, order_id: str) -> TaskRow | None:
    """The order's pack task that is still to be done."""
    return core.store.fetch_one(
        TaskRow,
        "SELECT * FROM tasks WHERE order_id = ? AND serial IS NULL "
        "AND status NOT IN (?, ?) ORDER BY task_id DESC LIMIT 1",
        (order_id, TaskStatus.DONE, TaskStatus.CANCELLED),
    )


def next_of_unit(core: LineContext, serial: str) -> TaskRow | None:
    """A unit's first task that is not finished."""
    return core.store.fetch_one(
        TaskRow,
        "SELECT * FROM tasks WHERE serial = ? AND status NOT IN (?, ?, ?) "
        "ORDER BY op_index LIMIT 1",
        (serial, TaskStatus.DONE, TaskStatus.CANCELLED, TaskStatus.SCRAPPED),
    )


def ready_for(core: LineContext, capabilities: list[str], limit: int) -> list[TaskRow]:
    """Ready tasks of these capabilities by the dispatch rule: ship-by, then priority."""
    marks = ",".join("?" * len(capabilities))
    return core.store.fetch_all(
        TaskRow,
        f"SELECT * FROM tasks WHERE status = ? AND capability IN ({marks}) "
        "ORDER BY ship_by, priority DESC, task_id LIMIT ?",
        (TaskStatus.READY, *capabilities, limit),
    )
