"""Packing: the order's units come together, are weighed, labelled and confirmed.

The packer scans every unit of the order (a unit of another order, or one not finished,
is refused), scans the packing materials (the parcel's containers are chosen for its
units when the first is scanned: gateway/desk/parcel.py), puts the parcel on the scale (it
must weigh the sum of the units' weights within the sum of their tolerances), and the
shipping label is printed; scanning that label confirms the parcel and completes the order.
"""

from __future__ import annotations

from gateway.desk import parcel as parcel_desk
from gateway.desk.labels import print_shipping
from gateway.desk.replies import Done, Refused
from gateway.desk.screen import status_word, task_next
from gateway.desk.session import Session
from gateway.desk.steps import missing_materials, missing_units, parcel_waiting
from gateway.i18n import listing, t
from gateway.orderbook import costing, parcels, tasks
from gateway.orderbook.station_state import IDLE, follow_tasks
from gateway.store.documents import Progress
from gateway.store.rows import (
    Disposition,
    LabelRow,
    OrderStatus,
    Outcome,
    TaskRow,
    TaskStatus,
    UnitRow,
    UnitStatus,
)


def scan_unit(s: Session, unit: UnitRow) -> Done:
    """A unit scanned at a pack station: into the current parcel, or starting one."""
    core = s.core
    serial, order_id = unit.serial, unit.order_id
    cur = s.current()
    if cur is not None and cur.order_id != order_id:
        raise Refused(
            "FOREIGN_UNIT",
            t(
                "Unit {serial} belongs to order {order_id}, not to order {packing} "
                "being packed here.",
                serial=serial,
                order_id=order_id,
                packing=cur.order_id,
            ),
            t("Put it aside and go on with this parcel."),
        )
    if not unit.status.ships:
        raise Refused(
            "UNIT_CLOSED",
            t(
                "Unit {serial} is {status}: it must not ship.",
                serial=serial,
                status=status_word(unit.status),
            ),
            t("Put it in the scrap bin and tell the line lead."),
        )
    if unit.status is not UnitStatus.DONE:
        raise Refused(
            "UNIT_NOT_DONE",
            t("Unit {serial} has not finished its operations.", serial=serial),
            t("Send it back to the line."),
        )
    task = cur if cur is not None else tasks.pack_task(core, order_id)
    if task is None:
        raise Refused(
            "NOTHING_TO_PACK",
            t("Order {order_id} has nothing left to pack.", order_id=order_id),
            t("Put the unit aside and tell the line lead."),
        )
    if cur is None:
        if task.status is TaskStatus.BLOCKED:
            waiting = [
                u.unit.serial
                for u in tasks.live_units(core, order_id)
                if u.unit.status is not UnitStatus.DONE
            ]
            raise Refused(
                "ORDER_INCOMPLETE",
                t(
                    "Order {order_id} is not complete: waiting for {serials}.",
                    order_id=order_id,
                    serials=listing(waiting),
                ),
                t("Put the unit in the order's tote until the rest arrives."),
            )
        if task.status is not TaskStatus.READY:
            raise Refused(
                "TAKEN",
                t(
                    "Order {order_id} is being packed at {station}.",
                    order_id=order_id,
                    station=str(task.station),
                ),
                t("Take the unit to {station}.", station=str(task.station)),
            )
    if serial in task.progress().units:
        raise Refused(
            "ALREADY_SCANNED",
            t("Unit {serial} is already in this parcel.", serial=serial),
            task_next(core, task),
        )
    started = None
    with core.store.transaction():
        if cur is None:
            task = s.dispatch(task)
        progress = task.progress()
        progress.units.append(serial)
        if progress.parcel is None:
            # The parcel starts: its containers are chosen for its units now, once.
            units = tasks.live_units(core, order_id)
            started = progress.parcel = parcels.start(core, order_id, units)
        tasks.save_progress(core, task.task_id, progress)
        if task.status is TaskStatus.DISPATCHED:
            tasks.start(core, tasks.get(core, task.task_id), s.operator())
    total = len(tasks.live_units(core, order_id))
    if started is not None:
        return Done(parcel_desk.started_text(serial, len(progress.units), total, started))
    return Done(
        t(
            "Unit {serial} in the parcel ({n} of {total}).",
            serial=serial,
            n=len(progress.units),
            total=total,
        )
    )


