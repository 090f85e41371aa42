"""The elements of a period: the seconds and counts every KPI is computed from.

ISO 22400-2 names (docs/architecture.md "Numbers"): per station PBT (planned busy time),
APT (actual production time), ADET (delay: faults, holds, handling), AUST (setup), ADOT
(idle, no work: starved), PQ/GQ/SQ/RQ (produced, good, scrap, rework quantities) and
PRI × PQ (standard time of what was produced); per operator APAT (attendance) and APWT
(work time) and the standard time earned. Elements add up: the elements of a week are the
sum of its days' (:meth:`Elements.add`), so a roll-up sums numerators and denominators and
never averages percentages, and a report for a period whose raw rows were pruned comes
from the stored elements of its parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CostSum",
    "DefectCount",
    "Elements",
    "HourOutput",
    "LateOrder",
    "MaterialUse",
    "OperatorElements",
    "StationElements",
    "Wip",
    "Words",
]

_CONFIG = ConfigDict(extra="forbid")


class _Addable(Protocol):
    def add(self, other: Any, /) -> Any: ...

    def model_copy(self, *, deep: bool = ...) -> Any: ...


M = TypeVar("M", bound=_Addable)


def _add_maps(into: dict[str, M], other: dict[str, M]) -> None:
    for key, value in other.items():
        mine = into.get(key)
        into[key] = value.model_copy(deep=True) if mine is None else mine.add(value)


def _add_floats(into: dict[str, float], other: dict[str, float]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0.0) + value


class Words(BaseModel):
    """A sentence in both languages (what a report says, kept with the numbers)."""

    model_config = _CONFIG

    en: str
    zh: str


class StationElements(BaseModel):
    model_config = _CONFIG

    machine: str | None = None
    pbt_s: float = 0.0
    apt_s: float = 0.0
    adet_s: float = 0.0
    aust_s: float = 0.0
    adot_s: float = 0.0
    # ADET by reason (a machine's stop reason, a pause's reason, "handling" …).
    downtime: dict[str, float] = Field(default_factory=dict)
    pq: int = 0
    gq: int = 0
    sq: int = 0
    rq: int = 0
    pri_pq_s: float = 0.0  # Σ standard time of the attempts produced (PRI × PQ)
    tasks_completed: int = 0
    tasks_failed: int = 0
    busy_s: float = 0.0  # Σ (end − start) of the attempts that ended
    # Σ (taken − ready) over the attempts that ended: how long work queued before it.
    queue_wait_s: float = 0.0
    queued: int = 0

    def add(self, other: StationElements) -> Self:
        out = self.model_copy(deep=True)
        for name in type(self).model_fields:
            if name in ("machine", "downtime"):
                continue
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.machine = self.machine or other.machine
        _add_floats(out.downtime, other.downtime)
        return out


class OperatorElements(BaseModel):
    model_config = _CONFIG

    apat_s: float = 0.0  # signed in, breaks excluded
    apwt_s: float = 0.0  # working on tasks (attempts' start → end, within the period)
    earned_s: float = 0.0  # Σ standard time of the attempts completed
    completed: int = 0
    failed: int = 0

    def add(self, other: OperatorElements) -> Self:
        out = self.model_copy()
        for name in type(self).model_fields:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out


class MaterialUse(BaseModel):
    model_config = _CONFIG

    used: float = 0.0
    standard: float = 0.0  # the BOM's quantity for what was completed

    def add(self, other: MaterialUse) -> Self:
        return self.model_copy(
            update={"used": self.used + other.used, "standard": self.standard + other.standard}
        )


class HourOutput(BaseModel):
    model_config = _CONFIG

    units: int = 0
    orders: int = 0

    def add(self, other: HourOutput) -> Self:
        return self.model_copy(
            update={"units": self.units + other.units, "orders": self.orders + other.orders}
        )


class CostSum(BaseModel):
    """order.costed of the orders costed in the period, by SKU (an order of several SKUs
    is split by its lines' share)."""

    model_config = _CONFIG

    orders: float = 0.0
    units: int = 0
    labour: float = 0.0
    machine: float = 0.0
    materials: float = 0.0
    scrap: float = 0.0
    total: float = 0.0

    def add(self, other: CostSum) -> Self:
        out = self.model_copy()
        for name in type(self).model_fields:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out


class DefectCount(BaseModel):
    model_config = _CONFIG

    reason: str
    station: str | None
    sku: str | None
    operator: str | None
    disposition: str
    count: int


class LateOrder(BaseModel):
    """An order due in the period that was not packed by its ship-by."""

    model_config = _CONFIG

    order_id: str
    ship_by: str
    completed_at: str | None  # None: still open when the period closed
    why: list[Words] = Field(default_factory=list)


class Wip(BaseModel):
    """Orders accepted and not yet packed nor cancelled, at the period's end."""

    model_config = _CONFIG

    count: int = 0
    age_p50_s: float | None = None
    age_max_s: float | None = None


class Elements(BaseModel):
    """Everything a period's KPIs and report are computed from."""

    model_config = _CONFIG

    start: str
    end: str
    stations: dict[str, StationElements] = Field(default_factory=dict)
    operators: dict[str, OperatorElements] = Field(default_factory=dict)
    orders_due: int = 0
    orders_on_time: int = 0
    late: list[LateOrder] = Field(default_factory=list)
    orders_completed: int = 0
    units_completed: int = 0
    units_first_pass: int = 0
    units_scrapped: int = 0
    checks: int = 0
    checks_passed: int = 0
    lead_times_s: list[float] = Field(default_factory=list)
    orders_packed: int = 0  # pack attempts completed: parcels confirmed
    pack_errors: int = 0  # wrong or missing items refused at packing, and parcels mis-weighed
    pack_errors_by_code: dict[str, int] = Field(default_factory=dict)
    defects: list[DefectCount] = Field(default_factory=list)
    materials: dict[str, MaterialUse] = Field(default_factory=dict)
    hourly: dict[str, HourOutput] = Field(default_factory=dict)  # local hour → output
    wip: Wip = Field(default_factory=Wip)
    costs: dict[str, CostSum] = Field(default_factory=dict)
    currency: str | None = None
    planned_units: int | None = None  # what the plan in force at the start expected
    planned_orders: int | None = None
    plan_source: str | None = None

    def add(self, later: Elements) -> Elements:
        """These elements followed by ``later``'s (the next, adjoining period)."""
        out = self.model_copy(deep=True)
        out.absorb(later)
        return out

    def absorb(self, later: Elements) -> None:
        """Add ``later``'s elements (the next, adjoining period) to these, in place: a day
        summed from its 96 quarters copies nothing (``add`` copies once)."""
        self.end = later.end
        _add_maps(self.stations, later.stations)
        _add_maps(self.operators, later.operators)
        _add_maps(self.materials, later.materials)
        _add_maps(self.hourly, later.hourly)
        _add_maps(self.costs, later.costs)
        for name in (
            "orders_due",
            "orders_on_time",
            "orders_completed",
            "units_completed",
            "units_first_pass",
            "units_scrapped",
            "checks",
            "checks_passed",
            "orders_packed",
            "pack_errors",
        ):
            setattr(self, name, getattr(self, name) + getattr(later, name))
        self.late.extend(later.late)
        self.lead_times_s.extend(later.lead_times_s)
        _add_ints(self.pack_errors_by_code, later.pack_errors_by_code)
        if later.defects:
            self.defects = _merge_defects([*self.defects, *later.defects])
        self.wip = later.wip  # a level, not a flow: the one at the end
        self.currency = self.currency or later.currency
        if self.planned_units is not None or later.planned_units is not None:
            self.planned_units = (self.planned_units or 0) + (later.planned_units or 0)
            self.planned_orders = (self.planned_orders or 0) + (later.planned_orders or 0)
            self.plan_source = self.plan_source or later.plan_source

    @classmethod
    def total(cls, parts: Iterable[Elements]) -> Elements:
        """The elements of adjoining periods, in order, as one."""
        it = iter(parts)
        out = next(it).model_copy(deep=True)
        for part in it:
            out.absorb(part)
        return out


def _add_ints(into: dict[str, int], other: dict[str, int]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


def _merge_defects(items: list[DefectCount]) -> list[DefectCount]:
    counts: dict[tuple[str, str | None, str | None, str | None, str], int] = {}
    for d in items:
        key = (d.reason, d.station, d.sku, d.operator, d.disposition)
        counts[key] = counts.get(key, 0) + d.count
    return [
        DefectCount(reason=k[0], station=k[1], sku=k[2], operator=k[3], disposition=k[4], count=n)
        for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]
