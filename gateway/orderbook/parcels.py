"""The parcel at packing (contract 1.1 "Parcels"): which containers an order's units go in.

When the parcel starts (its first unit scanned at the pack station, in that scan's
transaction) the gateway proposes the cheapest set of containers holding every unit by
size, kind and load (:mod:`gateway.orderbook.parcels_fit`) and keeps it in the pack task's
:class:`~gateway.store.documents.Progress`: one *slot* per container, with the units it
holds. The pack task then needs those containers instead of its BOM's container lines,
one per unit (:func:`gateway.orderbook.tasks.needs`); what is scanned is consumed and
reported like any material (``material.consumed``), and ``order.completed`` lists the
containers.

A container scanned that is not the one a slot wants still goes when it holds that slot's
units (or the whole order's): it replaces the slot (:func:`take`). One that holds none is
refused with why (gateway/desk/pack.py says it).

When the gateway cannot propose:

- a unit fits no container at all (the catalog's containers are all smaller than it):
  the parcel waits (``WAITING``) and alarm ``parcel:ORDER`` (kind ``packing``) says which
  unit and the largest container, until a line lead decides the containers or to pack as
  the BOM says (gateway/desk/pack.py ``decide``);
- a unit's SKU has no ``dims_mm``, or the catalog has no container material: the parcel
  uses the BOM's containers, one per unit, as before 1.1 (``BOM``), and alarm
  ``masterdata:dims:SKU`` (or ``masterdata:containers``, kind ``masterdata``) says so, once
  per SKU while it lasts; a parcel of that SKU with dims later clears it.

Costs: a container's ``standard_cost``; one without counts after every priced one, by
its volume's rank (:func:`~gateway.orderbook.parcels_fit.ranked_costs`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cloud_sync.contract import Material
from gateway.i18n import Text, t
from gateway.orderbook import parcels_fit as fit
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.orderbook.context import LineContext
from gateway.store.documents import (
    Parcel,
    ParcelMisfit,
    ParcelMode,
    ParcelSlot,
    ScannedLot,
    SkuSnapshot,
)
from gateway.store.rows import Severity, UnitWithSku

__all__ = [
    "NO_CONTAINERS_ALARM",
    "Refusal",
    "Taken",
    "alarm_id",
    "catalog_containers",
    "container",
    "container_needs",
    "misfit_text",
    "mm",
    "packed_containers",
    "plan",
    "record_scan",
    "start",
    "take",
    "unit_of",
]

NO_CONTAINERS_ALARM = "masterdata:containers"


def alarm_id(order_id: str) -> str:
    """The alarm of a parcel no container holds."""
    return f"parcel:{order_id}"


def _dims_alarm(sku: str) -> str:
    return f"masterdata:dims:{sku}"


def mm(dims: Iterable[float]) -> str:
    """Sizes as people write them: 110×110×230."""
    return "×".join(f"{d:g}" for d in dims)


# -- from the catalog and the units ---------------------------------------------------------


def catalog_containers(materials: Mapping[str, Material]) -> list[fit.Container]:
    """The catalog's container materials as the fit sees them."""
    found = [m for m in materials.values() if m.container is not None]
    costs = fit.ranked_costs(
        [
            (
                m.material,
                None if m.standard_cost is None else float(m.standard_cost),
                _volume(m),
            )
            for m in found
        ]
    )
    out = []
    for m in found:
        c = m.container
        assert c is not None
        inner = (float(c.inner_mm[0]), float(c.inner_mm[1]), float(c.inner_mm[2]))
        out.append(
            fit.Container(
                m.material, fit.Kind(c.kind), inner, float(c.max_load_g), costs[m.material]
            )
        )
    return out


def _volume(m: Material) -> float:
    assert m.container is not None
    a, b, c = m.container.inner_mm
    return float(a) * float(b) * float(c)


def container(core: LineContext, material: str) -> fit.Container | None:
    """``material`` as a container, when the catalog in force says it is one."""
    return next(
        (c for c in catalog_containers(core.catalog.materials) if c.material == material), None
    )


def unit_of(serial: str, snapshot: SkuSnapshot) -> fit.Unit | None:
    """A unit as the fit sees it; None when its SKU has no size."""
    if snapshot.dims_mm is None:
        return None
    return fit.Unit(serial, snapshot.dims_mm, snapshot.unit_weight_g, snapshot.crushable)


# -- the proposal -------------------------------------------------------------------------


def plan(core: LineContext, units: Sequence[UnitWithSku]) -> Parcel:
    """The parcel the gateway proposes for ``units`` now (reads the catalog, writes
    nothing)."""
    boxes = catalog_containers(core.catalog.materials)
    snapshots = [(u.unit.serial, u.snapshot()) for u in units]
    if not boxes:
        return Parcel(mode=ParcelMode.BOM)
    missing = sorted({s.sku for _, s in snapshots if s.dims_mm is None})
    if missing:
        return Parcel(mode=ParcelMode.BOM, missing_dims=missing)
    fitted = [unit_of(serial, s) for serial, s in snapshots]
    items = [u for u in fitted if u is not None]
    chosen = fit.choose(boxes, items)
    if isinstance(chosen, fit.NoFit):
        sku = next(s.sku for serial, s in snapshots if serial == chosen.unit.key)
        largest = chosen.largest
        return Parcel(
            mode=ParcelMode.WAITING,
            misfit=ParcelMisfit(
                serial=chosen.unit.key,
                sku=sku,
                dims_mm=chosen.unit.dims,
                largest=largest.material,
                largest_mm=largest.inner,
            ),
        )
    return Parcel(
        mode=ParcelMode.PROPOSED,
        slots=[
            ParcelSlot(
                material=p.container.material, units=sorted(p.keys), proposed=p.container.material
            )
            for p in chosen
        ],
    )


