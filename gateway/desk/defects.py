"""Defects at a station: fail a task with a reason and a disposition.

Rework repeats the operation at the same station (the operator has the unit in hand);
scrap ends the unit, frees what it held and plans a replacement unit through kitting;
use as is completes the task with the defect on record.
"""

from __future__ import annotations

from gateway.desk import pack
from gateway.desk.operating import finish
from gateway.desk.replies import Done, Refused
from gateway.desk.screen import task_next
from gateway.desk.session import Session
from gateway.i18n import t
from gateway.orderbook import tasks
from gateway.orderbook.station_state import IDLE, follow_tasks
from gateway.orderbook.workorders import replace_unit
from gateway.store.documents import Progress
from gateway.store.rows import Disposition, Outcome, TaskStatus


def fail(s: Session, reason: str, disposition: str) -> Done:
    """Record a defect on the station's current task and dispose of it."""
    core = s.core
    operator = s.operator()
    task = s.require_current()
    try:
        chosen = Disposition(disposition)
    except ValueError:
        raise Refused(
            "BAD_DISPOSITION",
            # repr: what was sent, with any control character shown, not sent back raw.
            t("{disposition} is not a disposition.", disposition=repr(disposition)),
            t("Choose rework, scrap or use as is."),
        ) from None
    reason = reason.strip()
    if not reason:
        raise Refused("REASON_REQUIRED", t("Give the defect reason."), t("Choose a defect reason."))
    if not task.status.in_work:
        raise Refused("NOT_IN_WORK", t("The task is not in work."), task_next(core, task))
    if task.serial is None:
        return pack.fail(s, task, reason, chosen)
    with core.store.transaction():
        conn = core.store.conn
        conn.execute("UPDATE tasks SET operator = ? WHERE task_id = ?", (operator, task.task_id))
        task = tasks.get(core, task.task_id)
        progress = task.progress()
        items = tasks.checklist(tasks.operation(core, task))
        replacement = None
        if chosen is not Disposition.USE_AS_IS:
            lots = tasks.consume(core, task, progress)
            tasks.record_checklist(core, task, progress, items)
            tasks.record_attempt(core, task, Outcome.FAILED, lots, reason)
            core.emit(
                "task.failed",
                {
                    **tasks.task_ref(task),
                    "operator": operator,
                    "reason": reason,
                    "disposition": chosen.value,
                },
                task.order_id,
            )
            follow_tasks(core, s.station_id, IDLE)
        if chosen is Disposition.SCRAP:
            replacement = replace_unit(core, task)
        core.emit(
            "defect.recorded",
            {
                "serial": task.serial,
                "op": task.op,
                "reason": reason,
                "disposition": chosen.value,
                "task_id": task.task_id,
                "station": s.station_id,
                "operator": operator,
                "replacement": replacement,
            },
            task.order_id,
        )
        conn.execute(
            "INSERT INTO defects (ts, task_id, order_id, serial, op, reason, disposition, "
            "station, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                core.now_iso(),
                task.task_id,
                task.order_id,
                task.serial,
                task.op,
                reason,
                chosen,
                s.station_id,
                operator,
            ),
        )
        match chosen:
            case Disposition.REWORK:
                # The operator has the unit in hand: the repeat stays at this station.
                conn.execute(
                    "UPDATE tasks SET status = ?, attempt = attempt + 1, started_at = NULL, "
                    "work = ? WHERE task_id = ?",
                    (TaskStatus.DISPATCHED, Progress(confirmed=True).dump(), task.task_id),
                )
                return Done(
                    t(
                        "Defect recorded; {op} of {serial} is to be redone.",
                        op=task.op,
                        serial=str(task.serial),
                    )
                )
            case Disposition.SCRAP:
                s.set_current(None)
                if replacement:
                    return Done(
                        t(
                            "Unit {serial} scrapped. Replacement unit {replacement} is queued. "
                            "Put the scrapped item in the scrap bin.",
                            serial=str(task.serial),
                            replacement=replacement,
                        )
                    )
                return Done(
                    t(
                        "Unit {serial} scrapped. Put the scrapped item in the scrap bin.",
                        serial=str(task.serial),
                    )
                )
            case Disposition.USE_AS_IS:
                # The defect is on record and the unit goes on as if it passed.
                done = finish(s, task, progress, [])
                return Done(t("Defect recorded, used as is. {done}", done=done))
