"""What a scan does at a station: one entry for everything a scanner delivers.

A code is classified by :mod:`gateway.desk.barcodes` (badge, GS1 element string, plain code)
and then looked up: a unit's traveller (at packing: into the parcel), a shipping label
(confirms the parcel), a lot or a material for the task in work, a GS1 lot label (lot in
AI 10, the line's material id in AI 240, its expiry checked against the stock record).
Each scan is one transaction, or a refusal that changes nothing.
"""

from __future__ import annotations

from datetime import date

from gateway.desk import badges, pack
from gateway.desk import parcel as parcel_desk
from gateway.desk.barcodes import ScanKind, classify
from gateway.desk.gs1 import Gs1Data
from gateway.desk.replies import Done, Refused
from gateway.desk.screen import status_word, task_next
from gateway.desk.session import Session
from gateway.i18n import listing, t
from gateway.orderbook import picking, tasks
from gateway.orderbook.tasks import PACK, Need
from gateway.store.documents import ParcelMode, ScannedLot
from gateway.store.rows import LabelKind, LabelRow, TaskRow, TaskStatus, UnitRow, UnitStatus

__all__ = ["scan"]


def _unit(s: Session, serial: str) -> UnitRow | None:
    return s.core.store.fetch_one(UnitRow, "SELECT * FROM units WHERE serial = ?", (serial,))


def scan(s: Session, raw: str, symbology: str | None = None) -> Done:
    """One entry for everything a scanner delivers. ``symbology`` is the AIM
    identifier a scanner driver reports ("]C1", "]d2" …); the station API has none."""
    scan = classify(raw, symbology)
    if scan.kind is ScanKind.BADGE:
        return badges.login(s, scan.code)
    if scan.kind is ScanKind.INVALID:
        raise Refused("BAD_CODE", scan.reason_text, scan.advice_text)
    s.operator()
    if scan.gs1 is not None:
        return _scan_gs1(s, scan.gs1)
    code = scan.code
    core = s.core
    unit = _unit(s, code)
    if unit is not None:
        return _scan_found_unit(s, unit)
    label = core.store.fetch_one(LabelRow, "SELECT * FROM labels WHERE label_id = ?", (code,))
    if label is not None and label.kind is LabelKind.SHIPPING:
        return pack.confirm_label(s, label)
    found = core.ledger.find_lot(code)
    if found is not None:
        return _scan_material(s, found[0], code)
    if code in core.catalog.materials:
        return _scan_material(s, code, None)
    raise Refused(
        "UNKNOWN_CODE",
        t("'{code}' is not a badge, traveller, lot or label known to this line.", code=code),
        t("Check that you scanned the right label."),
    )


def _scan_found_unit(s: Session, unit: UnitRow) -> Done:
    if PACK in s.config.capabilities:
        return pack.scan_unit(s, unit)
    return _scan_unit(s, unit)


def _scan_gs1(s: Session, label: Gs1Data) -> Done:
    """A GS1 label: a lot label (lot in AI 10, our material id in AI 240), or a unit's
    traveller printed as GS1 (serial in AI 21)."""
    if label.lot is not None or label.additional_id is not None:
        return _scan_lot_label(s, label)
    if label.serial is not None:
        unit = _unit(s, label.serial)
        if unit is None:
            raise Refused(
                "UNKNOWN_CODE",
                t(
                    "Serial {serial} on this GS1 label is not a unit of this line.",
                    serial=label.serial,
                ),
                t("Scan the traveller label on the item."),
            )
        return _scan_found_unit(s, unit)
    if label.sscc is not None:
        # This line's shipping labels carry its own label ids, not SSCCs.
        raise Refused(
            "UNKNOWN_CODE",
            t(
                "SSCC {sscc} is not a shipping label of this line (its parcels carry no SSCC).",
                sscc=label.sscc,
            ),
            t("Scan the shipping label this station printed."),
        )
    raise Refused(
        "UNKNOWN_CODE",
        t(
            "GS1 label {hri} has no lot (10), material id (240) or serial (21) "
            "that this line tracks.",
            hri=label.hri(),
        ),
        t("Check that you scanned the right label."),
    )


