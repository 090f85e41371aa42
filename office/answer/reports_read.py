"""The site report of a period: the lines' figures added up.

A period is a local day, an ISO week (Monday to Monday) or a calendar month in the site's
time zone. Each line's figures for it are its ``report.published`` (it exists, its url,
its headline) and, for the sums, the ``kpi.snapshot`` of the same period, which carries
every ratio's numerator and denominator: the site's ratios are Σ numerators / Σ
denominators over the lines (OTD = Σ on time / Σ due; ISO 22400-2 availability = ΣAPT /
ΣPBT, performance = ΣPRI×PQ / ΣAPT, quality = ΣGQ / ΣPQ, OEE their product), never an
average of the lines' percentages. A line without a report for the period is missing, not
zero; a line with a report but no snapshot adds its counts, and the ratios say they lack it.
Cost: Σ of the lines' ``order.costed`` totals for the orders completed in the period, per
currency.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from office.answer.board_views import utc_text
from office.store import schema

__all__ = [
    "LineFigures",
    "PeriodKind",
    "Ratio",
    "SitePeriod",
    "SiteReport",
    "period_of",
    "read_site_report",
]


class PeriodKind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True)
class SitePeriod:
    kind: PeriodKind
    first_day: date
    start: datetime  # aware, the site's zone
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.kind.value}/{self.first_day.isoformat()}"


def period_of(kind: PeriodKind, day: date, zone: ZoneInfo) -> SitePeriod:
    """The period of ``kind`` that starts on ``day``; ValueError when none does (a week
    starts on a Monday, a month on its 1st)."""
    if kind is PeriodKind.DAILY:
        last = day + timedelta(days=1)
    elif kind is PeriodKind.WEEKLY:
        if day.weekday() != 0:
            raise ValueError("a week starts on a Monday")
        last = day + timedelta(days=7)
    else:
        if day.day != 1:
            raise ValueError("a month starts on its 1st")
        last = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return SitePeriod(
        kind,
        day,
        datetime.combine(day, time(0), tzinfo=zone),
        datetime.combine(last, time(0), tzinfo=zone),
    )


@dataclass(frozen=True)
class Ratio:
    numerator: float
    denominator: float
    lacking: tuple[str, ...] = ()  # lines whose report came without its snapshot

    @property
    def ratio(self) -> float | None:
        return round(self.numerator / self.denominator, 4) if self.denominator else None


# name -> (numerator, denominator) as kpi.snapshot's line carries them
_RATIOS = ("otd", "fpy", "scrap_rate")
_ELEMENTS = ("pbt_s", "apt_s", "pri_pq_s", "pq", "gq", "sq")


@dataclass(frozen=True)
class LineFigures:
    gateway_id: str
    report_id: str | None  # None: no report for the period (missing)
    url: str | None
    sha256: str | None
    summary: dict[str, Any]
    snapshot: bool  # the period's kpi.snapshot is held
    orders: int | None
    units: int | None
    scrapped: int | None
    ratios: dict[str, tuple[float, float]]  # otd, fpy, scrap_rate: (numerator, denominator)
    elements: dict[str, float]
    cost: dict[str, float]  # currency -> total

    @property
    def missing(self) -> bool:
        return self.report_id is None


@dataclass(frozen=True)
class SiteReport:
    period: SitePeriod
    lines: list[LineFigures]
    orders: int
    units: int
    scrapped: int
    otd: Ratio
    fpy: Ratio
    scrap_rate: Ratio
    availability: Ratio
    performance: Ratio
    quality: Ratio
    cost: dict[str, float] = field(default_factory=dict)

    @property
    def oee(self) -> float | None:
        a, p, q = self.availability, self.performance, self.quality
        if not (a.denominator and p.denominator and q.denominator):
            return None
        return round(
            a.numerator
            / a.denominator
            * (p.numerator / p.denominator)
            * (q.numerator / q.denominator),
            4,
        )

    @property
    def missing(self) -> list[str]:
        return [line.gateway_id for line in self.lines if line.missing]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _figures_of(doc: dict[str, Any]) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    line = doc.get("line")
    if not isinstance(line, dict):
        return {}, {}
    ratios: dict[str, tuple[float, float]] = {}
    for name in _RATIOS:
        r = line.get(name)
        if isinstance(r, dict):
            n, d = _num(r.get("numerator")), _num(r.get("denominator"))
            if n is not None and d is not None:
                ratios[name] = (n, d)
    el = line.get("elements")
    elements = {}
    if isinstance(el, dict):
        for name in _ELEMENTS:
            v = _num(el.get(name))
            if v is not None:
                elements[name] = v
    return ratios, elements


def _int(*values: object) -> int | None:
    for v in values:
        n = _num(v)
        if n is not None:
            return int(n)
    return None


async def read_site_report(
    conn: AsyncConnection, period: SitePeriod, line_ids: Iterable[str]
) -> SiteReport:
    r, k, o = schema.board_reports, schema.board_kpis, schema.board_orders
    start, end = utc_text(period.start), utc_text(period.end)
    kind = period.kind.value
    reports = {
        row.gateway_id: row
        for row in await conn.execute(
            select(r).where(r.c.kind == kind, r.c.period_start == start).order_by(r.c.seq)
        )
    }
    snapshots = {
        row.gateway_id: json.loads(row.doc)
        for row in await conn.execute(
            select(k.c.gateway_id, k.c.doc).where(k.c.kind == kind, k.c.period_start == start)
        )
    }
    costs: dict[str, dict[str, float]] = {}
    for row in await conn.execute(
        select(o.c.gateway_id, o.c.currency, func.sum(o.c.cost_total).label("total"))
        .where(o.c.completed_at >= start, o.c.completed_at < end, o.c.cost_total.is_not(None))
        .group_by(o.c.gateway_id, o.c.currency)
    ):
        costs.setdefault(row.gateway_id, {})[row.currency or "?"] = round(float(row.total), 2)
    ids = sorted(set(line_ids) | set(reports))
    lines = []
    for gid in ids:
        rep = reports.get(gid)
        doc = snapshots.get(gid) if rep is not None else None
        summary: dict[str, Any] = json.loads(rep.summary) if rep is not None else {}
        ratios, elements = _figures_of(doc) if doc is not None else ({}, {})
        line_doc = doc.get("line") if isinstance(doc, dict) else None
        ld: dict[str, Any] = line_doc if isinstance(line_doc, dict) else {}
        lines.append(
            LineFigures(
                gateway_id=gid,
                report_id=rep.report_id if rep is not None else None,
                url=rep.url if rep is not None else None,
                sha256=rep.sha256 if rep is not None else None,
                summary=summary,
                snapshot=doc is not None,
                orders=_int(ld.get("orders_completed"), summary.get("orders")) if rep else None,
                units=_int(ld.get("units_completed"), summary.get("units")) if rep else None,
                scrapped=_int(ld.get("units_scrapped")) if rep else None,
                ratios=ratios,
                elements=elements,
                cost=costs.get(gid, {}) if rep is not None else {},
            )
        )
    return _add_up(period, lines)


def _add_up(period: SitePeriod, lines: list[LineFigures]) -> SiteReport:
    present = [line for line in lines if not line.missing]
    lacking = tuple(line.gateway_id for line in present if not line.snapshot)

    def ratio(name: str) -> Ratio:
        pairs = [line.ratios[name] for line in present if name in line.ratios]
        return Ratio(sum(n for n, _ in pairs), sum(d for _, d in pairs), lacking)

    def element(numerator: str, denominator: str) -> Ratio:
        return Ratio(
            sum(line.elements.get(numerator, 0.0) for line in present),
            sum(line.elements.get(denominator, 0.0) for line in present),
            lacking,
        )

    cost: dict[str, float] = {}
    for line in present:
        for currency, total in line.cost.items():
            cost[currency] = round(cost.get(currency, 0.0) + total, 2)
    return SiteReport(
        period=period,
        lines=lines,
        orders=sum(line.orders or 0 for line in present),
        units=sum(line.units or 0 for line in present),
        scrapped=sum(line.scrapped or 0 for line in present),
        otd=ratio("otd"),
        fpy=ratio("fpy"),
        scrap_rate=ratio("scrap_rate"),
        availability=element("apt_s", "pbt_s"),
        performance=element("pri_pq_s", "apt_s"),
        quality=element("gq", "pq"),
        cost=cost,
    )
