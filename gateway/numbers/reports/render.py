"""Render a report into a folder: ``python -m gateway.numbers.reports.render INPUT.json
OUTDIR``, a child process of the gateway (gateway/numbers/reports/maker.py) or of
``linegate report``.

It lowers its own priority first: laying out and printing two PDFs takes a few seconds of
a core on a Pi, and the operators' answers come first. It writes, for each language, the
page (``report.zh-CN.html``, ``report.en.html``: styles and charts inline, nothing to
fetch) and its PDF (WeasyPrint: A4, numbered pages), then the data: a CSV file per table
(UTF-8 with a byte-order mark, so that Excel reads the Chinese right), the same tables as
the sheets of ``report.xlsx``, ``report.json`` (the input, canonical) and
``manifest.json`` (each file's SHA-256). Exit 0 when every file was written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import jinja2

from gateway.i18n import Lang, install
from gateway.numbers.reports.data import ReportInput
from gateway.numbers.reports.tables import Table, tables
from gateway.numbers.reports.view import view

__all__ = ["main", "render"]

# How much lower than the gateway the child runs (nice(2): 0 is the default, 19 the least).
NICENESS = 10


def _env(lang: Lang) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.numbers.reports", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    install(env, lang)
    return env


def html(report: ReportInput, lang: Lang) -> str:
    return _env(lang).get_template("report.html").render(v=view(report, lang))


def csv_bytes(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    writer.writerows(["" if cell is None else cell for cell in row] for row in table.rows)
    return "\ufeff".encode() + out.getvalue().encode()


def xlsx_bytes(all_tables: list[Table]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    if first is not None:
        book.remove(first)
    for table in all_tables:
        sheet = book.create_sheet(table.name[:31])
        sheet.append(list(table.columns))
        for row in table.rows:
            sheet.append(list(row))
        sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def printer() -> Callable[[str], bytes] | None:
    """WeasyPrint's HTML → PDF; None (said on stderr, which the gateway logs) when it
    cannot run: a box without Pango still gets its report's pages and data."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: a library it loads is missing
        sys.stderr.write(
            f"no PDF: WeasyPrint cannot run ({exc}); install Pango "
            "(apt-get install libpango-1.0-0 libpangoft2-1.0-0)\n"
        )
        return None

    def pdf(page: str) -> bytes:
        data: bytes = HTML(string=page).write_pdf()
        return data

    return pdf


def render(report: ReportInput, folder: Path) -> dict[str, str]:
    """Write every file of ``report`` into ``folder``; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, bytes] = {}
    langs = sorted(Lang, key=lambda lang: lang.value != report.language)
    pdf = printer()
    for lang in langs:
        page = html(report, lang)
        written[f"report.{lang.value}.html"] = page.encode()
        if pdf is not None:
            written[f"report.{lang.value}.pdf"] = pdf(page)
    all_tables = tables(report)
    for table in all_tables:
        written[f"{table.name}.csv"] = csv_bytes(table)
    written["report.xlsx"] = xlsx_bytes(all_tables)
    written["report.json"] = report.canonical()
    manifest = {name: hashlib.sha256(body).hexdigest() for name, body in sorted(written.items())}
    written["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    for name, body in written.items():
        (folder / name).write_bytes(body)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m gateway.numbers.reports.render INPUT.json OUTDIR\n")
        return 2
    os.nice(NICENESS)
    report = ReportInput.model_validate_json(Path(args[0]).read_bytes())
    render(report, Path(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
