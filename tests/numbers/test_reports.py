"""The reports (issue 14, point 3): a closed shift's report as pages, PDFs and data, served
to viewers, refused to operators, made again by ``linegate report`` beside the running
gateway, and rendered in a child process that never stalls the loop.

The scenario (tests/numbers/report_scenario.py) runs on a real gateway's store with a clock
it moves, and closes its shifts as the gateway does (``Closing.close``). Every expected
figure is read from the ``kpi.snapshot`` event of the same period in the outbox and
written out here (a percentage with one decimal), never asked of the renderer.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from PIL import Image

from gateway.clock import iso
from gateway.i18n import Lang
from gateway.numbers.reports.maker import REPORT_PUBLISHED
from gateway.numbers.reports.store import CSV_NAMES, files_of
from gateway.store.rows import AuditRow
from tests.clocks import ManualClock, line_clock_offset_s
from tests.conftest import missing
from tests.gateway.test_station_api import served_line
from tests.numbers.report_scenario import Closed, close_two_shifts
from tests.screens import conftest as screens
from tests.screens.conftest import SHOTS, OpenPage

# The screens' fixtures (Debian's Chromium under Playwright), for this module's page test.
browser = screens.browser
open_page = screens.open_page

ROOT = Path(__file__).resolve().parents[2]
LINEGATE = Path(sys.executable).with_name("linegate")  # the venv's command
REPORT = "shift-2026-11-25-early"
BEFORE = "shift-2026-11-24-early"
CONTRACT_FIELDS = {
    "report_id",
    "kind",
    "period_start",
    "period_end",
    "timezone",
    "summary",
    "url",
    "sha256",
}


def pct(ratio: float) -> str:
    """A ratio as the report must write it: a percentage with one decimal."""
    return f"{ratio * 100:.1f}%"


def _need_weasyprint() -> None:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: Pango is missing
        missing(f"WeasyPrint cannot run ({exc}): apt-get install libpango-1.0-0 libpangoft2-1.0-0")


@pytest.fixture
async def closed(tmp_path: Path) -> AsyncIterator[Closed]:
    _need_weasyprint()
    yield await close_two_shifts(tmp_path / "data", tmp_path / "config")


def snapshot_of(closed: Closed) -> dict[str, Any]:
    event = closed.event(
        "kpi.snapshot",
        period_start=iso(closed.period.start),
        period_end=iso(closed.period.end),
    )
    data: dict[str, Any] = event["data"]
    return data


def headline(snapshot: dict[str, Any]) -> dict[str, float]:
    """The line's OEE, its three factors, OTD and FPY in the snapshot: all counted here."""
    line = snapshot["line"]
    figures = {
        "oee": line["oee"],
        "availability": line["availability"]["ratio"],
        "performance": line["performance"]["ratio"],
        "quality": line["quality"]["ratio"],
        "otd": line["otd"]["ratio"],
        "fpy": line["fpy"]["ratio"],
    }
    assert all(isinstance(v, float) for v in figures.values()), figures
    return figures


def folder_of(closed: Closed, report_id: str = REPORT) -> Path:
    return closed.data_dir / "reports" / report_id


def pdf_text_and_picture(path: Path, picture: Path) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    try:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            pages.append(page.get_textpage().get_text_range())
            if i == 0:
                picture.parent.mkdir(parents=True, exist_ok=True)
                page.render(scale=1.5).to_pil().save(picture)
        return " ".join(" ".join(pages).split())
    finally:
        doc.close()


def assert_not_blank(picture: Path) -> None:
    with Image.open(picture) as image:
        grey = image.convert("L")
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    inked = sum(grey.histogram()[:200])
    assert inked > 0.01 * grey.width * grey.height, f"{picture} is nearly blank"
    assert len(colours) > 20, f"{picture}: {len(colours)} colours"  # text and charts


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), f"{path.name}: no UTF-8 byte-order mark for Excel"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def cell(value: float | None) -> str | float:
    return "" if value is None else value


def number(text: str) -> float | None:
    return None if text == "" else float(text)


