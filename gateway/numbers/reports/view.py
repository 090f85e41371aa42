"""What the report's page shows, in one language: its figures written out (percentages,
times in words, money) and its charts drawn, for the template (templates/report.html).

Every figure comes from the period's KPI document (the ``kpi.snapshot`` of the period) or
its elements: nothing is computed here that the snapshot computes otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from markupsafe import Markup

from gateway.i18n import Lang, Text, t
from gateway.numbers.model import Words
from gateway.numbers.reports import charts
from gateway.numbers.reports.data import KpiDoc, OeeFigures, ReportInput
from gateway.numbers.reports.fmt import NONE, duration, local, money, number, pct, points, quantity
from gateway.numbers.reports.store import files_of
from gateway.numbers.reports.tables import (
    DEFECT_DIMENSIONS,
    KpiRow,
    defect_totals,
    kpi_rows,
    output_slots,
)

__all__ = ["View", "view"]

_TITLES = {
    "shift": t("Shift report"),
    "daily": t("Daily report"),
    "weekly": t("Weekly report"),
    "monthly": t("Monthly report"),
}
_KPI_NAMES: dict[str, Text] = {
    "oee": t("OEE"),
    "availability": t("Availability"),
    "performance": t("Performance"),
    "quality": t("Quality"),
    "otd": t("On-time delivery"),
    "fpy": t("First pass yield"),
    "scrap_rate": t("Scrap rate"),
    "rework_rate": t("Rework rate"),
    "quality_checks": t("Quality checks passed"),
    "setup_share": t("Setup time share"),
    "units_completed": t("Units made"),
    "orders_completed": t("Orders completed"),
    "planned_units": t("Units planned"),
    "planned_orders": t("Orders planned"),
    "orders_late": t("Orders late"),
    "units_scrapped": t("Units scrapped"),
    "lead_time_p50_s": t("Lead time p50"),
    "lead_time_p90_s": t("Lead time p90"),
    "lead_time_p99_s": t("Lead time p99"),
    "wip_count": t("Orders in work at the end"),
    "wip_age_p50_s": t("Age of the orders in work (p50)"),
    "pack_errors": t("Errors caught at packing"),
    "pack_errors_per_1000": t("Errors caught at packing per 1,000 orders"),
}
_TILES = ("oee", "availability", "performance", "quality", "otd", "fpy")
_REASONS = {"handling": t("handling (fetching the unit, scanning)")}
_DISPOSITIONS = {"rework": t("rework"), "scrap": t("scrap"), "use_as_is": t("use as is")}
_DIMENSIONS = {
    "reason": t("Defects by reason"),
    "station": t("Defects by station"),
    "sku": t("Defects by SKU"),
    "operator": t("Defects by operator"),
}


@dataclass(frozen=True, slots=True)
class Tile:
    label: str
    value: str
    detail: str
    previous: str | None
    change: str | None


@dataclass(frozen=True, slots=True)
class StationRow:
    station: str
    name: str
    availability: str
    availability_detail: str
    performance: str
    performance_detail: str
    quality: str
    quality_detail: str
    oee: str
    is_line: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """A chart with the table of what it shows."""

    title: str
    chart: Markup
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class View:
    lang: str
    other_lang: str
    report_id: str
    title: str
    line_name: str
    line_id: str
    period_label: str
    period_range: str
    timezone: str
    generated: str
    tiles: list[Tile]
    output_chart: Markup
    output_rows: list[tuple[str, str, str]]
    otd: str
    otd_detail: str
    late: list[tuple[str, str, str, str]]
    stations: list[StationRow]
    oee_chart: Markup
    downtime: Block
    defects: list[Block]
    lead_chart: Markup
    lead_marks: list[tuple[str, str]]
    operators: Sequence[tuple[str, ...]]
    materials: Sequence[tuple[str, ...]]
    costs: Sequence[tuple[str, ...]]
    currency: str
    bottleneck: list[str]
    previous_label: str | None
    comparison: list[tuple[str, str, str, str]]
    changes: list[str]
    other: list[tuple[str, str]]
    files: list[tuple[str, str]] = field(default_factory=list)


def _said(words: Words, lang: Lang) -> str:
    return words.zh if lang is Lang.ZH else words.en


def _value(row: KpiRow, value: float | None, lang: Lang) -> str:
    if row.unit == "ratio":
        return pct(value)
    if row.unit == "s":
        return duration(value, lang)
    if row.unit == "per_1000":
        return number(value, 2)
    return number(value)


def _change(row: KpiRow, lang: Lang) -> str:
    if row.unit == "ratio":
        return points(row.value, row.previous, lang)
    change = row.change
    if change is None:
        return NONE
    if row.unit == "s":
        return ("+" if change > 0 else "") + duration(change, lang)
    return (
        f"{change:+,.2f}".rstrip("0").rstrip(".") if row.unit == "per_1000" else f"{change:+,.0f}"
    )


def _oee_details(f: OeeFigures, lang: Lang) -> tuple[str, str, str]:
    e = f.elements
    return (
        f"APT {duration(e.apt_s, lang)} / PBT {duration(e.pbt_s, lang)}",
        f"PRI×PQ {duration(e.pri_pq_s, lang)} / APT {duration(e.apt_s, lang)}",
        f"GQ {e.gq} / PQ {e.pq}",
    )


def _station_row(sid: str, name: str, f: OeeFigures, lang: Lang, *, is_line: bool) -> StationRow:
    a, p, q = _oee_details(f, lang)
    return StationRow(
        sid,
        name,
        pct(f.availability.ratio),
        a,
        pct(f.performance.ratio),
        p,
        pct(f.quality.ratio),
        q,
        pct(f.oee),
        is_line,
    )


def _tiles(rows: list[KpiRow], doc: KpiDoc, lang: Lang) -> list[Tile]:
    line = doc.line
    details = dict(
        zip(("availability", "performance", "quality"), _oee_details(line, lang), strict=True)
    )
    details["oee"] = t("availability × performance × quality").render(lang)
    details["otd"] = _otd_detail(line.otd.numerator, line.otd.denominator, lang)
    details["fpy"] = t(
        "{n} of {d} units right the first time",
        n=number(line.fpy.numerator),
        d=number(line.fpy.denominator),
    ).render(lang)
    by_name = {r.kpi: r for r in rows}
    tiles = []
    for name in _TILES:
        r = by_name[name]
        tiles.append(
            Tile(
                _KPI_NAMES[name].render(lang),
                _value(r, r.value, lang),
                details[name],
                None if r.previous is None else _value(r, r.previous, lang),
                None if r.previous is None else _change(r, lang),
            )
        )
    return tiles


def view(report: ReportInput, lang: Lang) -> View:
    tz = ZoneInfo(report.period.timezone)
    doc = report.figures()
    prev = report.previous.figures() if report.previous is not None else None
    el = report.elements
    rows = kpi_rows(doc, prev)
    by_name = {r.kpi: r for r in rows}
    line = doc.line
    nothing = t("Nothing in this period").render(lang)

    def said(text: Text) -> str:
        return text.render(lang)

    # -- output against plan -----------------------------------------------------------
    slots = output_slots(report)
    by_day = report.period.kind in ("weekly", "monthly")
    output_chart = charts.output(
        [(s.label, s.units) for s in slots],
        line.output.planned_units,
        charts.OutputWords(
            said(t("Units made")),
            nothing,
            said(t("per day") if by_day else t("per hour")),
            said(t("made, running total")),
            said(t("plan")),
        ),
    )
    output_rows = [
        (
            said(t("Units")),
            number(line.output.units),
            number(line.output.planned_units) if line.output.planned_units is not None else NONE,
        ),
        (
            said(t("Orders")),
            number(line.output.orders),
            number(line.output.planned_orders) if line.output.planned_orders is not None else NONE,
        ),
    ]
    # -- delivery --------------------------------------------------------------------
    late = [
        (
            o.order_id,
            local(o.ship_by, tz),
            local(o.completed_at, tz) if o.completed_at else said(t("not packed yet")),
            " ".join(_said(w, lang) for w in o.why) or NONE,
        )
        for o in el.late
    ]
    # -- OEE by station ----------------------------------------------------------------
    stations = [
        _station_row(sid, report.station_names.get(sid, ""), st, lang, is_line=False)
        for sid, st in doc.stations.items()
    ]
    stations.append(_station_row(said(t("Line")), "", line, lang, is_line=True))
    oee_chart = charts.hbars(
        [(sid, st.oee) for sid, st in doc.stations.items()],
        title=said(t("OEE by station")),
        nothing=nothing,
        value_text=pct,
        max_value=1.0,
    )
    # -- downtime ----------------------------------------------------------------------
    reasons = [
        (_REASONS[k].render(lang) if k in _REASONS else k, v) for k, v in line.downtime_s.items()
    ]
    downtime = Block(
        said(t("Downtime by reason")),
        charts.pareto(
            reasons,
            title=said(t("Downtime by reason")),
            nothing=nothing,
            value_text=lambda s: duration(s, lang),
            other=said(t("other")),
        ),
        _pareto_table(reasons, lambda s: duration(s, lang)),
    )
    # -- defects -----------------------------------------------------------------------
    defects = []
    for dim, key in DEFECT_DIMENSIONS:
        counts = [(k, float(n)) for k, n in defect_totals(el.defects, key)]
        title = said(_DIMENSIONS[dim])
        defects.append(
            Block(
                title,
                charts.pareto(
                    counts,
                    title=title,
                    nothing=nothing,
                    value_text=lambda n: f"{n:.0f}",
                    other=said(t("other")),
                    width=320,
                    height=180,
                    most=6,
                ),
                _pareto_table(counts, lambda n: f"{n:.0f}"),
            )
        )
    # -- lead time ---------------------------------------------------------------------
    marks = [
        (name, value)
        for name, value in (
            ("p50", line.lead_time_p50_s),
            ("p90", line.lead_time_p90_s),
            ("p99", line.lead_time_p99_s),
        )
        if value is not None
    ]
    lead_chart = charts.histogram(
        el.lead_times_s,
        title=said(t("Lead time: order accepted to packed")),
        nothing=nothing,
        edge_text=lambda s: duration(s, lang),
        marks=marks,
    )
    lead_marks = [
        (name, duration(value, lang))
        for name, value in (
            ("p50", line.lead_time_p50_s),
            ("p90", line.lead_time_p90_s),
            ("p99", line.lead_time_p99_s),
        )
    ]
    # -- people, materials, cost ---------------------------------------------------------
    operators = [
        (
            badge,
            report.operator_names.get(badge, ""),
            duration(o.signed_in_s, lang),
            duration(o.working_s, lang),
            duration(o.earned_s, lang),
            pct(o.efficiency.ratio),
            pct(o.utilisation.ratio),
            str(o.tasks_completed),
            str(o.tasks_failed),
        )
        for badge, o in doc.operators.items()
    ]
    materials = [
        (
            m,
            quantity(k.used),
            quantity(k.standard),
            quantity(k.loss),
            pct(k.loss / k.standard) if k.standard else NONE,
        )
        for m, k in line.materials.items()
    ]
    currency = report.currency or el.currency or ""
    costs = [
        (
            sku,
            number(c.orders, 1),
            str(c.units),
            money(c.labour, currency),
            money(c.machine, currency),
            money(c.materials, currency),
            money(c.scrap, currency),
            money(c.total, currency),
            money(c.total / c.orders, currency) if c.orders else NONE,
        )
        for sku, c in sorted(el.costs.items())
    ]
    # -- comparison ----------------------------------------------------------------------
    comparison = [
        (
            _KPI_NAMES[r.kpi].render(lang),
            _value(r, r.value, lang),
            _value(r, r.previous, lang),
            _change(r, lang),
        )
        for r in rows
        if r.kpi in _KPI_NAMES and not (r.value is None and r.previous is None)
    ]
    other_names = (
        "scrap_rate", "rework_rate", "quality_checks", "setup_share", "units_scrapped",
        "wip_count", "wip_age_p50_s", "pack_errors", "pack_errors_per_1000",
    )  # fmt: skip
    other = [
        (_KPI_NAMES[n].render(lang), _value(by_name[n], by_name[n].value, lang))
        for n in other_names
    ]
    p = report.period
    return View(
        lang=lang.value,
        other_lang=(Lang.EN if lang is Lang.ZH else Lang.ZH).value,
        report_id=p.report_id,
        title=_TITLES.get(p.kind, t("Report")).render(lang),
        line_name=report.line_name,
        line_id=report.line_id,
        period_label=p.label,
        period_range=f"{local(p.start, tz)} – {local(p.end, tz)}",
        timezone=p.timezone,
        generated=local(report.generated_at, tz),
        tiles=_tiles(rows, doc, lang),
        output_chart=output_chart,
        output_rows=output_rows,
        otd=pct(line.otd.ratio),
        otd_detail=_otd_detail(line.otd.numerator, line.otd.denominator, lang),
        late=late,
        stations=stations,
        oee_chart=oee_chart,
        downtime=downtime,
        defects=defects,
        lead_chart=lead_chart,
        lead_marks=lead_marks,
        operators=operators,
        materials=materials,
        costs=costs,
        currency=currency,
        bottleneck=[_said(w, lang) for w in report.bottleneck],
        previous_label=report.previous.label if report.previous is not None else None,
        comparison=comparison if report.previous is not None else [],
        changes=[_said(w, lang) for w in report.changes],
        other=other,
        files=[(name, name) for name in files_of(lang) if name != "manifest.json"],
    )


def _otd_detail(n: float, d: float, lang: Lang) -> str:
    return t("{n} of {d} orders due were on time", n=number(n), d=number(d)).render(lang)


def _pareto_table(
    items: list[tuple[str, float]], text: Callable[[float], str]
) -> list[tuple[str, str, str, str]]:
    """(name, value, share, cumulative share) in words, the largest first."""
    ranked = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    total = sum(v for _, v in ranked)
    out, running = [], 0.0
    for name, value in ranked:
        running += value
        out.append(
            (
                name,
                text(value),
                pct(value / total if total else None),
                pct(running / total if total else None),
            )
        )
    return out
