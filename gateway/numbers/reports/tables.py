"""A report's figures as tables of plain values: the CSV files and the XLSX sheets, and
what the page's sections and charts are drawn from.

Values are the figures themselves (a ratio as 0.8123, a time in seconds), not the words a
page writes, so a spreadsheet computes with them; columns are named by identifiers, and a
sentence comes in both languages (``why_en``, ``why_zh``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.numbers.model import DefectCount
from gateway.numbers.reports.data import KpiDoc, LineKpis, Ratio, ReportInput

__all__ = [
    "DEFECT_DIMENSIONS",
    "Cell",
    "KpiRow",
    "Slot",
    "Table",
    "defect_totals",
    "headline",
    "kpi_rows",
    "output_slots",
    "tables",
]

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # the file's stem: kpis.csv, the sheet's name
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True, slots=True)
class KpiRow:
    kpi: str
    unit: str  # ratio (change in percentage points), count, s, per_1000
    numerator: float | None
    denominator: float | None
    value: float | None
    previous: float | None

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        if self.unit == "ratio":
            return round((self.value - self.previous) * 100, 1)
        return round(self.value - self.previous, 3)


_RATIOS: tuple[tuple[str, Callable[[LineKpis], Ratio]], ...] = (
    ("availability", lambda k: k.availability),
    ("performance", lambda k: k.performance),
    ("quality", lambda k: k.quality),
    ("otd", lambda k: k.otd),
    ("fpy", lambda k: k.fpy),
    ("scrap_rate", lambda k: k.scrap_rate),
    ("rework_rate", lambda k: k.rework_rate),
    ("quality_checks", lambda k: k.quality_checks),
    ("setup_share", lambda k: k.setup_share),
)
_VALUES: tuple[tuple[str, str, Callable[[LineKpis], float | None]], ...] = (
    ("units_completed", "count", lambda k: k.units_completed),
    ("orders_completed", "count", lambda k: k.orders_completed),
    ("planned_units", "count", lambda k: k.output.planned_units),
    ("planned_orders", "count", lambda k: k.output.planned_orders),
    ("orders_late", "count", lambda k: k.orders_late),
    ("units_scrapped", "count", lambda k: k.units_scrapped),
    ("lead_time_p50_s", "s", lambda k: k.lead_time_p50_s),
    ("lead_time_p90_s", "s", lambda k: k.lead_time_p90_s),
    ("lead_time_p99_s", "s", lambda k: k.lead_time_p99_s),
    ("wip_count", "count", lambda k: k.wip.count),
    ("wip_age_p50_s", "s", lambda k: k.wip.age_p50_s),
    ("pack_errors", "count", lambda k: k.pack_errors.errors),
    ("pack_errors_per_1000", "per_1000", lambda k: k.pack_errors.per_1000),
)
# The figures report.published carries as its summary, by the names it gives them.
_HEADLINE = (
    ("oee", "oee"),
    ("availability", "availability"),
    ("performance", "performance"),
    ("quality", "quality"),
    ("otd", "otd"),
    ("fpy", "fpy"),
    ("units", "units_completed"),
    ("orders", "orders_completed"),
    ("lead_time_p50_s", "lead_time_p50_s"),
)


def kpi_rows(now: KpiDoc, before: KpiDoc | None) -> list[KpiRow]:
    """The line's KPIs, each with the previous period's value."""
    line, prev = now.line, (before.line if before is not None else None)
    rows = [KpiRow("oee", "ratio", None, None, line.oee, prev.oee if prev else None)]
    for name, get in _RATIOS:
        r = get(line)
        rows.append(
            KpiRow(
                name,
                "ratio",
                r.numerator,
                r.denominator,
                r.ratio,
                get(prev).ratio if prev else None,
            )
        )
    for name, unit, value in _VALUES:
        rows.append(KpiRow(name, unit, None, None, value(line), value(prev) if prev else None))
    return rows


def headline(doc: KpiDoc) -> dict[str, float | None]:
    """report.published's ``summary``: the headline KPIs as numbers."""
    rows = {r.kpi: r.value for r in kpi_rows(doc, None)}
    return {name: rows[kpi] for name, kpi in _HEADLINE}


DEFECT_DIMENSIONS: tuple[tuple[str, Callable[[DefectCount], str | None]], ...] = (
    ("reason", lambda d: d.reason),
    ("station", lambda d: d.station),
    ("sku", lambda d: d.sku),
    ("operator", lambda d: d.operator),
)


def defect_totals(
    defects: list[DefectCount], key: Callable[[DefectCount], str | None]
) -> list[tuple[str, int]]:
    """Defects counted by one dimension, the largest first ("–" for none known)."""
    out: dict[str, int] = {}
    for d in defects:
        name = key(d) or "–"
        out[name] = out.get(name, 0) + d.count
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True, slots=True)
class Slot:
    key: str  # the local hour (2026-11-26T10:00) or day (2026-11-26)
    label: str  # as the chart writes it: 10:00, 11-26
    units: int
    orders: int


def output_slots(report: ReportInput) -> list[Slot]:
    """Output in each local hour of a shift or day, each local day of a week or month;
    hours and days with nothing made are there too, as 0."""
    tz = ZoneInfo(report.period.timezone)
    start = datetime.fromisoformat(report.period.start)
    end = datetime.fromisoformat(report.period.end)
    by_day = report.period.kind in ("weekly", "monthly")
    slots: dict[str, list[int]] = {}
    at = start
    while at < end:
        local = at.astimezone(tz)
        slots.setdefault(local.strftime("%Y-%m-%d" if by_day else "%Y-%m-%dT%H:00"), [0, 0])
        at += timedelta(hours=1)
    for hour, made in report.elements.hourly.items():
        key = hour[:10] if by_day else hour
        found = slots.setdefault(key, [0, 0])
        found[0] += made.units
        found[1] += made.orders
    return [
        Slot(k, k[5:10] if by_day else k[11:16], units, orders)
        for k, (units, orders) in sorted(slots.items())
    ]


