"""The site reports: ``GET /reports`` (a page: pick a day, week or month) and
``GET /v1/reports/{kind}/{period_start}`` (JSON; ``?format=csv`` for a spreadsheet),
policy REPORTS. The figures are reports_read's; each line's own report is linked (its
``url`` made absolute on the line's gateway when the office knows its address).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from office.access import Gate, Policy, Principal
from office.answer.reports_read import (
    PeriodKind,
    Ratio,
    SitePeriod,
    SiteReport,
    period_of,
    read_site_report,
)
from office.store import Store, StoreUnavailable
from office.web import Pages

__all__ = ["SiteReports", "last_closed", "report_document", "reports_routes"]


def last_closed(kind: PeriodKind, now: datetime, zone: ZoneInfo) -> date:
    """The first day of the last period of ``kind`` that has ended by ``now``."""
    today = now.astimezone(zone).date()
    if kind is PeriodKind.DAILY:
        return today - timedelta(days=1)
    if kind is PeriodKind.WEEKLY:
        return today - timedelta(days=today.weekday() + 7)
    first = today.replace(day=1) - timedelta(days=1)
    return first.replace(day=1)


class SiteReports:
    def __init__(
        self,
        store: Store,
        configured: Sequence[str],
        zone: ZoneInfo,
        now: Callable[[], datetime],
        line_bases: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._configured = tuple(configured)
        self.zone = zone
        self._now = now
        # gateway_id -> an address of its gateway (its metrics_url): the base of its links.
        self._bases = dict(line_bases or {})

    def now(self) -> datetime:
        return self._now()

    async def report(self, period: SitePeriod) -> SiteReport:
        heard = [line.gateway_id for line in await self._store.lines_report()]
        async with self._store.read() as conn:
            return await read_site_report(conn, period, [*self._configured, *heard])

    def link(self, gateway_id: str, url: str | None) -> str | None:
        if url is None:
            return None
        base = self._bases.get(gateway_id)
        return urljoin(base, url) if base else url


def _ratio(r: Ratio) -> dict[str, Any]:
    return {
        "numerator": r.numerator,
        "denominator": r.denominator,
        "ratio": r.ratio,
        "lacking": list(r.lacking),
    }


def report_document(
    report: SiteReport, link: Callable[[str, str | None], str | None]
) -> dict[str, Any]:
    p = report.period
    return {
        "kind": p.kind.value,
        "period_start": p.first_day.isoformat(),
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "timezone": str(p.start.tzinfo),
        "site": {
            "orders_completed": report.orders,
            "units_completed": report.units,
            "units_scrapped": report.scrapped,
            "otd": _ratio(report.otd),
            "fpy": _ratio(report.fpy),
            "scrap_rate": _ratio(report.scrap_rate),
            "availability": _ratio(report.availability),
            "performance": _ratio(report.performance),
            "quality": _ratio(report.quality),
            "oee": report.oee,
            "cost": report.cost,
        },
        "missing": report.missing,
        "lines": [
            {
                "gateway_id": line.gateway_id,
                "missing": line.missing,
                "report_id": line.report_id,
                "url": link(line.gateway_id, line.url),
                "sha256": line.sha256,
                "summary": line.summary,
                "orders_completed": line.orders,
                "units_completed": line.units,
                "units_scrapped": line.scrapped,
                "cost": line.cost,
            }
            for line in report.lines
        ],
    }


_CSV_HEAD = (
    "line", "report", "orders_completed", "units_completed", "units_scrapped",
    "otd", "fpy", "oee", "url",
)  # fmt: skip


def _csv(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(_CSV_HEAD)
    site = doc["site"]
    w.writerow(
        (
            "site", "", site["orders_completed"], site["units_completed"],
            site["units_scrapped"], _cell(site["otd"]["ratio"]), _cell(site["fpy"]["ratio"]),
            _cell(site["oee"]), "",
        )
    )  # fmt: skip
    for line in doc["lines"]:
        if line["missing"]:
            w.writerow((line["gateway_id"], "missing", "", "", "", "", "", "", ""))
            continue
        s = line["summary"]
        w.writerow(
            (
                line["gateway_id"], line["report_id"], _cell(line["orders_completed"]),
                _cell(line["units_completed"]), _cell(line["units_scrapped"]),
                _cell(s.get("otd")), _cell(s.get("fpy")), _cell(s.get("oee")), line["url"] or "",
            )
        )  # fmt: skip
    return out.getvalue()


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _period(kind: str, day: str, zone: ZoneInfo) -> SitePeriod | str:
    try:
        which = PeriodKind(kind)
    except ValueError:
        return "kind must be daily, weekly or monthly"
    try:
        return period_of(which, date.fromisoformat(day), zone)
    except ValueError as exc:
        return f"period_start: {exc}"


def reports_routes(reports: SiteReports, gate: Gate, pages: Pages) -> list[BaseRoute]:
    async def as_json(request: Request) -> Response:
        who = await gate.admit(request, Policy.REPORTS)
        if not isinstance(who, Principal):
            return who
        period = _period(
            request.path_params["kind"], request.path_params["period_start"], reports.zone
        )
        if isinstance(period, str):
            return JSONResponse({"error": period}, status_code=400)
        try:
            doc = report_document(await reports.report(period), reports.link)
        except StoreUnavailable:
            return JSONResponse(
                {"error": "the office's store is unavailable; try again"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        if request.query_params.get("format") == "csv":
            name = f"site-{period.kind.value}-{period.first_day.isoformat()}.csv"
            return Response(
                _csv(doc),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return JSONResponse(doc)

    async def page(request: Request) -> Response:
        who = await gate.admit(request, Policy.REPORTS)
        if not isinstance(who, Principal):
            return who
        kind = request.query_params.get("kind", PeriodKind.DAILY.value)
        if kind not in PeriodKind.__members__.values():
            kind = PeriodKind.DAILY.value
        day = (
            request.query_params.get("period")
            or last_closed(PeriodKind(kind), reports.now(), reports.zone).isoformat()
        )
        period = _period(kind, day, reports.zone)
        doc, problem = None, None  # problem: "period" (no such period) or "store"
        if isinstance(period, str):
            problem = "period"
        else:
            try:
                doc = report_document(await reports.report(period), reports.link)
            except StoreUnavailable:
                problem = "store"
        context = {"report": doc, "kind": kind, "day": day, "problem": problem}
        status = {None: 200, "period": 400, "store": 503}[problem]
        return pages.render(request, who, "reports.html", context, status=status)

    return [
        Route("/v1/reports/{kind}/{period_start}", as_json, methods=["GET"]),
        Route("/reports", page, methods=["GET"]),
    ]
