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

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from cloud_sync.contract import PersonalizationValue


class ScannedLot(BaseModel):
    """A material (and its lot, for lot-tracked ones) scanned for a task's attempt."""

    model_config = ConfigDict(frozen=True)

    material: str
    lot: str | None
    qty: float


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

    def dump(self) -> str:
        return self.model_dump_json()

    def scanned(self, material: str) -> ScannedLot | None:
        return next((e for e in self.lots if e.material == material), None)


class SnapshotBomLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    material: str
    qty: float
    op: str  # the operation that consumes it (the routing's first when the catalog said none)
    lot_tracked: bool


class SkuSnapshot(BaseModel):
    """What a work order keeps of its SKU (``work_orders.sku_doc``): a later catalog does
    not change accepted work."""

    model_config = ConfigDict(frozen=True)

    sku: str
    name: str
    unit_weight_g: float
    weight_tolerance_g: float
    bom: tuple[SnapshotBomLine, ...]


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