def weigh(s: Session, task: TaskRow, grams: float) -> Done:
    core = s.core
    if task.status is not TaskStatus.RUNNING:
        raise Refused("NOT_RUNNING", t("Scan the order's units first."), task_next(core, task))
    progress = task.progress()
    missing = missing_units(core, task, progress)
    if missing:
        raise Refused(
            "UNITS_MISSING",
            t("Not all units are in the parcel: missing {serials}.", serials=listing(missing)),
            t("Scan the missing units."),
        )
    waiting = parcel_waiting(task, progress)
    if waiting is not None:
        raise Refused(
            "PARCEL_WAITING", waiting, t("Wait for a line lead to choose the containers.")
        )
    materials = missing_materials(core, task, progress)
    if materials:
        raise Refused(
            "MATERIALS_MISSING",
            t("Scan the packing materials first: {materials}.", materials=listing(materials)),
            t("Scan {items}.", items=listing(materials)),
        )
    if progress.label_id is not None:
        raise Refused(
            "ALREADY_WEIGHED",
            t("The parcel is weighed and labelled ({label_id}).", label_id=progress.label_id),
            t("Scan the shipping label {label_id}.", label_id=progress.label_id),
        )
    expected, tol = tasks.expected_weight(core, task.order_id)
    ok = abs(grams - expected) <= tol + 1e-9
    with core.store.transaction():
        tasks.record_quality(
            core, task, "weight", ok, grams, {"expected_g": expected, "tolerance_g": tol}
        )
        progress.weight_g, progress.weight_ok = grams, ok
        if ok:
            progress.label_id = print_shipping(
                core, task.order_id, s.station_id, len(progress.units), grams
            )
        tasks.save_progress(core, task.task_id, progress)
    if not ok:
        return Done(
            t(
                "Parcel weighs {grams} g; expected {expected} ± {tol} g.",
                grams=format(grams, "g"),
                expected=format(expected, "g"),
                tol=format(tol, "g"),
            ),
            ok=False,
        )
    return Done(
        t(
            "Weight {grams} g OK. Shipping label {label_id} printed.",
            grams=format(grams, "g"),
            label_id=str(progress.label_id),
        ),
        data={"label_id": progress.label_id},
    )


def confirm_label(s: Session, label: LabelRow) -> Done:
    """The confirming scan of the shipping label completes the order."""
    core = s.core
    task = s.current()
    if task is None or task.serial is not None:
        raise Refused(
            "NO_PARCEL",
            t(
                "Label {label_id} is for order {order_id}, which is not being packed here.",
                label_id=label.label_id,
                order_id=label.order_id,
            ),
            t("Scan the label at the station that packed the parcel."),
        )
    progress = task.progress()
    if progress.label_id != label.label_id:
        raise Refused(
            "WRONG_LABEL",
            t(
                "Label {label_id} belongs to order {order_id}; this parcel is order "
                "{parcel_order} with label {parcel_label}.",
                label_id=label.label_id,
                order_id=label.order_id,
                parcel_order=task.order_id,
                parcel_label=progress.label_id,
            )
            if progress.label_id
            else t(
                "Label {label_id} belongs to order {order_id}; this parcel is order "
                "{parcel_order}.",
                label_id=label.label_id,
                order_id=label.order_id,
                parcel_order=task.order_id,
            ),
            t("Remove the wrong label and apply the one printed for this parcel."),
        )
    order_id = task.order_id
    with core.store.transaction():
        now, _ = tasks.complete(core, task, progress)
        s.set_current(None)
        core.store.conn.execute(
            "UPDATE orders SET status = ?, completed_at = ?, weight_g = ?, label_id = ? "
            "WHERE order_id = ?",
            (OrderStatus.COMPLETED, now, progress.weight_g, progress.label_id, order_id),
        )
        order = tasks.order(core, order_id)
        core.emit(
            "order.completed",
            {
                "units": sorted(progress.units),
                "weight_g": progress.weight_g,
                "label_id": progress.label_id,
                "on_time": order is not None and now <= order.ship_by,
                # Contract 1.1: what the parcel was packed in.
                "containers": parcels.packed_containers(core, progress.lots),
            },
            order_id,
        )
        # Costed in the same transaction, right after: no crash can come between the two.
        costing.record_cost(core, order_id)
    return Done(
        t("Order {order_id} is packed and labelled: ready for the carrier.", order_id=order_id)
    )


def fail(s: Session, task: TaskRow, reason: str, disposition: Disposition) -> Done:
    """A parcel that cannot ship as packed is repacked; its units are not scrapped here."""
    core = s.core
    if disposition is not Disposition.REWORK:
        raise Refused(
            "PACK_REWORK_ONLY",
            t("At packing a parcel can only be repacked."),
            t("Fail it with rework, or scrap a damaged unit at its station."),
        )
    operator = s.operator()
    with core.store.transaction():
        tasks.record_attempt(core, task, Outcome.FAILED, [], reason)
        core.emit(
            "task.failed",
            {
                **tasks.task_ref(task),
                "operator": operator,
                "reason": reason,
                "disposition": disposition.value,
            },
            task.order_id,
        )
        follow_tasks(core, s.station_id, IDLE)
        core.emit(
            "defect.recorded",
            {
                "serial": None,
                "op": task.op,
                "reason": reason,
                "disposition": disposition.value,
                "task_id": task.task_id,
                "station": s.station_id,
                "operator": operator,
            },
            task.order_id,
        )
        core.store.conn.execute(
            "INSERT INTO defects (ts, task_id, order_id, serial, op, reason, disposition, "
            "station, operator) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            (
                core.now_iso(),
                task.task_id,
                task.order_id,
                task.op,
                reason,
                disposition,
                s.station_id,
                operator,
            ),
        )
        core.store.conn.execute(
            "UPDATE tasks SET status = ?, attempt = attempt + 1, started_at = NULL, "
            "work = ? WHERE task_id = ?",
            # A line lead's decision on the containers stays for the repacking.
            (
                TaskStatus.DISPATCHED,
                Progress(parcel=parcel_desk.kept_on_repack(task.progress())).dump(),
                task.task_id,
            ),
        )
    return Done(t("Parcel to be repacked."))
