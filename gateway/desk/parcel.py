"""The parcel's containers at the pack station: a container scanned, and a line lead's
decision when the gateway could not propose (gateway/orderbook/parcels.py proposes).

A container scanned fills the parcel's open slots that want it; another container is
accepted when it holds the units of an open slot (or, before any is scanned, the whole
order), and takes that slot's place: the reply says what it replaced. One that cannot
hold them is refused with why: which unit is too big for it, the units' weight against
its load, a rigid unit in a soft mailer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gateway.desk.replies import Done, Refused
from gateway.desk.screen import task_next
from gateway.desk.session import Session
from gateway.desk.steps import missing_materials
from gateway.i18n import Listing, Text, listing, t
from gateway.orderbook import parcels, picking, tasks
from gateway.orderbook import parcels_fit as fit
from gateway.orderbook.alarms import clear_alarm
from gateway.store.documents import Parcel, ParcelMode, ParcelSlot, Progress
from gateway.store.rows import TaskRow, TaskStatus

__all__ = ["containers_text", "decide", "kept_on_repack", "scan_container", "started_text"]

# What a line lead may decide per container material (the API bounds it too).
MAX_DECIDED_QTY = 50


def containers_text(parcel: Parcel) -> Listing:
    """The parcel's containers as the operator reads them: "POLYBAG-L ×1"."""
    return listing(
        t("{material} ×{qty}", material=m, qty=str(n))
        for m, n in parcels.container_needs(parcel).items()
    )


def started_text(serial: str, n: int, total: int, parcel: Parcel) -> Text:
    """The reply to the scan that started the parcel: its containers, or why not."""
    if parcel.mode is ParcelMode.WAITING and parcel.misfit is not None:
        return t(
            "Unit {serial} in the parcel ({n} of {total}). {why} A line lead decides the "
            "containers.",
            serial=serial,
            n=n,
            total=total,
            why=_misfit_short(parcel),
        )
    if parcel.slots:
        return t(
            "Unit {serial} in the parcel ({n} of {total}). Containers: {containers}.",
            serial=serial,
            n=n,
            total=total,
            containers=containers_text(parcel),
        )
    return t("Unit {serial} in the parcel ({n} of {total}).", serial=serial, n=n, total=total)


def _misfit_short(parcel: Parcel) -> Text:
    misfit = parcel.misfit
    assert misfit is not None
    return t(
        "No container holds unit {serial} ({sku}, {dims} mm); the largest, {largest}, is "
        "{largest_dims} mm.",
        serial=misfit.serial,
        sku=misfit.sku,
        dims=parcels.mm(misfit.dims_mm),
        largest=misfit.largest,
        largest_dims=parcels.mm(misfit.largest_mm),
    )


