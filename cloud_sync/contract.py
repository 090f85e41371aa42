"""Wire models of the hub protocol, version 1.1 (shared/contract is normative).

The models mirror ``schemas/*.schema.json`` (vendored copies of shared/contract), and
``tests/contract`` keeps them in step. Extra fields are allowed and kept, as the contract
asks. Numbers and strings are strict: ``"5"`` is not an integer on this wire.

Version 1.1 only adds event types and optional fields, so the topics and the envelope's
``v`` stay at 1.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

PROTOCOL_VERSION = 1
TOPIC_ROOT = "linegate/v1"
SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Topic suffixes after ``linegate/v1/{site}/{line}/``.
IN_CATALOG = "in/masterdata/catalog"
IN_STOCK = "in/masterdata/stock"
IN_ORDERS = "in/orders"
IN_CANCEL = "in/cancel"
OUT_EVENTS = "out/events"
OUT_STATUS = "out/status"
INBOUND_TOPICS = (IN_CATALOG, IN_STOCK, IN_ORDERS, IN_CANCEL)

EVENT_TYPES = (
    "order.accepted",
    "order.rejected",
    "order.cancelled",
    "workorder.created",
    "task.dispatched",
    "task.started",
    "task.completed",
    "task.failed",
    "quality.checked",
    "defect.recorded",
    "material.consumed",
    "material.shortage",
    "label.printed",
    "unit.completed",
    "order.completed",
    "machine.state",
    "alarm.raised",
    "alarm.cleared",
    "kpi.snapshot",
    # Version 1.1 additions: hubs keep these even when they do not know them.
    "order.progress",
    "order.costed",
    "material.requested",
    "report.published",
    "audit.recorded",
)


def topic_prefix(site: str, line: str) -> str:
    """``linegate/v1/{site}/{line}/`` after checking both segments."""
    for name, value in (("site", site), ("line", line)):
        if not SEGMENT.match(value):
            raise ValueError(f"{name} {value!r} must match [A-Za-z0-9_-]{{1,32}}")
    return f"{TOPIC_ROOT}/{site}/{line}/"


class _Open(BaseModel):
    """Extra fields are allowed in both directions and must be kept."""

    # NaN and Infinity are no JSON numbers (wire_json finds them first, with their field).
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)


def _text_only(value: Any) -> Any:
    """A date-time on this wire is an RFC 3339 string, never a number of seconds."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


WireDatetime = Annotated[AwareDatetime, BeforeValidator(_text_only)]

PersonalizationValue = StrictStr | StrictInt | StrictFloat | StrictBool

# A JSON Schema ``"exclusiveMinimum": 0`` number: sizes and loads are never zero.
Positive = Annotated[StrictInt | StrictFloat, Field(gt=0)]
# Length, width, height in mm; a tuple because the schema fixes exactly three items.
SizeMm = tuple[Positive, Positive, Positive]


class Destination(_Open):
    name: Annotated[StrictStr, Field(max_length=128)] | None = None
    country: Annotated[StrictStr, Field(max_length=2)] | None = None
    region: Annotated[StrictStr, Field(max_length=64)] | None = None
    city: Annotated[StrictStr, Field(max_length=64)] | None = None
    postcode: Annotated[StrictStr, Field(max_length=16)] | None = None
    address: Annotated[StrictStr, Field(max_length=256)] | None = None


class OrderLine(_Open):
    line_no: Annotated[StrictInt, Field(ge=1)] | None = None
    sku: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    qty: Annotated[StrictInt, Field(ge=1, le=1000)]
    personalization: Annotated[
        dict[str, PersonalizationValue], Field(max_length=32, default_factory=dict)
    ]


class Order(_Open):
    """An order released by the hub to a line (order.schema.json)."""

    order_id: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    revision: Annotated[StrictInt, Field(ge=1)] = 1
    channel: Annotated[StrictStr, Field(max_length=64)] | None = None
    placed_at: WireDatetime | None = None
    ship_by: WireDatetime
    priority: Annotated[StrictInt, Field(ge=0, le=9)] = 5
    carrier: Annotated[StrictStr, Field(max_length=32)] | None = None
    destination: Destination | None = None
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=200)]


