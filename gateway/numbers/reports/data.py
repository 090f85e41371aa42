"""What a report is made from (``report.json``): the period, its elements and its KPIs, the
previous period's for the comparison, and the analysis' sentences.

The KPIs are kept as ``kpi_doc`` made them (the same document as the period's
``kpi.snapshot``), and read through :class:`KpiDoc`, its typed view. Its models allow
fields they do not name, so a figure added to ``kpi_doc`` later is kept, not refused.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gateway.numbers.model import Elements, Words

__all__ = [
    "KpiDoc",
    "LineKpis",
    "OperatorKpis",
    "PeriodInfo",
    "PreviousPeriod",
    "Ratio",
    "ReportInput",
    "StationKpis",
]

_OPEN = ConfigDict(extra="allow")
_CLOSED = ConfigDict(extra="forbid")


class Ratio(BaseModel):
    model_config = _OPEN

    numerator: float
    denominator: float
    ratio: float | None


class OeeElements(BaseModel):
    model_config = _OPEN

    pbt_s: float
    apt_s: float
    adet_s: float
    aust_s: float
    adot_s: float
    pq: int
    gq: int
    sq: int
    rq: int
    pri_pq_s: float


class OeeFigures(BaseModel):
    """ISO 22400-2 OEE of a station or of the line, with its elements."""

    model_config = _OPEN

    availability: Ratio
    performance: Ratio
    quality: Ratio
    oee: float | None
    elements: OeeElements
    downtime_s: dict[str, float] = Field(default_factory=dict)
    setup_share: Ratio


class StationKpis(OeeFigures):
    machine: str | None = None
    utilisation: Ratio
    tasks_completed: int
    tasks_failed: int
    busy_s: float
    mean_cycle_s: float | None
    queue_wait_mean_s: float | None


class PackErrors(BaseModel):
    model_config = _OPEN

    errors: int
    orders_packed: int
    per_1000: float | None
    by_code: dict[str, int] = Field(default_factory=dict)


class MaterialKpi(BaseModel):
    model_config = _OPEN

    used: float
    standard: float
    loss: float


class OutputKpi(BaseModel):
    model_config = _OPEN

    units: int
    orders: int
    planned_units: int | None
    planned_orders: int | None
    plan_source: str | None


class WipKpi(BaseModel):
    model_config = _OPEN

    count: int
    age_p50_s: float | None
    age_max_s: float | None


class LineKpis(OeeFigures):
    orders_completed: int
    otd: Ratio
    orders_late: int
    units_completed: int
    fpy: Ratio
    units_scrapped: int
    scrap_rate: Ratio
    rework_rate: Ratio
    quality_checks: Ratio
    lead_time_p50_s: float | None
    lead_time_p90_s: float | None
    lead_time_p99_s: float | None
    wip: WipKpi
    pack_errors: PackErrors
    materials: dict[str, MaterialKpi] = Field(default_factory=dict)
    output: OutputKpi


class OperatorKpis(BaseModel):
    model_config = _OPEN

    efficiency: Ratio
    utilisation: Ratio
    tasks_completed: int
    tasks_failed: int
    signed_in_s: float
    working_s: float
    earned_s: float


class KpiDoc(BaseModel):
    """The typed view of ``kpi_doc``'s document (``kpi.snapshot``'s data)."""

    model_config = _OPEN

    period_start: str
    period_end: str
    line: LineKpis
    stations: dict[str, StationKpis] = Field(default_factory=dict)
    operators: dict[str, OperatorKpis] = Field(default_factory=dict)


class PeriodInfo(BaseModel):
    model_config = _CLOSED

    kind: str  # PeriodKind's value: shift, daily, weekly, monthly
    key: str  # shift:2026-11-26:early, day:2026-11-26 …
    label: str
    report_id: str
    start: str  # UTC, as the store writes instants
    end: str
    timezone: str
    shift: str | None = None


class PreviousPeriod(BaseModel):
    """The period of the same kind before, for the comparison."""

    model_config = _CLOSED

    label: str
    kpis: dict[str, JsonValue]
    elements: Elements

    def figures(self) -> KpiDoc:
        return KpiDoc.model_validate(self.kpis)


class ReportInput(BaseModel):
    model_config = _CLOSED

    line_id: str  # the gateway id, site/line
    line_name: str
    language: str  # the line's own language: the report's first
    period: PeriodInfo
    generated_at: str
    kpis: dict[str, JsonValue]  # kpi_doc of the period, as kpi.snapshot carried it
    elements: Elements
    previous: PreviousPeriod | None = None
    bottleneck: list[Words] = Field(default_factory=list)
    changes: list[Words] = Field(default_factory=list)
    currency: str | None = None
    # Who and what the figures name, as people know them: badge → name, station → name.
    operator_names: dict[str, str] = Field(default_factory=dict)
    station_names: dict[str, str] = Field(default_factory=dict)

    def figures(self) -> KpiDoc:
        return KpiDoc.model_validate(self.kpis)

    def canonical(self) -> bytes:
        """``report.json``: sorted keys, no spaces, UTF-8: the same input, the same bytes
        (its SHA-256 is what ``report.published`` names)."""
        doc: dict[str, Any] = self.model_dump(mode="json")
        text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return text.encode()
