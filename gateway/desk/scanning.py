"""What a scan does at a station: one entry for everything a scanner delivers.

A code is classified by :mod:`gateway.desk.barcodes` (badge, GS1 element string, plain code)
and then looked up: a unit's traveller (at packing: into the parcel), a shipping label
(confirms the parcel), a lot or a material for the task in work, a GS1 lot label (lot in
AI 10, the line's material id in AI 240, its expiry checked against the stock record).
Each scan is one transaction, or a refusal that changes nothing.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import TYPE_CHECKING

from gateway.desk import pack
from gateway.desk.barcodes import ScanKind, classify
from gateway.desk.gs1 import Gs1Data
from gateway.desk.replies import Refused, Reply
from gateway.desk.screen import next_step
from gateway.orderbook.tasks import (
    Need,
    Work,
    live_units,
    needs,
    reservations,
    save_work,
    suggested_lot,
    task_row,
)
from gateway.orderbook.workorders import PACK

if TYPE_CHECKING:
    from gateway.desk.service import StationService

__all__ = ["scan"]

Row = sqlite3.Row


def scan(svc: StationService, station_id: str, raw: str, symbology: str | None = None) -> Reply:
    """One entry for everything a scanner delivers. ``symbology`` is the AIM
    identifier a scanner driver reports ("]C1", "]d2" …); the station API has none."""
    scan = classify(raw, symbology)
    if scan.kind is ScanKind.BADGE:
        return svc.login(station_id, scan.code)
    if scan.kind is ScanKind.INVALID:
        raise Refused("BAD_CODE", scan.reason, scan.advice)
    svc.operator(station_id)
    if scan.gs1 is not None:
        return _scan_gs1(svc, station_id, scan.gs1)
    code = scan.code
    core = svc.core
    unit = core.store.one("SELECT * FROM units WHERE serial = ?", (code,))
    if unit is not None:
        return _scan_found_unit(svc, station_id, unit)
    label = core.store.one("SELECT * FROM labels WHERE label_id = ?", (code,))
    if label is not None and label["kind"] == "shipping":
        return pack.confirm_label(svc, station_id, label)
    found = core.ledger.find_lot(code)
    if found is not None:
        return _scan_material(svc, station_id, found[0], code)
    if code in core.catalog.materials:
        return _scan_material(svc, station_id, code, None)
    raise Refused(
        "UNKNOWN_CODE",
        f"'{code}' is not a badge, traveller, lot or label known to this line.",
        "Check that you scanned the right label.",
    )


def _scan_found_unit(svc: StationService, station_id: str, unit: Row) -> Reply:
    if PACK in svc.station(station_id).capabilities:
        return pack.scan_unit(svc, station_id, unit)
    return _scan_unit(svc, station_id, unit)


def _scan_gs1(svc: StationService, station_id: str, label: Gs1Data) -> Reply:
    """A GS1 label: a lot label (lot in AI 10, our material id in AI 240), or a unit's
    traveller printed as GS1 (serial in AI 21)."""
    if label.lot is not None or label.additional_id is not None:
        return _scan_lot_label(svc, station_id, label)
    if label.serial is not None:
        unit = svc.core.store.one("SELECT * FROM units WHERE serial = ?", (label.serial,))
        if unit is None:
            raise Refused(
                "UNKNOWN_CODE",
                f"Serial {label.serial} on this GS1 label is not a unit of this line.",
                "Scan the traveller label on the item.",
            )
        return _scan_found_unit(svc, station_id, unit)
    if label.sscc is not None:
        # This line's shipping labels carry its own label ids, not SSCCs.
        raise Refused(
            "UNKNOWN_CODE",
            f"SSCC {label.sscc} is not a shipping label of this line (its parcels carry no SSCC).",
            "Scan the shipping label this station printed.",
        )
    raise Refused(
        "UNKNOWN_CODE",
        f"GS1 label {label.hri()} has no lot (10), material id (240) or serial (21) "
        "that this line tracks.",
        "Check that you scanned the right label.",
    )


def _scan_lot_label(svc: StationService, station_id: str, label: Gs1Data) -> Reply:
    """The material is AI 240: the catalog maps no GTINs, so a label without it cannot
    be placed. The lot and its expiry must agree with the stock record."""
    core = svc.core
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
                f"The label says lot {lot} is {material}; the stock record has it as {found[0]}.",
                "Put it aside and tell the line lead: the label does not match the stock.",
            )
    return _scan_material(svc, station_id, material, lot, label.expiry(core.today()))


def _scan_unit(svc: StationService, station_id: str, unit: Row) -> Reply:
    core = svc.core
    serial = unit["serial"]
    cur = svc.current(station_id)
    if cur is not None and cur["serial"] == serial:
        if cur["status"] == "dispatched" and not Work.of(cur).confirmed:
            work = Work.of(cur)
            work.confirmed = True
            with core.store.transaction():
                save_work(core, cur["task_id"], work)
        return Reply(f"Unit {serial} confirmed.", next_step(svc, station_id, cur))
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
    caps = svc.station(station_id).capabilities
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
            svc.undispatch(cur)
        task = svc.dispatch(station_id, task)
        work = Work.of(task)
        work.confirmed = True
        save_work(core, task["task_id"], work)
        task = task_row(core, task["task_id"])
    return Reply(
        f"Unit {serial}: {task['op']} for order {task['order_id']}.",
        next_step(svc, station_id, task),
        data={"task_id": task["task_id"]},
    )


def _scan_material(
    svc: StationService,
    station_id: str,
    material: str,
    lot: str | None,
    label_expiry: date | None = None,
) -> Reply:
    """``label_expiry``: the expiry a GS1 lot label states (AI 17), checked against
    the stock record."""
    core = svc.core
    task = svc.require_current(station_id)
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
            next_step(svc, station_id, task),
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
            _move_reservation(svc, task, material, lot, need)
        work.lots.append({"material": material, "lot": lot, "qty": need.qty})
        save_work(core, task["task_id"], work)
        task = task_row(core, task["task_id"])
    return Reply(
        f"{what} accepted for {material} ({need.qty:g}).{note}",
        next_step(svc, station_id, task),
    )


def _move_reservation(svc: StationService, task: Row, material: str, lot: str, need: Need) -> None:
    core = svc.core
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