async def test_a_closed_shift_is_reported_as_pages_pdfs_and_data(closed: Closed) -> None:
    snapshot = snapshot_of(closed)
    figures = headline(snapshot)
    folder = folder_of(closed)

    # Every file is there, and the manifest names each with its SHA-256.
    names = set(files_of(Lang.ZH))
    assert {p.name for p in folder.iterdir()} == names
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest) == names - {"manifest.json"}
    for name, digest in manifest.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name

    # report.published: the contract's fields, the period, and report.json's hash.
    published = closed.event(REPORT_PUBLISHED, report_id=REPORT)["data"]
    assert set(published) >= CONTRACT_FIELDS
    assert published["kind"] == "shift"
    assert published["period_start"] == snapshot["period_start"] == "2026-11-25T00:00:00.000+00:00"
    assert published["period_end"] == snapshot["period_end"] == "2026-11-25T08:00:00.000+00:00"
    assert published["timezone"] == "Asia/Shanghai"
    assert published["url"] == f"/reports/{REPORT}"
    report_json = (folder / "report.json").read_bytes()
    assert published["sha256"] == hashlib.sha256(report_json).hexdigest()
    line = snapshot["line"]
    assert published["summary"] == {
        **figures,
        "units": line["units_completed"],
        "orders": line["orders_completed"],
        "lead_time_p50_s": line["lead_time_p50_s"],
    }
    # The report's input is the period's snapshot itself, and the day before's to compare.
    kept = json.loads(report_json)
    assert kept["kpis"] == snapshot
    assert kept["previous"]["label"] == "2026-11-24 early"
    assert kept["bottleneck"] and kept["changes"]  # the analysis' sentences, both languages

    # The PDFs: page 1 as a picture that is not blank, and the snapshot's figures in the text.
    texts = {}
    for lang in Lang:
        picture = SHOTS / f"report-{REPORT}-{lang.value}-page1.png"
        texts[lang] = text = pdf_text_and_picture(folder / f"report.{lang.value}.pdf", picture)
        assert_not_blank(picture)
        for name, value in figures.items():
            assert pct(value) in text, f"{lang}: {name} {pct(value)} not in the PDF"
    assert "班次报告" in texts[Lang.ZH] and "迟交订单及原因" in texts[Lang.ZH]  # a CJK font
    assert "Late orders and why" in texts[Lang.EN]

    # The pages: in each language, with its headings.
    zh = (folder / "report.zh-CN.html").read_text()
    for heading in (
        "本期主要指标",
        "产出与计划对比",
        "各工位设备综合效率（OEE）",
        "按原因的停机时间",
    ):
        assert heading in zh
    assert "与上期对比" in zh and "瓶颈" in zh
    en = (folder / "report.en.html").read_text()
    assert "Output against plan" in en and "Compared with the previous period" in en
    for page in (zh, en):
        assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")

    # The data: CSV with a byte-order mark, the same figures as the snapshot.
    kpis = {row["kpi"]: row for row in read_csv(folder / "kpis.csv")}
    for name, value in figures.items():
        assert float(kpis[name]["value"]) == value, name
    assert float(kpis["otd"]["numerator"]) == line["otd"]["numerator"]
    assert float(kpis["otd"]["denominator"]) == line["otd"]["denominator"]
    assert float(kpis["fpy"]["denominator"]) == line["fpy"]["denominator"]
    stations = {row["station"]: row for row in read_csv(folder / "stations.csv")}
    assert set(stations) == {*snapshot["stations"], "line"}
    for sid, st in snapshot["stations"].items():
        row = stations[sid]
        for factor in ("availability", "performance", "quality"):
            assert number(row[factor]) == st[factor]["ratio"], (sid, factor)
        assert number(row["oee"]) == st["oee"], sid
        assert float(row["pbt_s"]) == st["elements"]["pbt_s"]
        assert float(row["apt_s"]) == st["elements"]["apt_s"]
    # The scenario: B packed after its ship-by, C never made; a rework and a scrap.
    late = read_csv(folder / "late_orders.csv")
    assert [r["order_id"] for r in late] == ["B", "C"] and line["orders_late"] == 2
    defects = read_csv(folder / "defects.csv")
    assert {(d["reason"], d["disposition"], d["count"]) for d in defects} == {
        ("smeared print", "rework", "1"),
        ("hole in the blank", "scrap", "1"),
    }
    downtime = {r["reason"]: float(r["seconds"]) for r in read_csv(folder / "downtime.csv")}
    assert downtime == line["downtime_s"] and downtime["ink refill"] == 600.0
    assert [float(r["lead_time_s"]) for r in read_csv(folder / "lead_times.csv")] == sorted(
        kept["elements"]["lead_times_s"]
    )
    # The workbook: a sheet per CSV file, the same rows.
    book = load_workbook(folder / "report.xlsx", read_only=True)
    assert book.sheetnames == list(CSV_NAMES)
    sheet = list(book["kpis"].iter_rows(values_only=True))
    assert sheet[0][:5] == ("kpi", "unit", "numerator", "denominator", "value")
    assert {r[0]: r[4] for r in sheet[1:]}["oee"] == figures["oee"]
    book.close()


