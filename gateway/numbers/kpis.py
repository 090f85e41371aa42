"""A period's KPIs from its elements: what ``kpi.snapshot`` carries (contract 1.1) and
what a report shows.

Every ratio is ``{"numerator", "denominator", "ratio"}`` (ratio None when the denominator
is 0), so the office adds periods and lines up by summing those. ISO 22400-2:
availability = APT / PBT, performance (effectiveness) = PRI × PQ / APT (not capped: above 1
means the standard time is loose), quality = GQ / PQ, OEE = their product; the line's are
its stations' elements summed. Operator efficiency = standard time earned / time signed
in; utilisation (ISO worker efficiency) = APWT / APAT. Setup share = AUST / (AUST + APT)
(ISO setup rate). Errors caught at pack are per 1,000 orders packed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.numbers.model import Elements, OperatorElements, StationElements
from gateway.numbers.periods import Period
from gateway.percentiles import percentile

__all__ = ["kpi_doc", "oee", "ratio"]


def ratio(numerator: float, denominator: float, digits: int = 4) -> dict[str, Any]:
    return {
        "numerator": round(numerator, 3),
        "denominator": round(denominator, 3),
        "ratio": round(numerator / denominator, digits) if denominator else None,
    }


def oee(el: StationElements) -> dict[str, Any]:
    """ISO 22400-2 OEE of one station's (or the line's summed) elements."""
    a = ratio(el.apt_s, el.pbt_s)
    p = ratio(el.pri_pq_s, el.apt_s)
    q = ratio(el.gq, el.pq)
    product = None
    if a["ratio"] is not None and p["ratio"] is not None and q["ratio"] is not None:
        product = round((el.apt_s / el.pbt_s) * (el.pri_pq_s / el.apt_s) * (el.gq / el.pq), 4)
    return {
        "availability": a,
        "performance": p,
        "quality": q,
        "oee": product,
        "elements": {
            "pbt_s": round(el.pbt_s, 3),
            "apt_s": round(el.apt_s, 3),
            "adet_s": round(el.adet_s, 3),
            "aust_s": round(el.aust_s, 3),
            "adot_s": round(el.adot_s, 3),
            "pq": el.pq,
            "gq": el.gq,
            "sq": el.sq,
            "rq": el.rq,
            "pri_pq_s": round(el.pri_pq_s, 3),
        },
    }


def line_elements(stations: Mapping[str, StationElements]) -> StationElements:
    out = StationElements()
    for el in stations.values():
        out = out.add(el)
    out.machine = None
    return out


def _station(el: StationElements) -> dict[str, Any]:
    n = el.tasks_completed + el.tasks_failed
    return {
        "machine": el.machine,
        **oee(el),
        "downtime_s": {k: round(v, 1) for k, v in sorted(el.downtime.items())},
        "setup_share": ratio(el.aust_s, el.aust_s + el.apt_s),
        "utilisation": ratio(el.apt_s + el.adet_s + el.aust_s, el.pbt_s),
        "tasks_completed": el.tasks_completed,
        "tasks_failed": el.tasks_failed,
        "busy_s": round(el.busy_s, 1),
        "mean_cycle_s": round(el.busy_s / n, 1) if n else None,
        "queue_wait_mean_s": round(el.queue_wait_s / el.queued, 1) if el.queued else None,
    }


def _operator(el: OperatorElements) -> dict[str, Any]:
    return {
        "efficiency": ratio(el.earned_s, el.apat_s),
        "utilisation": ratio(el.apwt_s, el.apat_s),
        "tasks_completed": el.completed,
        "tasks_failed": el.failed,
        "signed_in_s": round(el.apat_s, 1),
        "working_s": round(el.apwt_s, 1),
        "earned_s": round(el.earned_s, 1),
    }


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


def kpi_doc(
    el: Elements, period: Period | None = None, timezone: str | None = None
) -> dict[str, Any]:
    """The ``kpi.snapshot`` data of a period (``period`` None: an ad-hoc range)."""
    line = line_elements(el.stations)
    lead = sorted(el.lead_times_s)
    materials = {
        m: {
            "used": round(u.used, 3),
            "standard": round(u.standard, 3),
            "loss": round(u.used - u.standard, 3),
        }
        for m, u in sorted(el.materials.items())
    }
    doc: dict[str, Any] = {
        "period_start": el.start,
        "period_end": el.end,
        "line": {
            **oee(line),
            "downtime_s": {k: round(v, 1) for k, v in sorted(line.downtime.items())},
            "setup_share": ratio(line.aust_s, line.aust_s + line.apt_s),
            "orders_completed": el.orders_completed,
            "otd": ratio(el.orders_on_time, el.orders_due),
            "orders_late": len(el.late),
            "units_completed": el.units_completed,
            "fpy": ratio(el.units_first_pass, el.units_completed),
            "units_scrapped": el.units_scrapped,
            "scrap_rate": ratio(line.sq, line.pq),
            "rework_rate": ratio(line.rq, line.pq),
            "quality_checks": ratio(el.checks_passed, el.checks),
            "lead_time_p50_s": _p(lead, 50),
            "lead_time_p90_s": _p(lead, 90),
            "lead_time_p99_s": _p(lead, 99),
            "wip": el.wip.model_dump(),
            "pack_errors": {
                "errors": el.pack_errors,
                "orders_packed": el.orders_packed,
                "per_1000": round(1000 * el.pack_errors / el.orders_packed, 2)
                if el.orders_packed
                else None,
                "by_code": dict(sorted(el.pack_errors_by_code.items())),
            },
            "materials": materials,
            "output": {
                "units": el.units_completed,
                "orders": el.orders_completed,
                "planned_units": el.planned_units,
                "planned_orders": el.planned_orders,
                "plan_source": el.plan_source,
            },
        },
        "stations": {k: _station(v) for k, v in sorted(el.stations.items())},
        "operators": {k: _operator(v) for k, v in sorted(el.operators.items())},
    }
    if period is not None:
        doc["period"] = {
            "kind": period.kind.value,
            "key": period.key,
            "label": period.label,
            "shift": period.shift,
            "timezone": timezone,
        }
    return doc
