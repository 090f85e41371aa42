"""What a station's screen shows, and the one next step it asks of the operator, in words.

Pure reads: the station API answers ``GET /api/stations/{id}`` from :func:`view`, and every
answer's ``next`` is :func:`next_text` read after the action (gateway/desk/service.py), so
the two never disagree. The rules behind the steps are in gateway/desk/steps.py.
"""

from __future__ import annotations

from typing import Any

from gateway.desk.badges import LOGGED_OUT
from gateway.desk.session import Session
from gateway.desk.steps import Step, StepKind, step_of
from gateway.i18n import Lang, Param, Text, listing, t
from gateway.orderbook import picking, tasks
from gateway.orderbook.context import LineContext
from gateway.store.documents import ScannedLot
from gateway.store.rows import TaskRow, TaskStatus, UnitStatus

SIGN_IN = t("Scan your badge to log in.")
TAKE_NEXT = t("Press Next for the next task.")
NOTHING_WAITING = t("Nothing is waiting for this station.")
# The start of the pause reason the gateway writes when a machine faults (the floor's
# machines hold the task with it, and lift only the pauses that start so).
MACHINE_FAULT = "machine fault: "
# A task's or a unit's status as the operator reads it (in English: the status itself).
_STATUS_WORDS = {
    "blocked": t("blocked"),
    "ready": t("ready"),
    "dispatched": t("dispatched"),
    "running": t("running"),
    "paused": t("paused"),
    "done": t("done"),
    "cancelled": t("cancelled"),
    "scrapped": t("scrapped"),
    "open": t("open"),
}


def describe(task: TaskRow) -> Text:
    if task.serial is None:
        return t("pack order {order_id}", order_id=task.order_id)
    return t(
        "{op} of unit {serial} (order {order_id})",
        op=task.op,
        serial=task.serial,
        order_id=task.order_id,
    )


def status_word(status: TaskStatus | UnitStatus) -> Param:
    """``status`` in the operator's words."""
    return _STATUS_WORDS.get(status.value, status.value)


def pause_reason(reason: str | None) -> Param:
    """A pause reason as the operator reads it: the gateway's own in their language, an
    operator's as it was typed."""
    if reason == LOGGED_OUT:
        return t("operator logged out")
    if reason is not None and reason.startswith(MACHINE_FAULT):
        return t("machine fault: {why}", why=reason.removeprefix(MACHINE_FAULT))
    return str(reason)


def step_text(step: Step) -> Text:
    """A step as the operator reads it."""
    kind, items, detail = step.kind, listing(step.items), str(step.detail)
    match kind:
        case StepKind.PAUSED:
            return t(
                "Paused ({reason}). Press Resume to continue.", reason=pause_reason(step.detail)
            )
        case StepKind.FETCH_UNIT:
            return t("Fetch unit {serial} and scan its traveller.", serial=detail)
        case StepKind.SCAN_MATERIALS | StepKind.PACK_SCAN_MATERIALS:
            return t("Scan {items}.", items=items)
        case StepKind.START:
            return t("Press Start.")
        case StepKind.CHECK:
            return t("Check: {item}.", item=detail)
        case StepKind.FAIL_DEFECT:
            return t("Fail the task with a defect reason: rework, scrap or use as is.")
        case StepKind.WEIGH:
            return t("Place the item on the scale.")
        case StepKind.WEIGH_AGAIN:
            return t("Check the item and weigh again, or fail the task.")
        case StepKind.COMPLETE:
            return t("Press Complete.")
        case StepKind.PACK_SCAN_UNITS:
            return t("Scan unit {serials}.", serials=items)
        case StepKind.PACK_WAIT_LEAD:
            return t("{why} Wait for a line lead to choose the containers.", why=items)
        case StepKind.PACK_WEIGH:
            return t("Place the parcel on the scale.")
        case StepKind.PACK_WEIGH_AGAIN:
            return t("Check the parcel's contents (a missing or extra item?) and weigh again.")
        case StepKind.PACK_SCAN_LABEL:
            return t(
                "Apply the label and scan it ({label_id}) to confirm the parcel.", label_id=detail
            )
        case StepKind.TAKE_NEXT:
            return TAKE_NEXT


def task_next(core: LineContext, task: TaskRow) -> Text:
    """The next step of ``task`` in words."""
    return step_text(step_of(core, task))


def next_text(s: Session) -> Text:
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
    next_step = next_text(s)
    return {
        "station": s.station_id,
        "name": s.config.name,
        "capabilities": s.config.capabilities,
        "operator": badge,
        "operator_name": s.operator_name(),
        "task": None if task is None else task_view(s.core, task),
        "next": str(next_step),
        "next_zh": next_step.render(Lang.ZH),
        "queue": [_queue_item(queued) for queued in s.queue(10)],
        # What the warehouse was asked to bring here, and what arrived (gateway/orderbook/
        # picking.py).
        "picks": [
            line.model_dump(mode="json") for line in picking.station_lines(s.core, s.station_id)
        ],
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
        "instructions_i18n": {lang: list(steps) for lang, steps in op.instructions_i18n.items()},
        # The e-SOP's pictures as the gateway's own copies (gateway/floor/media.py keeps
        # them); one not fetched yet has no URL: the hub's is never shown to a station.
        "media": [
            {
                "sha256": m.sha256,
                "kind": m.kind,
                "caption": m.caption,
                "step": m.step,
                "url": f"/media/{m.sha256}" if m.sha256 in core.catalog.media_held else None,
                "pending": m.sha256 not in core.catalog.media_held,
            }
            for m in op.media
        ],
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
