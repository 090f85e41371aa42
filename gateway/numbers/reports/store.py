"""The reports kept on the gateway: their rows (the ``reports`` table) and their folders
(``reports/{report_id}/`` beside the database), read by the web pages and the maker."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from gateway.i18n import Lang
from gateway.store.db import Store

__all__ = [
    "CSV_NAMES",
    "FILE_NAME",
    "ReportRow",
    "files_of",
    "find_report",
    "list_reports",
    "report_folder",
    "reports_folder",
]

# A file of a report as the web serves it: its own names only (no folder, no dot first).
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$")
# A report id is a period's key with ':' made '-' (shift-2026-11-26-early, week-2026-W48).
REPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

# The data of a report, a CSV file each (and a sheet each of report.xlsx).
CSV_NAMES = (
    "kpis", "stations", "operators", "downtime", "defects", "late_orders", "materials",
    "costs", "lead_times", "output",
)  # fmt: skip


def files_of(lang: Lang) -> list[str]:
    """The files a report is kept as, this language's first."""
    langs = [lang, *(x for x in Lang if x is not lang)]
    return [
        *(f"report.{x.value}.html" for x in langs),
        *(f"report.{x.value}.pdf" for x in langs),
        "report.xlsx",
        *(f"{name}.csv" for name in CSV_NAMES),
        "report.json",
        "manifest.json",
    ]


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One kept report (migration 9's ``reports``)."""

    report_id: str
    kind: str
    period_start: str
    period_end: str
    label: str
    timezone: str
    created_at: str
    sha256: str  # of report.json
    summary: dict[str, float | None]

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Self:
        summary = json.loads(str(r["summary"]))
        return cls(
            str(r["report_id"]),
            str(r["kind"]),
            str(r["period_start"]),
            str(r["period_end"]),
            str(r["label"]),
            str(r["timezone"]),
            str(r["created_at"]),
            str(r["sha256"]),
            {str(k): None if v is None else float(v) for k, v in summary.items()},
        )


def reports_folder(store: Store) -> Path:
    """Where the reports are kept: beside the database, as the e-SOP pictures are."""
    return store.path.parent / "reports"


def report_folder(store: Store, report_id: str) -> Path | None:
    """The folder of a report id that names one (None for a name that cannot be one)."""
    if not REPORT_ID.fullmatch(report_id):
        return None
    return reports_folder(store) / report_id


def find_report(store: Store, report_id: str) -> ReportRow | None:
    return store.fetch_one(ReportRow, "SELECT * FROM reports WHERE report_id = ?", (report_id,))


def list_reports(store: Store, kind: str | None = None, limit: int = 500) -> list[ReportRow]:
    """The kept reports, the newest period first (of a kind, when given)."""
    if kind is None:
        return store.fetch_all(
            ReportRow,
            "SELECT * FROM reports ORDER BY period_end DESC, kind LIMIT ?",
            (limit,),
        )
    return store.fetch_all(
        ReportRow,
        "SELECT * FROM reports WHERE kind = ? ORDER BY period_end DESC LIMIT ?",
        (kind, limit),
    )