def _pareto_rows(items: list[tuple[str, float]]) -> list[tuple[str, float, float, float]]:
    """(name, value, share, cumulative share), the largest first."""
    ranked = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    total = sum(v for _, v in ranked)
    out, running = [], 0.0
    for name, value in ranked:
        running += value
        share = round(value / total, 4) if total else 0.0
        out.append((name, value, share, round(running / total, 4) if total else 0.0))
    return out


def _r(ratio: Ratio) -> float | None:
    return ratio.ratio


def tables(report: ReportInput) -> list[Table]:
    doc = report.figures()
    prev = report.previous.figures() if report.previous is not None else None
    el = report.elements
    currency = report.currency or el.currency
    out = [
        Table(
            "kpis",
            ("kpi", "unit", "numerator", "denominator", "value", "previous", "change"),
            [
                (r.kpi, r.unit, r.numerator, r.denominator, r.value, r.previous, r.change)
                for r in kpi_rows(doc, prev)
            ],
        )
    ]
    station_cols = (
        "station",
        "name",
        "machine",
        "pbt_s",
        "apt_s",
        "adet_s",
        "aust_s",
        "adot_s",
        "pri_pq_s",
        "pq",
        "gq",
        "sq",
        "rq",
        "availability",
        "performance",
        "quality",
        "oee",
        "utilisation",
        "setup_share",
        "tasks_completed",
        "tasks_failed",
        "mean_cycle_s",
    )
    station_rows: list[tuple[Cell, ...]] = []
    for sid, st in [*doc.stations.items(), ("line", None)]:
        f = st or doc.line
        e = f.elements
        station_rows.append(
            (
                sid,
                report.station_names.get(sid, "") if st else report.line_name,
                st.machine if st else None,
                e.pbt_s,
                e.apt_s,
                e.adet_s,
                e.aust_s,
                e.adot_s,
                e.pri_pq_s,
                e.pq,
                e.gq,
                e.sq,
                e.rq,
                _r(f.availability),
                _r(f.performance),
                _r(f.quality),
                f.oee,
                _r(st.utilisation) if st else None,
                _r(f.setup_share),
                st.tasks_completed if st else sum(s.tasks_completed for s in doc.stations.values()),
                st.tasks_failed if st else sum(s.tasks_failed for s in doc.stations.values()),
                st.mean_cycle_s if st else None,
            )
        )
    out.append(Table("stations", station_cols, station_rows))
    out.append(
        Table(
            "operators",
            (
                "operator",
                "name",
                "signed_in_s",
                "working_s",
                "earned_s",
                "efficiency",
                "utilisation",
                "tasks_completed",
                "tasks_failed",
            ),
            [
                (
                    badge,
                    report.operator_names.get(badge, ""),
                    o.signed_in_s,
                    o.working_s,
                    o.earned_s,
                    _r(o.efficiency),
                    _r(o.utilisation),
                    o.tasks_completed,
                    o.tasks_failed,
                )
                for badge, o in doc.operators.items()
            ],
        )
    )
    stations = list(doc.stations)
    out.append(
        Table(
            "downtime",
            ("reason", "seconds", "share", "cumulative_share", *stations),
            [
                (
                    name,
                    value,
                    share,
                    cum,
                    *(doc.stations[s].downtime_s.get(name, 0.0) for s in stations),
                )
                for name, value, share, cum in _pareto_rows(list(doc.line.downtime_s.items()))
            ],
        )
    )
    out.append(
        Table(
            "defects",
            ("reason", "station", "sku", "operator", "disposition", "count"),
            [(d.reason, d.station, d.sku, d.operator, d.disposition, d.count) for d in el.defects],
        )
    )
    out.append(
        Table(
            "late_orders",
            ("order_id", "ship_by", "completed_at", "why_en", "why_zh"),
            [
                (
                    late.order_id,
                    late.ship_by,
                    late.completed_at,
                    " ".join(w.en for w in late.why),
                    "".join(w.zh for w in late.why),
                )
                for late in el.late
            ],
        )
    )
    out.append(
        Table(
            "materials",
            ("material", "used", "standard", "loss", "loss_share"),
            [
                (
                    m,
                    k.used,
                    k.standard,
                    k.loss,
                    round(k.loss / k.standard, 4) if k.standard else None,
                )
                for m, k in doc.line.materials.items()
            ],
        )
    )
    out.append(
        Table(
            "costs",
            (
                "sku",
                "orders",
                "units",
                "labour",
                "machine",
                "materials",
                "scrap",
                "total",
                "per_order",
                "per_unit",
                "currency",
            ),
            [
                (
                    sku,
                    round(c.orders, 3),
                    c.units,
                    round(c.labour, 2),
                    round(c.machine, 2),
                    round(c.materials, 2),
                    round(c.scrap, 2),
                    round(c.total, 2),
                    round(c.total / c.orders, 2) if c.orders else None,
                    round(c.total / c.units, 2) if c.units else None,
                    currency,
                )
                for sku, c in sorted(el.costs.items())
            ],
        )
    )
    out.append(Table("lead_times", ("lead_time_s",), [(v,) for v in sorted(el.lead_times_s)]))
    out.append(
        Table(
            "output",
            ("slot", "units", "orders"),
            [(s.key, s.units, s.orders) for s in output_slots(report)],
        )
    )
    return out
