"""What a station's screen shows, and the one next step it asks of the operator, in words.

Pure reads: the station API answers ``GET /api/stations/{id}`` from :func:`view`, and every
answer's ``next`` is :func:`next_text` read after the action (gateway/desk/service.py), so
the two never disagree. The rules behind the steps are in gateway/desk/steps.py.
"""

from __future__ import annotations

from typing import Any

from gateway.desk.session import Session
from gateway.desk.steps import Step, StepKind, step_of
from gateway.orderbook import tasks
from gateway.orderbook.context import LineContext
from gateway.store.documents import ScannedLot
from gateway.store.rows import TaskRow

SIGN_IN = "Scan your badge to log in."
TAKE_NEXT = "Press Next for the next task."
NOTHING_WAITING = "Nothing is waiting for this station."


def describe(task: TaskRow) -> str:
    if task.serial is None:
        return f"pack order {task.order_id}"
    return f"{task.op} of unit {task.serial} (order {task.order_id})"


def step_text(step: Step) -> str:
    """A step as the operator reads it."""
    kind, items = step.kind, ", ".join(step.items)
    match kind:
        case StepKind.PAUSED:
            return f"Paused ({step.detail}). Press Resume to continue."
        case StepKind.FETCH_UNIT:
            return f"Fetch unit {step.detail} and scan its traveller."
        case StepKind.SCAN_MATERIALS | StepKind.PACK_SCAN_MATERIALS:
            return f"Scan {items}."
        case StepKind.START:
            return "Press Start."
        case StepKind.CHECK:
            return f"Check: {step.detail}."
        case StepKind.FAIL_DEFECT:
            return "Fail the task with a defect reason: rework, scrap or use as is."
        case StepKind.WEIGH:
            return "Place the item on the scale."
        case StepKind.WEIGH_AGAIN:
            return "Check the item and weigh again, or fail the task."
        case StepKind.COMPLETE:
            return "Press Complete."
        case StepKind.PACK_SCAN_UNITS:
            return f"Scan unit {items}."
        case StepKind.PACK_WEIGH:
            return "Place the parcel on the scale."
        case StepKind.PACK_WEIGH_AGAIN:
            return "Check the parcel's contents (a missing or extra item?) and weigh again."
        case StepKind.PACK_SCAN_LABEL:
            return f"Apply the label and scan it ({step.detail}) to confirm the parcel."
        case StepKind.TAKE_NEXT:
            return TAKE_NEXT


def task_next(core: LineContext, task: TaskRow) -> str:
    """The next step of ``task`` in words."""
    return step_text(step_of(core, task))


def next_text(s: Session) -> str:
    """The one thing the operator at this station should do now."""
    if s.badge is None:
        return SIGN_IN
    task = s.current()
    if task is not None:
        return task_next(s.core, task)
    return TAKE_NEXT if s.queue(1) else NOTHING_WAITING


def view(s: Session) -> dict[str, Any]:
    """What the station screen shows."""
    task = s.current()
    badge = s.badge
    return {
        "station": s.station_id,
        "name": s.config.name,
        "capabilities": s.config.capabilities,
        "operator": badge,
        "operator_name": s.operator_name(),
        "task": None if task is None else task_view(s.core, task),
        "next": next_text(s),
        "queue": [_queue_item(t) for t in s.queue(10)],
    }


def _queue_item(task: TaskRow) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "order_id": task.order_id,
        "serial": task.serial,
        "op": task.op,
        "ship_by": task.ship_by,
        "priority": task.priority,
    }


def task_view(core: LineContext, task: TaskRow) -> dict[str, Any]:
    """A task as the operator sees it: e-SOP, personalisation, materials, checks."""
    op = tasks.operation(core, task)
    progress = task.progress()
    shown: dict[str, Any] = {
        **_queue_item(task),
        "status": task.status.value,
        "attempt": task.attempt,
        "op_index": task.op_index,
        "confirmed": progress.confirmed,
        "pause_reason": progress.pause_reason,
        "instructions": list(op.instructions),
        "checklist": [
            {"item": it, "passed": progress.checklist.get(str(i))}
            for i, it in enumerate(op.qc.checklist)
        ],
        "materials": [
            {
                "material": n.material,
                "qty": n.qty,
                "lot_tracked": n.lot_tracked,
                "suggested_lot": (
                    tasks.suggested_lot(core, task, n.material) if n.lot_tracked else None
                ),
                "scanned": _scanned(progress.scanned(n.material)),
            }
            for n in tasks.needs(core, task)
        ],
        "weight_check": op.qc.weight,
        "weight_g": progress.weight_g,
        "machine_job": progress.machine_job,
        "machine_done": progress.machine_done,
    }
    if task.serial is not None:
        wo = tasks.work_order(core, task.wo_id) if task.wo_id is not None else None
        if wo is not None:
            personalization = wo.personalization()
            shown["sku"] = wo.sku
            shown["sku_name"] = wo.snapshot().name
            shown["personalization"] = personalization
            shown["params"] = {p: personalization.get(p) for p in op.params}
    else:
        expected, tol = tasks.expected_weight(core, task.order_id)
        shown.update(
            {
                "units": [
                    {"serial": u.unit.serial, "scanned": u.unit.serial in progress.units}
                    for u in tasks.live_units(core, task.order_id)
                ],
                "expected_weight_g": expected,
                "tolerance_g": tol,
                "label_id": progress.label_id,
                "weight_check": True,
            }
        )
    return shown


def _scanned(entry: ScannedLot | None) -> dict[str, Any] | None:
    return entry.model_dump() if entry is not None else None
