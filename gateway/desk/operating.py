"""Working a task at a station: take the next, start, pause, resume, answer the checklist,
weigh, complete.

Each action checks what the operator may do now (refusing with the reason and what to do
instead) and then makes the change through the order book (gateway/orderbook/tasks.py),
in one transaction. Packing's own steps are in gateway/desk/pack.py.
"""

from __future__ import annotations

from gateway.desk import pack
from gateway.desk.replies import Done, Refused
from gateway.desk.screen import describe, status_word, task_next
from gateway.desk.session import Session
from gateway.desk.steps import failed_checks, missing_materials, open_checks
from gateway.i18n import Text, listing, t
from gateway.orderbook import tasks
from gateway.orderbook.tasks import Advance
from gateway.store.documents import Progress
from gateway.store.rows import TaskRow, TaskStatus


def next_task(s: Session) -> Done:
    """Take the head of this station's queue."""
    s.operator()
    cur = s.current()
    if cur is not None:
        return Done(t("You still have {task}.", task=describe(cur)), data={"task_id": cur.task_id})
    head = s.queue(1)
    if not head:
        return Done(t("Nothing to do at this station right now."))
    with s.core.store.transaction():
        task = s.dispatch(head[0])
    message = t("Next: {task}.", task=describe(task))
    if task.op_index == 0 and task.serial is not None:
        message = t(
            "Next: {task}. Traveller {serial} printed: stick it on the item.",
            task=describe(task),
            serial=task.serial,
        )
    return Done(message, data={"task_id": task.task_id})


def start(s: Session) -> Done:
    core = s.core
    operator = s.operator()
    task = s.require_current()
    if task.serial is None:
        raise Refused(
            "PACK_STARTS_BY_SCAN",
            t("Packing starts when you scan the first unit."),
            task_next(core, task),
        )
    if task.status is not TaskStatus.DISPATCHED:
        raise Refused(
            "NOT_STARTABLE",
            t("This task is {status}, not waiting to start.", status=status_word(task.status)),
            task_next(core, task),
        )
    progress = task.progress()
    if not progress.confirmed:
        raise Refused(
            "CONFIRM_UNIT",
            t(
                "Scan the traveller of unit {serial} first, to be sure you have the right item.",
                serial=task.serial,
            ),
            t("Scan {serial}.", serial=task.serial),
        )
    missing = missing_materials(core, task, progress)
    if missing:
        raise Refused(
            "MATERIALS_MISSING",
            t("Scan the materials before starting: {materials}.", materials=listing(missing)),
            task_next(core, task),
        )
    with core.store.transaction():
        task = tasks.start(core, task, operator)
    return Done(t("Started {op} of {serial}.", op=task.op, serial=str(task.serial)))


def pause(s: Session, reason: str) -> Done:
    s.operator()
    task = s.require_current()
    if task.status is not TaskStatus.RUNNING:
        raise Refused(
            "NOT_RUNNING", t("Only a running task can be paused."), task_next(s.core, task)
        )
    reason = reason.strip()
    if not reason:
        raise Refused(
            "REASON_REQUIRED", t("Say why the task is paused."), t("Choose a pause reason.")
        )
    with s.core.store.transaction():
        tasks.pause(s.core, task, reason)
    return Done(t("Paused: {reason}.", reason=reason))


def resume(s: Session) -> Done:
    operator = s.operator()
    task = s.require_current()
    if task.status is not TaskStatus.PAUSED:
        raise Refused("NOT_PAUSED", t("The task is not paused."), task_next(s.core, task))
    with s.core.store.transaction():
        tasks.resume(s.core, task, operator, None)
    return Done(t("Resumed."))


def checklist(s: Session, item: int | str, passed: bool) -> Done:
    core = s.core
    s.operator()
    task = s.require_current()
    if task.status is not TaskStatus.RUNNING:
        raise Refused(
            "NOT_RUNNING",
            t("Start the task before answering its checklist."),
            task_next(core, task),
        )
    items = tasks.checklist(tasks.operation(core, task))
    index = _item_index(items, item)
    if index is None:
        raise Refused(
            "UNKNOWN_ITEM",
            # repr: no raw control chars
            t("{item} is not on this task's checklist.", item=repr(str(item))),
            t("Answer the items shown on the screen."),
        )
    progress = task.progress()
    progress.checklist[str(index)] = passed
    with core.store.transaction():
        tasks.save_progress(core, task.task_id, progress)
    if not passed:
        return Done(t("Check failed: {item}.", item=items[index]), ok=False)
    return Done(t("Checked: {item}.", item=items[index]))