class Cancel(_Open):
    """``in/cancel``: stop an order."""

    order_id: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    reason: StrictStr = ""


class Container(_Open):
    """A material that is a shipping container: the parcel, chosen per order at packing."""

    # A soft mailer takes only crushable units; a carton takes any.
    kind: Literal["mailer", "carton"]
    inner_mm: SizeMm
    max_load_g: Positive


class Material(_Open):
    material: StrictStr
    name: StrictStr | None = None
    uom: StrictStr = "pcs"
    lot_tracked: StrictBool = False
    # Per uom, in the catalog's currency (what order.costed prices materials at).
    standard_cost: Annotated[StrictInt | StrictFloat, Field(ge=0)] | None = None
    container: Container | None = None


class QualityChecks(_Open):
    weight: StrictBool = False
    checklist: list[StrictStr] = Field(default_factory=list)


class Media(_Open):
    """A picture or document of the e-SOP; the gateway fetches it once and checks sha256."""

    url: StrictStr
    sha256: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
    kind: Literal["image", "pdf", "video"] = "image"
    caption: StrictStr | None = None
    # The 1-based instruction step it illustrates; None: the whole operation.
    step: Annotated[StrictInt, Field(ge=1)] | None = None


class Operation(_Open):
    op: StrictStr
    capability: StrictStr
    setup_s: Annotated[StrictInt | StrictFloat, Field(ge=0)] = 0
    run_s: Annotated[StrictInt | StrictFloat, Field(ge=0)]
    setup_key: StrictStr | None = None
    params: list[StrictStr] = Field(default_factory=list)
    instructions: list[StrictStr] = Field(default_factory=list)
    qc: QualityChecks = Field(default_factory=QualityChecks)
    # Steps per BCP 47 language tag; ``instructions`` is the fallback for a missing one.
    instructions_i18n: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict)
    media: list[Media] = Field(default_factory=list)


class Routing(_Open):
    routing: StrictStr
    operations: Annotated[list[Operation], Field(min_length=1)]


class BomLine(_Open):
    material: StrictStr
    qty: Annotated[StrictInt | StrictFloat, Field(gt=0)]
    op: StrictStr | None = None


class Sku(_Open):
    sku: StrictStr
    name: StrictStr | None = None
    routing: StrictStr
    unit_weight_g: Annotated[StrictInt | StrictFloat, Field(ge=0)] | None = None
    weight_tolerance_g: Annotated[StrictInt | StrictFloat, Field(ge=0)] | None = None
    bom: list[BomLine] = Field(default_factory=list)
    # Outer size of one finished unit as it goes into the parcel.
    dims_mm: SizeMm | None = None
    # False: rigid or boxed, never into a soft mailer.
    crushable: StrictBool = True


class Catalog(_Open):
    """``kind = "catalog"``: materials, routings and SKUs."""

    kind: Literal["catalog"]
    version: StrictStr
    materials: list[Material]
    routings: list[Routing]
    skus: list[Sku]
    # ISO 4217 code of every cost in the catalog (material standard_cost).
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")] | None = None


class StockItem(_Open):
    material: StrictStr
    lot: StrictStr | None = None
    qty: Annotated[StrictInt | StrictFloat, Field(ge=0)]
    expires: date | None = None


class Stock(_Open):
    """``kind = "stock"``: a full snapshot of what the WMS holds for this line."""

    kind: Literal["stock"]
    as_of: WireDatetime
    items: list[StockItem]


class Envelope(_Open):
    """One outbound event (event.schema.json)."""

    v: Literal[1]
    gateway_id: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,32}/[A-Za-z0-9_-]{1,32}$")]
    seq: Annotated[StrictInt, Field(ge=1)]
    event_id: StrictStr
    ts: AwareDatetime
    type: Annotated[StrictStr, Field(pattern=r"^[a-z_]+\.[a-z_]+$")]
    order_id: StrictStr | None = None
    data: dict[str, Any]


class Status(_Open):
    """Retained ``out/status``; ``offline`` is the MQTT will."""

    gateway_id: StrictStr
    state: Literal["online", "offline"]
    ts: AwareDatetime
    version: StrictStr