def scan_container(s: Session, task: TaskRow, material: str, lot: str | None) -> Done:
    """A container material scanned for the pack task ``task`` (whose parcel is not packed
    as the BOM says: that is any material's scan)."""
    core = s.core
    progress = task.progress()
    parcel = progress.parcel
    if parcel is None:
        raise Refused(
            "UNITS_FIRST",
            t("Scan the order's units first: the parcel's containers are chosen for them."),
            task_next(core, task),
        )
    if parcel.mode is ParcelMode.WAITING:
        raise Refused(
            "PARCEL_WAITING",
            _misfit_short(parcel),
            t("Wait for a line lead to choose the containers."),
        )
    if progress.label_id is not None:
        raise Refused(
            "ALREADY_WEIGHED",
            t("The parcel is weighed and labelled ({label_id}).", label_id=progress.label_id),
            t("Scan the shipping label {label_id}.", label_id=progress.label_id),
        )
    if all(slot.filled for slot in parcel.slots):
        raise Refused(
            "ALREADY_SCANNED",
            t("Every container of this parcel is scanned."),
            task_next(core, task),
        )
    box = parcels.container(core, material)
    assert box is not None, "the caller checked that it is a container"
    _check_lot(s, material, lot)
    wants = any(not slot.filled and slot.material == material for slot in parcel.slots)
    scan_next = t("Scan {items}.", items=listing(missing_materials(core, task, progress)))
    if parcel.mode is ParcelMode.DECIDED and not wants:
        raise Refused(
            "WRONG_CONTAINER",
            t(
                "The line lead chose {containers} for this parcel; {material} is not one of them.",
                containers=containers_text(parcel),
                material=material,
            ),
            scan_next,
        )
    units = {
        u.unit.serial: unit
        for u in tasks.live_units(core, task.order_id)
        if (unit := parcels.unit_of(u.unit.serial, u.snapshot())) is not None
    }
    taken = parcels.take(parcel, box, units)
    if isinstance(taken, parcels.Refusal):
        raise Refused(_CODES[taken.misfit.why], _why(box, taken, _skus(s, task)), scan_next)
    with core.store.transaction():
        # Before the scan is held by the task: whether the station had it already.
        picking.arrive(core, s.station_id, material, lot, float(taken.qty))
        progress.parcel = taken.parcel
        parcels.record_scan(progress.lots, material, lot, taken.qty)
        tasks.save_progress(core, task.task_id, progress)
    if not taken.replaced:
        return Done(
            t("{material} ×{qty} accepted for the parcel.", material=material, qty=str(taken.qty))
        )
    replaced = Counter(taken.replaced)
    return Done(
        t(
            "{material} accepted instead of {replaced}: it holds {serials}.",
            material=material,
            replaced=listing(
                t("{material} ×{qty}", material=m, qty=str(n)) for m, n in replaced.items()
            ),
            serials=listing(taken.units),
        ),
        data={"replaced": [{"material": m, "qty": n} for m, n in replaced.items()]},
    )


_CODES = {
    fit.Why.RIGID_IN_MAILER: "CONTAINER_KIND",
    fit.Why.TOO_HEAVY: "CONTAINER_OVERLOAD",
    fit.Why.TOO_BIG: "CONTAINER_TOO_SMALL",
    fit.Why.NO_ROOM: "CONTAINER_TOO_SMALL",
}


def _skus(s: Session, task: TaskRow) -> dict[str, str]:
    """The SKU of each of the order's units, by serial."""
    return {u.unit.serial: u.snapshot().sku for u in tasks.live_units(s.core, task.order_id)}


def _why(box: fit.Container, refusal: parcels.Refusal, skus: dict[str, str]) -> Text:
    misfit, material, inner = refusal.misfit, box.material, parcels.mm(box.inner)
    unit = misfit.unit
    match misfit.why:
        case fit.Why.RIGID_IN_MAILER if unit is not None:
            return t(
                "{material} is a soft mailer; unit {serial} ({sku}) is rigid or boxed and "
                "goes in a carton.",
                material=material,
                serial=unit.key,
                sku=skus.get(unit.key, "?"),
            )
        case fit.Why.TOO_HEAVY:
            return t(
                "{material} takes at most {max_load} g; these units weigh {load} g.",
                material=material,
                max_load=format(box.max_load_g, "g"),
                load=format(misfit.load_g, "g"),
            )
        case fit.Why.TOO_BIG if unit is not None:
            return t(
                "Unit {serial} ({sku}, {dims} mm) does not fit in {material} ({inner} mm).",
                serial=unit.key,
                sku=skus.get(unit.key, "?"),
                dims=parcels.mm(unit.dims),
                material=material,
                inner=inner,
            )
    return t(
        "Units {serials} do not fit together in {material} ({inner} mm).",
        serials=listing(refusal.units),
        material=material,
        inner=inner,
    )


def _check_lot(s: Session, material: str, lot: str | None) -> None:
    """A lot-tracked container (rare) is scanned by a usable lot of the line's stock."""
    core = s.core
    found = core.catalog.materials.get(material)
    if found is None or not found.lot_tracked:
        return
    if lot is None:
        raise Refused(
            "LOT_REQUIRED",
            t(
                "{material} is lot-tracked: scan its lot label, not the material code.",
                material=material,
            ),
            t("Scan the lot label."),
        )
    bal = core.ledger.lot(material, lot)
    if bal is None or not bal.usable(core.today(), core.config.policies.lot_expiry_margin_days):
        raise Refused(
            "UNKNOWN_LOT",
            t("Lot {lot} is not in this line's stock.", lot=lot),
            t("Ask the line lead for a usable lot."),
        )