def weight(s: Session, grams: float) -> Done:
    core = s.core
    s.operator()
    task = s.require_current()
    if task.serial is None:
        return pack.weigh(s, task, grams)
    if not tasks.operation(core, task).qc.weight:
        raise Refused("NO_WEIGHT_CHECK", t("This step has no weight check."), task_next(core, task))
    if task.status is not TaskStatus.RUNNING:
        raise Refused("NOT_RUNNING", t("Start the task before weighing."), task_next(core, task))
    snapshot = tasks.unit_snapshot(core, task)
    expected = snapshot.unit_weight_g if snapshot is not None else 0.0
    tol = snapshot.weight_tolerance_g if snapshot is not None else 0.0
    ok = abs(grams - expected) <= tol + 1e-9
    progress = task.progress()
    progress.weight_g, progress.weight_ok = grams, ok
    with core.store.transaction():
        tasks.save_progress(core, task.task_id, progress)
        tasks.record_quality(
            core, task, "weight", ok, grams, {"expected_g": expected, "tolerance_g": tol}
        )
    weighed = {"grams": f"{grams:g}", "expected": f"{expected:g}", "tol": f"{tol:g}"}
    if ok:
        return Done(t("Weight {grams} g is within {expected} ± {tol} g.", **weighed))
    return Done(t("Weight {grams} g is outside {expected} ± {tol} g.", **weighed), ok=False)


def complete(s: Session) -> Done:
    core = s.core
    s.operator()
    task = s.require_current()
    if task.serial is None:
        raise Refused(
            "SCAN_LABEL",
            t("A parcel is completed by scanning its shipping label."),
            task_next(core, task),
        )
    if task.status is not TaskStatus.RUNNING:
        raise Refused(
            "NOT_RUNNING",
            t(
                "The task is {status}; only a running task can be completed.",
                status=status_word(task.status),
            ),
            task_next(core, task),
        )
    progress = task.progress()
    op = tasks.operation(core, task)
    items = tasks.checklist(op)
    failed = failed_checks(items, progress)
    if failed:
        raise Refused(
            "CHECKLIST_FAILED",
            t("A check failed: {items}.", items=listing(failed, "; ")),
            t("Fail the task with a defect reason: rework, scrap or use as is."),
        )
    unanswered = open_checks(items, progress)
    if unanswered:
        raise Refused(
            "CHECKLIST_OPEN",
            t("Answer the checklist first: {items}.", items=listing(unanswered, "; ")),
            t("Confirm each check on the screen."),
        )
    if op.qc.weight and not progress.weight_ok:
        raise Refused(
            "WEIGHT_REQUIRED",
            t("Weigh the item first: the weight must be in tolerance."),
            t("Place the item on the scale."),
        )
    with core.store.transaction():
        message = finish(s, task, progress, items)
    return Done(message)


def finish(s: Session, task: TaskRow, progress: Progress, items: list[str]) -> Text:
    """Complete a unit task: consume, check, report, release the next step; returns what
    the operator is told. In the caller's transaction."""
    core = s.core
    tasks.record_checklist(core, task, progress, items)
    tasks.complete(core, task, progress)
    s.set_current(None)
    advance, next_op = tasks.advance_unit(core, task)
    done = t("{op} of {serial} completed.", op=task.op, serial=str(task.serial))
    match advance:
        case Advance.ORDER_CANCELLED:
            return t(
                "{done} Order {order_id} was cancelled: put the unit in the returns bin.",
                done=done,
                order_id=task.order_id,
            )
        case Advance.NEXT_OPERATION:
            return t("{done} Next for this unit: {op}.", done=done, op=str(next_op))
        case Advance.TO_PACKING:
            return t("{done} The unit goes to packing.", done=done)


def _item_index(items: list[str], item: int | str) -> int | None:
    if isinstance(item, int):
        return item if 0 <= item < len(items) else None
    try:
        return items.index(item)
    except ValueError:
        return None