async def _sign_in(page: Any, username: str, password: str) -> None:
    await page.fill("[data-test=username]", username)
    await page.fill("[data-test=password]", password)
    await page.click("[data-test=signin-submit]")


async def test_reports_are_served_to_viewers_and_refused_to_operators(
    closed: Closed, open_page: OpenPage
) -> None:
    from gateway.access.accounts import add_user
    from gateway.access.passwords import hash_secret
    from gateway.store.rows import Role
    from gateway.web.report_routes import REPORT_CSP

    snapshot = snapshot_of(closed)
    figures = headline(snapshot)
    folder = folder_of(closed)
    async with served_line(closed.data_dir, closed.config) as (ln, gw):
        viewer = {"Authorization": f"Bearer {ln.keys.token('viewer')}"}
        # The list, newest first, each with the figures report.published carried.
        r = await ln.api.get("/api/reports", headers=viewer)
        assert r.status_code == 200, r.text
        listed = r.json()
        assert [x["report_id"] for x in listed] == [REPORT, BEFORE]
        published = closed.event(REPORT_PUBLISHED, report_id=REPORT)["data"]
        assert listed[0]["summary"] == published["summary"]
        assert listed[0]["sha256"] == published["sha256"]
        assert (await ln.api.get("/api/reports?kind=daily", headers=viewer)).json() == []

        # A report's page, in the asked language, under a policy that lets it load nothing.
        r = await ln.api.get(f"/reports/{REPORT}?lang=en", headers=viewer)
        assert r.status_code == 303
        assert r.headers["location"] == f"/reports/{REPORT}/report.en.html"
        r = await ln.api.get(f"/reports/{REPORT}/report.en.html", headers=viewer)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == REPORT_CSP
        r = await ln.api.get(f"/reports/{REPORT}", headers=viewer)  # the line's language
        assert r.headers["location"] == f"/reports/{REPORT}/report.zh-CN.html"
        # Its files, with their types and a name that says which line and period.
        for name, kind, disposition in (
            ("report.en.pdf", "application/pdf", "inline"),
            ("kpis.csv", "text/csv; charset=utf-8", "attachment"),
            (
                "report.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "attachment",
            ),
            ("report.json", "application/json", "attachment"),
        ):
            r = await ln.api.get(f"/reports/{REPORT}/{name}", headers=viewer)
            assert r.status_code == 200, (name, r.text)
            assert r.headers["content-type"] == kind
            assert r.headers["content-disposition"] == (
                f'{disposition}; filename="hz01-line3_{REPORT}_{name}"'
            )
            assert r.content == (folder / name).read_bytes()
        for path in (
            f"/reports/{REPORT}/nothing.pdf",
            f"/reports/{REPORT}/..%2Fmanifest.json",
            f"/reports/{REPORT}/.hidden.json",
            "/reports/shift-2026-11-23-early",
        ):
            r = await ln.api.get(path, headers=viewer)
            assert r.status_code == 404, path

        # An operator (signed in at pack-1, through its terminal) may not read them; the
        # refusal is on the audit trail.
        terminal = {"Authorization": f"Bearer {ln.keys.terminal('pack-1')}"}
        for path in ("/api/reports", f"/reports/{REPORT}", f"/reports/{REPORT}/report.json"):
            r = await ln.api.get(path, headers=terminal)
            assert r.status_code == 403, path
            assert r.json()["code"] == "FORBIDDEN_ROLE"
        trail = gw.store.fetch_all(
            AuditRow, "SELECT * FROM audit WHERE outcome = 'denied' AND target LIKE 'GET /%'"
        )
        assert {(a.actor, a.role, a.target) for a in trail} >= {
            ("OP-1008", "operator", "GET /api/reports"),
            ("OP-1008", "operator", f"GET /reports/{REPORT}"),
        }
        # Nobody signed in: asked to.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}") as anyone:
            assert (await anyone.get("/api/reports")).status_code == 401

        # In Chromium: the list, signed in as a viewer, then the report from its link.
        password = "viewer-of-line-3-pw"
        add_user(gw.store, "watcher", Role.VIEWER, hash_secret(password), ln.clock.now())
        base = f"http://127.0.0.1:{gw.http_port}"
        page = await open_page(base, "/reports?lang=zh-CN", width=1100, height=1400)
        await _sign_in(page.page, "watcher", password)
        link = page.page.locator(f"[data-report='{REPORT}'] a").first
        await link.wait_for()
        assert pct(figures["oee"]) in await page.page.inner_text(f"[data-report='{REPORT}']")
        await page.shot("list")
        await link.click()
        await page.page.wait_for_url(f"**/reports/{REPORT}/report.zh-CN.html")
        await page.page.locator("[data-test=headline]").wait_for()
        await page.shot("report-zh")
        text = await page.page.inner_text("body")
        assert "本期主要指标" in text and "各工位设备综合效率（OEE）" in text
        for name, value in figures.items():
            assert pct(value) in text, f"{name} {pct(value)} not on the page"
        dtg2 = snapshot["stations"]["dtg-2"]
        row = await page.page.inner_text("[data-station='dtg-2']")
        for factor in ("availability", "performance", "quality"):
            assert pct(dtg2[factor]["ratio"]) in row, factor
        # The other language, from the page's own link.
        await page.page.click("nav.files a >> nth=0")
        await page.page.wait_for_url(f"**/reports/{REPORT}/report.en.html")
        assert "The period in figures" in await page.page.inner_text("body")
        await page.shot("report-en")