def _scan_lot_label(s: Session, label: Gs1Data) -> Done:
    """The material is AI 240: the catalog maps no GTINs, so a label without it cannot
    be placed. The lot and its expiry must agree with the stock record."""
    core = s.core
    material, lot = label.additional_id, label.lot
    if material is None:
        raise Refused(
            "MATERIAL_ID_MISSING",
            t(
                "Lot label {hri} does not name the material: this line needs its "
                "material id in AI (240), as the catalog does not map GTINs to materials.",
                hri=label.hri(),
            ),
            t("Ask the line lead for a lot label with the material id in AI (240)."),
        )
    if material not in core.catalog.materials:
        raise Refused(
            "UNKNOWN_CODE",
            t(
                "Material {material} on this GS1 label is not in this line's catalog.",
                material=material,
            ),
            t("Check that you scanned the right label."),
        )
    if lot is not None and core.ledger.lot(material, lot) is None:
        found = core.ledger.find_lot(lot)
        if found is not None:
            raise Refused(
                "LABEL_MISMATCH",
                t(
                    "The label says lot {lot} is {material}; the stock record has it as "
                    "{recorded}.",
                    lot=lot,
                    material=material,
                    recorded=found[0],
                ),
                t("Put it aside and tell the line lead: the label does not match the stock."),
            )
    return _scan_material(s, material, lot, label.expiry(core.today()))


def _scan_unit(s: Session, unit: UnitRow) -> Done:
    core = s.core
    serial = unit.serial
    cur = s.current()
    if cur is not None and cur.serial == serial:
        progress = cur.progress()
        if cur.status is TaskStatus.DISPATCHED and not progress.confirmed:
            progress.confirmed = True
            with core.store.transaction():
                tasks.save_progress(core, cur.task_id, progress)
        return Done(t("Unit {serial} confirmed.", serial=serial))
    if cur is not None and cur.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
        raise Refused(
            "BUSY",
            t(
                "Unit {serial} is still in work here ({op}).",
                serial=str(cur.serial),
                op=cur.op,
            ),
            t("Complete, pause or fail it before taking another unit."),
        )
    if unit.status is not UnitStatus.OPEN:
        raise Refused(
            "UNIT_CLOSED",
            t("Unit {serial} is {status}.", serial=serial, status=status_word(unit.status)),
            t("Put it aside and tell the line lead."),
        )
    task = tasks.next_of_unit(core, serial)
    if task is None:
        raise Refused(
            "NOTHING_TO_DO",
            t("Unit {serial} has no work left before packing.", serial=serial),
            t("Take it to packing."),
        )
    if task.capability not in s.config.capabilities:
        raise Refused(
            "WRONG_STATION",
            t(
                "Unit {serial} needs {op} next, which is not done at this station.",
                serial=serial,
                op=task.op,
            ),
            t("Take it to a {capability} station.", capability=task.capability),
        )
    if task.status is TaskStatus.BLOCKED:
        raise Refused(
            "NOT_READY",
            t("Unit {serial} is waiting for materials.", serial=serial),
            t("Put it aside; it is released when stock arrives."),
        )
    if task.status is not TaskStatus.READY and task.station != s.station_id:
        raise Refused(
            "TAKEN",
            t("Unit {serial} is assigned to {station}.", serial=serial, station=str(task.station)),
            t("Take it to {station}.", station=str(task.station)),
        )
    with core.store.transaction():
        if cur is not None:
            s.undispatch(cur)
        task = s.dispatch(task)
        progress = task.progress()
        progress.confirmed = True
        tasks.save_progress(core, task.task_id, progress)
    return Done(
        t(
            "Unit {serial}: {op} for order {order_id}.",
            serial=serial,
            op=task.op,
            order_id=task.order_id,
        ),
        data={"task_id": task.task_id},
    )


