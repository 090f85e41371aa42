"""The JSON kept in the store's text columns, as models: read and written only through these.

- ``tasks.work``: :class:`Progress`, what the operator has done in the current attempt;
- ``work_orders.sku_doc``: :class:`SkuSnapshot`, what a work order keeps of its SKU;
- ``work_orders.operations``: the routing frozen at acceptance, the contract's
  :class:`~cloud_sync.contract.Operation` list (parsed by the catalog cache, once per text);
- ``work_orders.personalization``: :data:`Personalization`;
- ``attempts.lots``: :class:`UsedLot` list; ``rejections.errors``: :class:`RejectionError` list;
- ``quality.measured``: any JSON value (a weight, or the checklist's answers).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from cloud_sync.contract import PersonalizationValue


class ScannedLot(BaseModel):
    """A material (and its lot, for lot-tracked ones) scanned for a task's attempt."""

    model_config = ConfigDict(frozen=True)

    material: str
    lot: str | None
    qty: float


class ParcelMode(StrEnum):
    """How a parcel's containers are decided (gateway/orderbook/parcels.py)."""

    PROPOSED = "proposed"  # the gateway's proposal, each slot as proposed or as replaced
    BOM = "bom"  # the BOM's containers, one per unit (no dims, no containers, or a lead)
    WAITING = "waiting"  # a unit fits no container: a line lead decides
    DECIDED = "decided"  # a line lead chose the containers


class ParcelSlot(BaseModel):
    """One container of the parcel and the units it holds."""

    material: str  # the container wanted for it now
    units: list[str] = Field(default_factory=list)  # serials; none when a lead decided
    proposed: str | None = None  # what the gateway proposed (None: a lead's decision)
    filled: bool = False  # its container was scanned


class ParcelMisfit(BaseModel):
    """Why no container was proposed: a unit that fits no container, even alone."""

    model_config = ConfigDict(frozen=True)

    serial: str
    sku: str
    dims_mm: tuple[float, float, float]
    largest: str  # the largest container material
    largest_mm: tuple[float, float, float]


class Parcel(BaseModel):
    """The parcel's containers: the proposal made when its first unit was scanned, what
    the operator's scans made of it, or a line lead's decision."""

    mode: ParcelMode
    slots: list[ParcelSlot] = Field(default_factory=list)
    misfit: ParcelMisfit | None = None  # WAITING: the unit no container holds
    missing_dims: list[str] = Field(default_factory=list)  # BOM: SKUs without dims_mm
    decided_by: str | None = None  # a line lead's decision (DECIDED, or BOM by a lead)
    reason: str | None = None


class Progress(BaseModel):
    """What the operator has done in the current attempt of a task (``tasks.work``)."""

    lots: list[ScannedLot] = Field(default_factory=list)
    checklist: dict[str, bool] = Field(default_factory=dict)  # item index (as text) → passed
    weight_g: float | None = None
    weight_ok: bool = False
    units: list[str] = Field(default_factory=list)  # packing: serials in the parcel
    label_id: str | None = None  # packing: the shipping label printed for the parcel
    confirmed: bool = False  # the unit's traveller was scanned: the right item is in hand
    pause_reason: str | None = None
    machine_job: str | None = None  # the job downloaded to the station's machine
    machine_done: bool = False  # the machine reported the job finished
    parcel: Parcel | None = None  # packing: the parcel's containers, from its first unit

    def dump(self) -> str:
        # Most tasks are no parcel: their JSON stays as it was (bytes written per task).
        return self.model_dump_json(exclude={"parcel"} if self.parcel is None else None)

    def scanned(self, material: str) -> ScannedLot | None:
        return next((e for e in self.lots if e.material == material), None)


class SnapshotBomLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    material: str
    qty: float
    op: str  # the operation that consumes it (the routing's first when the catalog said none)
    lot_tracked: bool
    # A container material (contract 1.1): not consumed one per unit, the parcel chooses.
    container: bool = False


class SkuSnapshot(BaseModel):
    """What a work order keeps of its SKU (``work_orders.sku_doc``): a later catalog does
    not change accepted work."""

    model_config = ConfigDict(frozen=True)

    sku: str
    name: str
    unit_weight_g: float
    weight_tolerance_g: float
    bom: tuple[SnapshotBomLine, ...]
    # Contract 1.1 "Parcels" (a snapshot from before them has neither: no dims, crushable).
    dims_mm: tuple[float, float, float] | None = None
    crushable: bool = True


class UsedLot(BaseModel):
    """What an attempt consumed (``attempts.lots``, and the ``lots`` of task events)."""

    model_config = ConfigDict(frozen=True)

    material: str
    lot: str | None
    qty: float


class RejectionError(BaseModel):
    """One reason a hub message was refused: the contract's ``{code, field, message}``."""

    model_config = ConfigDict(frozen=True)

    code: str
    field: str
    message: str


Personalization = dict[str, PersonalizationValue]

PERSONALIZATION: TypeAdapter[Personalization] = TypeAdapter(Personalization)
USED_LOTS: TypeAdapter[list[UsedLot]] = TypeAdapter(list[UsedLot])
REJECTION_ERRORS: TypeAdapter[list[RejectionError]] = TypeAdapter(list[RejectionError])
MEASURED: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)