async def test_linegate_report_makes_a_shift_again_beside_the_running_gateway(
    closed: Closed,
) -> None:
    snapshot = snapshot_of(closed)
    folder = folder_of(closed)
    first = closed.event(REPORT_PUBLISHED, report_id=REPORT)["data"]
    # The CLI's clock: an hour after the shift, whatever day the test runs.
    offset = line_clock_offset_s(closed.period.end + timedelta(hours=1))
    async with served_line(closed.data_dir, closed.config) as (ln, gw):
        proc = await asyncio.create_subprocess_exec(
            LINEGATE,
            "report",
            "shift:2026-11-25:early",
            "--config",
            str(closed.config_dir),
            "--data-dir",
            str(closed.data_dir),
            f"--clock-offset-s={offset}",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(90):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert str(folder) in out.decode()
        # The gateway alone numbers events: it publishes the report the CLI made.
        events = await ln.hub.wait_for(
            lambda ev: (
                sum(e["type"] == REPORT_PUBLISHED and e["data"]["report_id"] == REPORT for e in ev)
                >= 2
            ),
            timeout=20,
        )
        again = [e["data"] for e in events if e["type"] == REPORT_PUBLISHED][-1]
        assert again["report_id"] == REPORT
        report_json = (folder / "report.json").read_bytes()
        assert again["sha256"] == hashlib.sha256(report_json).hexdigest() != first["sha256"]
        # The same figures as the period's snapshot.
        made = json.loads(report_json)
        assert made["kpis"] == snapshot
        assert made["generated_at"].startswith("2026-11-25T09:0")
        assert again["summary"] == first["summary"]
        row = gw.store.one("SELECT pending FROM reports WHERE report_id = ?", (REPORT,))
        assert row is not None and row[0] == 0


async def test_a_report_renders_in_a_child_process_without_stalling_the_loop(
    closed: Closed,
) -> None:
    from gateway.app.root import Gateway
    from gateway.numbers.kpis import kpi_doc

    folder = folder_of(closed)
    kept = (folder / "report.json").read_bytes()
    gw = Gateway(closed.config, data_dir=closed.data_dir, clock=ManualClock(closed.period.end))
    gw.open()
    try:
        elements = gw.closing.stored(closed.period)
        assert elements is not None
        kpis = kpi_doc(elements, closed.period, closed.config.line.timezone)
        seq = gw.outbox.next_seq

        # Stopped at its time limit: no report, the kept one untouched, nothing published.
        gw.reports.timeout_s = 0.2
        assert await gw.reports.make(closed.period, elements, kpis) is None
        assert (folder / "report.json").read_bytes() == kept
        assert gw.outbox.next_seq == seq
        assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]

        # Made again: the loop answers every 10 ms meanwhile (operators' scans come first).
        gw.reports.timeout_s = 120
        stalls: list[float] = []

        async def ticking() -> None:
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                stalls.append(time.perf_counter() - t0 - 0.01)

        ticker = asyncio.create_task(ticking())
        started = time.perf_counter()
        row = await gw.reports.make(closed.period, elements, kpis)
        took = time.perf_counter() - started
        ticker.cancel()
        assert row is not None and row.report_id == REPORT
        assert len(stalls) > 20
        assert max(stalls) < 0.25, f"the loop stalled {max(stalls):.3f} s in {took:.1f} s"
        assert gw.outbox.next_seq == seq + 1  # report.published, with the row
    finally:
        gw.store.close()