def start(core: LineContext, order_id: str, units: Sequence[UnitWithSku]) -> Parcel:
    """The parcel of ``order_id`` starts (its first unit scanned): the proposal, and the
    alarms of a parcel the gateway could not propose; in the caller's transaction."""
    parcel = plan(core, units)
    if parcel.mode is ParcelMode.WAITING:
        assert parcel.misfit is not None
        raise_alarm(
            core,
            alarm_id(order_id),
            "packing",
            order_id,
            Severity.WARNING,
            misfit_text(order_id, parcel.misfit),
        )
        return parcel
    if parcel.mode is ParcelMode.BOM and not parcel.missing_dims:
        raise_alarm(
            core,
            NO_CONTAINERS_ALARM,
            "masterdata",
            "catalog",
            Severity.WARNING,
            t(
                "The catalog names no container material: parcels are packed in the BOM's "
                "containers, one per unit."
            ),
        )
        return parcel
    clear_alarm(core, NO_CONTAINERS_ALARM, "the catalog names container materials")
    skus = sorted({u.snapshot().sku for u in units})
    for sku in skus:
        if sku in parcel.missing_dims:
            raise_alarm(
                core,
                _dims_alarm(sku),
                "masterdata",
                sku,
                Severity.WARNING,
                t(
                    "SKU {sku} has no dimensions (dims_mm): its parcels are packed in the "
                    "BOM's containers, one per unit.",
                    sku=sku,
                ),
            )
        else:
            clear_alarm(core, _dims_alarm(sku), f"SKU {sku} has its dimensions")
    return parcel


def misfit_text(order_id: str, misfit: ParcelMisfit) -> Text:
    return t(
        "No container fits order {order_id}: unit {serial} ({sku}) is {dims} mm; the "
        "largest container, {largest}, is {largest_dims} mm.",
        order_id=order_id,
        serial=misfit.serial,
        sku=misfit.sku,
        dims=mm(misfit.dims_mm),
        largest=misfit.largest,
        largest_dims=mm(misfit.largest_mm),
    )


def container_needs(parcel: Parcel) -> dict[str, int]:
    """The containers the parcel's slots want, by material (in the slots' order)."""
    return dict(Counter(slot.material for slot in parcel.slots))


# -- a container scanned ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Taken:
    """A scanned container put to a slot (or to the whole order)."""

    parcel: Parcel
    qty: int  # how many containers of it the scan records
    replaced: tuple[str, ...]  # the materials it took the place of (none: as wanted)
    units: tuple[str, ...] = ()  # what the replacing container holds


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a scanned container holds no open slot's units: the first open slot's."""

    misfit: fit.Misfit
    units: tuple[str, ...]  # that slot's serials


def take(parcel: Parcel, box: fit.Container, units: Mapping[str, fit.Unit]) -> Taken | Refusal:
    """Put the scanned container ``box`` to the parcel's open slots: every open slot that
    wants it; else, when every slot is open, the whole order if it holds all units (the
    slots become one); else the first open slot whose units it holds, which it replaces.
    ``units``: the order's units by serial. The parcel must have an open slot."""
    open_slots = [i for i, slot in enumerate(parcel.slots) if not slot.filled]
    assert open_slots, "no open slot"
    material = box.material
    wanted = [i for i in open_slots if parcel.slots[i].material == material]
    slots = [s.model_copy() for s in parcel.slots]
    if wanted:
        for i in wanted:
            slots[i].filled = True
        return Taken(parcel.model_copy(update={"slots": slots}), len(wanted), ())
    if len(open_slots) == len(slots) > 1:
        every = [units[k] for s in slots for k in s.units if k in units]
        if fit.pack(box, every) is not None:
            keys = sorted(u.key for u in every)
            whole = ParcelSlot(material=material, units=keys, proposed=None, filled=True)
            replaced = tuple(s.material for s in slots)
            return Taken(parcel.model_copy(update={"slots": [whole]}), 1, replaced, tuple(keys))
    for i in open_slots:
        held = [units[k] for k in slots[i].units if k in units]
        if fit.pack(box, held) is not None:
            replaced = (slots[i].material,)
            slots[i] = slots[i].model_copy(update={"material": material, "filled": True})
            return Taken(
                parcel.model_copy(update={"slots": slots}), 1, replaced, tuple(slots[i].units)
            )
    first = slots[open_slots[0]]
    held = [units[k] for k in first.units if k in units]
    why = fit.misfit(box, held) or fit.Misfit(fit.Why.NO_ROOM)
    return Refusal(why, tuple(first.units))


def record_scan(lots: list[ScannedLot], material: str, lot: str | None, qty: int) -> None:
    """Add ``qty`` containers of ``material`` to what the attempt scanned (one entry per
    material and lot, as the consumption reports it)."""
    for i, entry in enumerate(lots):
        if entry.material == material and entry.lot == lot:
            lots[i] = ScannedLot(material=material, lot=lot, qty=entry.qty + qty)
            return
    lots.append(ScannedLot(material=material, lot=lot, qty=float(qty)))


def packed_containers(core: LineContext, lots: Iterable[ScannedLot]) -> list[dict[str, object]]:
    """``order.completed``'s ``containers``: what the parcel consumed that the catalog
    calls a container, by material."""
    qty: dict[str, float] = {}
    for entry in lots:
        found = core.catalog.materials.get(entry.material)
        if found is not None and found.container is not None:
            qty[entry.material] = qty.get(entry.material, 0.0) + entry.qty
    return [{"material": m, "qty": q} for m, q in sorted(qty.items())]
