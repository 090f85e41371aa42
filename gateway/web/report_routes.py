"""The reports kept on the gateway (gateway/numbers/reports), for the viewer role and up:
``GET /reports`` the list (a page), ``GET /api/reports`` the same as JSON,
``GET /reports/{report_id}`` a report's page in the asked language, and
``GET /reports/{report_id}/{file}`` its files (PDF, CSV, XLSX, JSON).

A report's page is its own document, made when its period closed: it is served as it was
written, under a policy of its own that lets it load nothing at all (its styles and charts
are inline), and ``/reports/{report_id}`` sends the browser to it by its file's name, so
that the links in it (its PDF, its data, the other language) work from the gateway as
from a copy on disk.

Registered on the app itself, not through an included router: the gate judges a request
by the template of the route it matches, which an included router's routes do not name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from starlette.responses import FileResponse

from gateway.numbers.reports.store import (
    FILE_NAME,
    ReportRow,
    files_of,
    find_report,
    list_reports,
    report_folder,
)
from gateway.web.answers import WebRefused
from gateway.web.screens import Screens, lang_of

__all__ = ["ReportListed", "add_report_routes"]

# A report page is self-contained: its inline styles and SVG charts, nothing else.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
# Read where they are (a page, a PDF), or saved (the data).
_INLINE = frozenset({"html", "pdf"})
_KINDS = "^(shift|daily|weekly|monthly)$"


class ReportListed(BaseModel):
    report_id: str
    kind: str
    label: str
    period_start: str
    period_end: str
    timezone: str
    created_at: str
    sha256: str
    summary: dict[str, float | None]
    url: str
    files: list[str]


def add_report_routes(app: FastAPI, screens: Screens) -> None:
    """Register the reports' routes on ``app``."""
    core = screens.core
    config = core.config
    store = core.store
    # hz01/line3 → hz01-line3: a file saved from here says which line it is of.
    prefix = config.gateway_id.replace("/", "-")

    def known(report_id: str) -> tuple[ReportRow, Path]:
        folder = report_folder(store, report_id)
        row = find_report(store, report_id) if folder is not None else None
        if row is None or folder is None:
            raise WebRefused(
                404,
                "UNKNOWN_REPORT",
                f"The gateway keeps no report {report_id}.",
                "GET /reports lists the reports it keeps.",
                (f"网关没有报告 {report_id}。", "GET /reports 列出网关保存的报告。"),
            )
        return row, folder

    @app.get("/reports", include_in_schema=False)
    async def reports_page(lang: str | None = None) -> HTMLResponse:
        return screens.page("reports.html", lang_of(lang, config.line.language))

    @app.get("/api/reports")
    async def reports(
        kind: Annotated[str | None, Query(pattern=_KINDS)] = None,
        limit: Annotated[int, Query(ge=1, le=2000)] = 500,
    ) -> list[ReportListed]:
        """The reports kept, the newest period first (of one kind: shift, daily, weekly,
        monthly)."""
        files = files_of(lang_of(None, config.line.language))
        return [
            ReportListed(
                report_id=r.report_id,
                kind=r.kind,
                label=r.label,
                period_start=r.period_start,
                period_end=r.period_end,
                timezone=r.timezone,
                created_at=r.created_at,
                sha256=r.sha256,
                summary=r.summary,
                url=f"/reports/{r.report_id}",
                files=files,
            )
            for r in list_reports(store, kind, limit)
        ]

    @app.get("/reports/{report_id}", include_in_schema=False)
    async def report_page(report_id: str, lang: str | None = None) -> RedirectResponse:
        known(report_id)
        chosen = lang_of(lang, config.line.language)
        return RedirectResponse(f"/reports/{report_id}/report.{chosen.value}.html", 303)

    @app.get("/reports/{report_id}/{file}", include_in_schema=False)
    async def report_file(report_id: str, file: str) -> FileResponse:
        _, folder = known(report_id)
        kind = file.rsplit(".", 1)[-1]
        path = folder / file
        if not FILE_NAME.fullmatch(file) or kind not in _TYPES or not path.is_file():
            raise WebRefused(
                404,
                "UNKNOWN_REPORT_FILE",
                f"Report {report_id} has no file {file}.",
                f"GET /api/reports names its files; GET /reports/{report_id} shows it.",
                (
                    f"报告 {report_id} 没有文件 {file}。",
                    f"GET /api/reports 列出其文件；GET /reports/{report_id} 显示报告。",
                ),
            )
        disposition = "inline" if kind in _INLINE else "attachment"
        headers = {
            "Content-Disposition": f'{disposition}; filename="{prefix}_{report_id}_{file}"',
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # A report made again replaces its files: ask before using a kept copy.
            "Cache-Control": "no-cache",
        }
        if kind == "html":
            headers["Content-Security-Policy"] = REPORT_CSP
        return FileResponse(path, media_type=_TYPES[kind], headers=headers)