def decide(s: Session, containers: Sequence[tuple[str, int]] | None, reason: str, by: str) -> Done:
    """A line lead decides the containers of the parcel at this station (``containers``:
    material and quantity), or to pack it as the BOM says (None): when no container holds
    a unit, or instead of the proposal, before any container is scanned."""
    core = s.core
    if not reason:
        raise Refused(
            "REASON_REQUIRED",
            t("A decision on the parcel needs a reason."),
            t("Say why these containers."),
        )
    task = s.require_current()
    if task.serial is not None:
        raise Refused(
            "NO_PARCEL",
            t("Station {station} is not packing a parcel.", station=s.station_id),
            task_next(core, task),
        )
    progress = task.progress()
    if task.status is not TaskStatus.RUNNING or progress.parcel is None:
        raise Refused(
            "UNITS_FIRST",
            t("Scan the order's units first: the parcel's containers are chosen for them."),
            task_next(core, task),
        )
    if progress.label_id is not None:
        raise Refused(
            "ALREADY_WEIGHED",
            t("The parcel is weighed and labelled ({label_id}).", label_id=progress.label_id),
            t("Scan the shipping label {label_id}.", label_id=progress.label_id),
        )
    scanned = [e.material for e in progress.lots if parcels.container(core, e.material)]
    if scanned:
        raise Refused(
            "CONTAINERS_SCANNED",
            t(
                "Containers are already scanned for this parcel: {materials}.",
                materials=listing(scanned),
            ),
            t("Fail the parcel with rework to repack it, then decide."),
        )
    decided = _decided(s, containers, reason, by)
    with core.store.transaction():
        progress.parcel = decided
        tasks.save_progress(core, task.task_id, progress)
        clear_alarm(core, parcels.alarm_id(task.order_id), f"{by} decided the parcel's containers")
    if decided.mode is ParcelMode.BOM:
        said = t(
            "{by} decided: order {order_id} is packed as the BOM says, one container per "
            "unit ({reason}).",
            by=by,
            order_id=task.order_id,
            reason=reason,
        )
    else:
        said = t(
            "{by} decided: order {order_id} is packed in {containers} ({reason}).",
            by=by,
            order_id=task.order_id,
            containers=containers_text(decided),
            reason=reason,
        )
    return Done(said)


def _decided(
    s: Session, containers: Sequence[tuple[str, int]] | None, reason: str, by: str
) -> Parcel:
    if containers is None:
        return Parcel(mode=ParcelMode.BOM, decided_by=by, reason=reason)
    core = s.core
    known = sorted(c.material for c in parcels.catalog_containers(core.catalog.materials))
    if not containers:
        raise Refused(
            "CONTAINERS_REQUIRED",
            t("Name the containers, or say to pack as the BOM says (not both)."),
            t("Choose the containers and their quantities."),
        )
    unknown = [m for m, _ in containers if m not in known]
    if unknown:
        raise Refused(
            "NOT_A_CONTAINER",
            t(
                "{materials} is not a container material of the catalog.",
                materials=listing(unknown),
            ),
            t("Choose among {containers}.", containers=listing(known)),
        )
    if any(not 1 <= qty <= MAX_DECIDED_QTY for _, qty in containers):
        raise Refused(
            "BAD_QTY",
            t("A container's quantity must be 1 to {most}.", most=MAX_DECIDED_QTY),
            t("Say how many of each container."),
        )
    slots = [ParcelSlot(material=m) for m, qty in containers for _ in range(qty)]
    return Parcel(mode=ParcelMode.DECIDED, slots=slots, decided_by=by, reason=reason)


def kept_on_repack(progress: Progress) -> Parcel | None:
    """What a parcel to be repacked keeps: a line lead's decision (its containers to be
    scanned again); a proposal is made anew from its first unit."""
    parcel = progress.parcel
    if parcel is None or parcel.decided_by is None:
        return None
    return parcel.model_copy(
        update={"slots": [slot.model_copy(update={"filled": False}) for slot in parcel.slots]}
    )