def _scan_material(
    s: Session,
    material: str,
    lot: str | None,
    label_expiry: date | None = None,
) -> Done:
    """``label_expiry``: the expiry a GS1 lot label states (AI 17), checked against
    the stock record."""
    core = s.core
    task = s.require_current()
    if not task.status.in_work:
        raise Refused("NO_TASK", t("There is no task in work here."), t("Press Next."))
    if task.serial is None and _is_container(s, material):
        parcel = task.progress().parcel
        if parcel is None or parcel.mode is not ParcelMode.BOM:
            # The parcel's containers: chosen for its units (gateway/desk/parcel.py).
            return parcel_desk.scan_container(s, task, material, lot)
    required = {n.material: n for n in tasks.needs(core, task)}
    need = required.get(material)
    what = lot or material
    if need is None:
        wanted = listing(sorted(required)) if required else t("no material")
        raise Refused(
            "WRONG_MATERIAL",
            t(
                "Wrong material: {what} is {material}, which is not used at {op}. "
                "This step needs {wanted}.",
                what=what,
                material=material,
                op=task.op,
                wanted=wanted,
            ),
            t("Put it back and scan the right material."),
        )
    progress = task.progress()
    if progress.scanned(material) is not None:
        raise Refused(
            "ALREADY_SCANNED",
            t("{material} is already recorded for this task.", material=material),
            task_next(core, task),
        )
    suggestion = tasks.suggested_lot(core, task, material)
    if need.lot_tracked and lot is None:
        raise Refused(
            "LOT_REQUIRED",
            t(
                "{material} is lot-tracked: scan its lot label, not the material code.",
                material=material,
            ),
            t("Scan lot {lot}.", lot=suggestion) if suggestion else t("Scan the lot label."),
        )
    first: str | None = None  # the lot that expires first, when another was taken
    if lot is not None:
        bal = core.ledger.lot(material, lot)
        today = core.today()
        margin = core.config.policies.lot_expiry_margin_days
        use = (
            t("Use lot {lot} (first to expire).", lot=suggestion)
            if suggestion
            else t("Ask the line lead for a usable lot.")
        )
        if bal is None:
            raise Refused("UNKNOWN_LOT", t("Lot {lot} is not in this line's stock.", lot=lot), use)
        if label_expiry is not None and label_expiry != bal.expires:
            recorded = t("on {date}", date=str(bal.expires)) if bal.expires else t("never")
            raise Refused(
                "LABEL_MISMATCH",
                t(
                    "The label says lot {lot} expires on {label_expiry}; the stock record "
                    "says it expires {recorded}.",
                    lot=lot,
                    label_expiry=str(label_expiry),
                    recorded=recorded,
                ),
                t("Put it aside and tell the line lead: the label does not match the stock."),
            )
        if not bal.usable(today, margin):
            raise Refused(
                "EXPIRED_LOT",
                t(
                    "Lot {lot} of {material} expired on {expires}.",
                    lot=lot,
                    material=material,
                    expires=str(bal.expires),
                ),
                t("Put it aside. {use}", use=use),
            )
        if lot != suggestion:
            held = sum(
                r.qty
                for r in tasks.reservations(core, task)
                if r.material == material and r.lot == lot
            )
            if bal.free + held < need.qty - 1e-9:
                raise Refused(
                    "LOT_EMPTY",
                    t(
                        "Lot {lot} has only {free} left, not enough for {qty}.",
                        lot=lot,
                        free=format(bal.free, "g"),
                        qty=format(need.qty, "g"),
                    ),
                    use,
                )
            if suggestion:
                first = suggestion
    with core.store.transaction():
        if lot is not None and lot != suggestion:
            _move_reservation(s, task, material, lot, need)
        # Before this scan is held by the task: whether the station had it already.
        picking.arrive(core, s.station_id, material, lot, need.qty)
        progress.lots.append(ScannedLot(material=material, lot=lot, qty=need.qty))
        tasks.save_progress(core, task.task_id, progress)
    qty = f"{need.qty:g}"
    if first is not None:
        return Done(
            t(
                "{what} accepted for {material} ({qty}). Note: lot {lot} expires first and "
                "should be used first.",
                what=what,
                material=material,
                qty=qty,
                lot=first,
            )
        )
    return Done(t("{what} accepted for {material} ({qty}).", what=what, material=material, qty=qty))


def _is_container(s: Session, material: str) -> bool:
    found = s.core.catalog.materials.get(material)
    return found is not None and found.container is not None


def _move_reservation(s: Session, task: TaskRow, material: str, lot: str, need: Need) -> None:
    """The operator took another usable lot than the one reserved: the reservation follows."""
    core = s.core
    for r in tasks.reservations(core, task):
        if r.material == material:
            core.ledger.adjust(material, r.lot, r.qty)
            core.store.conn.execute("DELETE FROM reservations WHERE id = ?", (r.id,))
    serials = (
        [task.serial]
        if task.serial is not None
        else [u.unit.serial for u in tasks.live_units(core, task.order_id)]
    )
    share = need.qty / len(serials)
    for serial in serials:
        core.store.conn.execute(
            "INSERT INTO reservations (order_id, serial, op, material, lot, qty) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (task.order_id, serial, task.op, material, lot, share),
        )
    core.ledger.adjust(material, lot, -need.qty)
