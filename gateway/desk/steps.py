"""What a task still needs before it can go on: the rules the desk refuses by and the one
next step the screen asks for.

The rules are here, in one place, so that a refusal ("scan the materials first") and the
screen's instruction ("Scan BLANK-TEE-WHT") always agree; gateway/desk/screen.py only
puts the step into words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.i18n import Text, t
from gateway.orderbook import parcels, tasks
from gateway.orderbook.context import LineContext
from gateway.store.documents import ParcelMode, Progress
from gateway.store.rows import TaskRow, TaskStatus


class StepKind(Enum):
    PAUSED = "paused"  # detail: the pause reason
    FETCH_UNIT = "fetch unit"  # detail: the serial whose traveller to scan
    SCAN_MATERIALS = "scan materials"  # items: materials still to scan (with their lot)
    START = "start"
    CHECK = "check"  # detail: the next checklist item
    FAIL_DEFECT = "fail with a defect"  # a check failed
    WEIGH = "weigh"
    WEIGH_AGAIN = "weigh again"  # the last weight was out of tolerance
    COMPLETE = "complete"
    PACK_SCAN_UNITS = "scan units"  # items: the order's units not in the parcel yet
    PACK_SCAN_MATERIALS = "scan packing materials"  # items
    PACK_WAIT_LEAD = "wait for a line lead"  # items: why no container was proposed
    PACK_WEIGH = "weigh parcel"
    PACK_WEIGH_AGAIN = "weigh parcel again"
    PACK_SCAN_LABEL = "scan shipping label"  # detail: the label id
    TAKE_NEXT = "take next"  # a finished task: the station takes the next


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    items: tuple[str | Text, ...] = ()
    detail: str | None = None


def missing_materials(core: LineContext, task: TaskRow, progress: Progress) -> list[str | Text]:
    """Materials of the task not scanned yet, with the lot to use for lot-tracked ones; a
    parcel's containers with how many ("POLYBAG-L ×1"). A container scanned fills every
    slot of the parcel that wants it (gateway/orderbook/parcels.py): scanned is done."""
    scanned = {e.material for e in progress.lots}
    out: list[str | Text] = []
    for need in tasks.needs(core, task):
        if need.material in scanned:
            continue
        if need.container and not need.lot_tracked:
            out.append(t("{material} ×{qty}", material=need.material, qty=format(need.qty, "g")))
            continue
        lot = tasks.suggested_lot(core, task, need.material) if need.lot_tracked else None
        out.append(
            t("{material} (lot {lot})", material=need.material, lot=lot) if lot else need.material
        )
    return out


def missing_units(core: LineContext, task: TaskRow, progress: Progress) -> list[str]:
    """Units of the order not yet scanned into the parcel."""
    return [
        u.unit.serial
        for u in tasks.live_units(core, task.order_id)
        if u.unit.serial not in progress.units
    ]


def failed_checks(items: list[str], progress: Progress) -> list[str]:
    return [it for i, it in enumerate(items) if progress.checklist.get(str(i)) is False]


def open_checks(items: list[str], progress: Progress) -> list[str]:
    return [it for i, it in enumerate(items) if str(i) not in progress.checklist]


def step_of(core: LineContext, task: TaskRow) -> Step:
    """The one thing the operator should do now for ``task``."""
    progress = task.progress()
    if task.status is TaskStatus.PAUSED:
        return Step(StepKind.PAUSED, detail=progress.pause_reason)
    if task.serial is None:
        return _pack_step(core, task, progress)
    if task.status is TaskStatus.DISPATCHED:
        if not progress.confirmed:
            return Step(StepKind.FETCH_UNIT, detail=task.serial)
        missing = missing_materials(core, task, progress)
        if missing:
            return Step(StepKind.SCAN_MATERIALS, tuple(missing))
        return Step(StepKind.START)
    if task.status is TaskStatus.RUNNING:
        op = tasks.operation(core, task)
        items = tasks.checklist(op)
        if failed_checks(items, progress):
            return Step(StepKind.FAIL_DEFECT)
        still_open = open_checks(items, progress)
        if still_open:
            return Step(StepKind.CHECK, detail=still_open[0])
        if op.qc.weight and not progress.weight_ok:
            again = progress.weight_g is not None
            return Step(StepKind.WEIGH_AGAIN if again else StepKind.WEIGH)
        return Step(StepKind.COMPLETE)
    return Step(StepKind.TAKE_NEXT)


def _pack_step(core: LineContext, task: TaskRow, progress: Progress) -> Step:
    missing = missing_units(core, task, progress)
    if missing:
        return Step(StepKind.PACK_SCAN_UNITS, tuple(missing))
    waiting = parcel_waiting(task, progress)
    if waiting is not None:
        return Step(StepKind.PACK_WAIT_LEAD, (waiting,))
    materials = missing_materials(core, task, progress)
    if materials:
        return Step(StepKind.PACK_SCAN_MATERIALS, tuple(materials))
    if progress.label_id is None:
        again = progress.weight_g is not None
        return Step(StepKind.PACK_WEIGH_AGAIN if again else StepKind.PACK_WEIGH)
    return Step(StepKind.PACK_SCAN_LABEL, detail=progress.label_id)


def parcel_waiting(task: TaskRow, progress: Progress) -> Text | None:
    """Why the parcel waits for a line lead's decision (no container holds a unit); None
    when it does not."""
    parcel = progress.parcel
    if parcel is None or parcel.mode is not ParcelMode.WAITING or parcel.misfit is None:
        return None
    return parcels.misfit_text(task.order_id, parcel.misfit)


def awaiting_weight(core: LineContext, task: TaskRow | None) -> bool:
    """True when the task waits for a weight (the station's scale supplies it): a running
    unit task whose operation checks the weight and has no good one yet (its checklist may
    still be open), or a parcel with every unit and material in it and no label yet."""
    if task is None or task.status is not TaskStatus.RUNNING:
        return False
    progress = task.progress()
    if task.serial is None:
        return (
            progress.label_id is None
            and parcel_waiting(task, progress) is None
            and not missing_units(core, task, progress)
            and not missing_materials(core, task, progress)
        )
    return tasks.operation(core, task).qc.weight and not progress.weight_ok
