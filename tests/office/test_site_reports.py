"""The site report: the lines' report.published and kpi.snapshot of one period added up
(Σ numerators / Σ denominators, ISO 22400-2 for OEE), a line without a report shown as
missing (not zero), the cost of the orders completed in the period, JSON and CSV behind the
REPORTS policy. Each expected figure is worked out by hand below."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from office.access import Gate, Principal, Role
from office.answer.board_views import project
from office.answer.reports import SiteReports, last_closed, reports_routes
from office.answer.reports_read import PeriodKind, period_of
from office.app import serve_http
from office.i18n import Catalog
from office.receive.http import http_app
from office.store import Store
from office.web import Pages
from tests.office.board_events import Line, kpi_line

pytestmark = pytest.mark.timeout(90)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 11, 4, 30, tzinfo=UTC)
A, B, C, D = "hz01/line1", "hz01/line2", "hz01/line3", "hz01/line4"
LEAD, SERVICE = "lead-t0ken", "service-t0ken"
DAY_START = datetime(2026, 11, 9, 16, tzinfo=UTC)  # 2026-11-10 00:00 in Shanghai
DAY_END = datetime(2026, 11, 10, 16, tzinfo=UTC)
A_LINE = {"orders": 30, "units": 40, "on_time": 20, "due": 25, "first_pass": 38, "scrapped": 1,
          "pbt": 86400.0, "apt": 60000.0, "pri_pq": 50000.0, "pq": 41, "gq": 40}  # fmt: skip
B_LINE = {"orders": 10, "units": 12, "on_time": 9, "due": 10, "first_pass": 11, "scrapped": 2,
          "pbt": 43200.0, "apt": 30000.0, "pri_pq": 27000.0, "pq": 14, "gq": 12}  # fmt: skip


def clock() -> datetime:
    return NOW


def utc(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def streams() -> list[Line]:
    a, b, d = Line(A), Line(B), Line(D)
    a.report(utc(10, 16), "daily", DAY_START, DAY_END, {"units": 1, "orders": 1, "otd": 0.1})
    a.kpi(utc(10, 16), "daily", DAY_START, DAY_END, kpi_line(**A_LINE))  # type: ignore[arg-type]
    # Made again (linegate report): the later one is the line's report.
    a.report(utc(10, 17), "daily", DAY_START, DAY_END, {"units": 40, "orders": 30, "otd": 0.8,
                                                        "fpy": 0.95, "oee": 0.4})  # fmt: skip
    # Another period of A, and a week: not the day's.
    a.kpi(utc(10, 17), "weekly", utc(8, 16), utc(15, 16), kpi_line(**B_LINE))  # type: ignore[arg-type]
    a.report(utc(10, 17), "weekly", utc(8, 16), utc(15, 16), {"units": 999})
    a.accepted(utc(9, 10), "OA1", utc(10, 8))
    a.completed(utc(10, 2), "OA1")
    a.costed(utc(10, 2), "OA1", 12.5)
    a.completed(utc(10, 17), "OA2")  # the 11th in Shanghai: not the day's
    a.costed(utc(10, 17), "OA2", 100.0)
    b.kpi(utc(10, 16), "daily", DAY_START, DAY_END, kpi_line(**B_LINE))  # type: ignore[arg-type]
    b.report(utc(10, 16), "daily", DAY_START, DAY_END, {"units": 12, "orders": 10})
    b.report(utc(11, 16), "daily", DAY_END, utc(11, 16), {"units": 500, "orders": 500})
    b.completed(DAY_START, "OB1")  # at the first instant of the day: the day's
    b.costed(DAY_START, "OB1", 7.25)
    # D: its report came, its snapshot did not: counts from the summary, ratios lack it.
    d.report(utc(10, 16), "daily", DAY_START, DAY_END, {"units": 5, "orders": 4, "otd": 0.5})
    return [a, b, d]


# By hand: A + B (+ D's counts); C missing.
SITE_ORDERS = 30 + 10 + 4
SITE_UNITS = 40 + 12 + 5
OTD = (20 + 9, 25 + 10)
FPY = (38 + 11, 40 + 12)
AVAILABILITY = (60000 + 30000, 86400 + 43200)
PERFORMANCE = (50000 + 27000, 60000 + 30000)
QUALITY = (40 + 12, 41 + 14)
OEE = round(90000 / 129600 * (77000 / 90000) * (52 / 55), 4)


@pytest.fixture
async def filled(store_url: str) -> Store:
    store = await Store.open(store_url, clock, projectors=[project])
    for line in streams():
        await store.add_events(line.gateway_id, line.sent, "http")
    return store


def test_periods_in_the_site_zone() -> None:
    week = period_of(PeriodKind.WEEKLY, date(2026, 11, 9), SHANGHAI)
    assert week.start.astimezone(UTC) == utc(8, 16)
    assert week.end.astimezone(UTC) == utc(15, 16)
    month = period_of(PeriodKind.MONTHLY, date(2026, 12, 1), SHANGHAI)
    assert month.end.astimezone(UTC) == datetime(2026, 12, 31, 16, tzinfo=UTC)
    with pytest.raises(ValueError):
        period_of(PeriodKind.WEEKLY, date(2026, 11, 10), SHANGHAI)  # a Tuesday
    with pytest.raises(ValueError):
        period_of(PeriodKind.MONTHLY, date(2026, 11, 2), SHANGHAI)
    # 12:30 on Wednesday the 11th in Shanghai
    assert last_closed(PeriodKind.DAILY, NOW, SHANGHAI) == date(2026, 11, 10)
    assert last_closed(PeriodKind.WEEKLY, NOW, SHANGHAI) == date(2026, 11, 2)
    assert last_closed(PeriodKind.MONTHLY, NOW, SHANGHAI) == date(2026, 10, 1)


async def test_site_report_adds_up_the_lines(filled: Store) -> None:
    store = filled
    try:
        gate = Gate(
            store,
            {LEAD: Principal("zhang", Role.LEAD), SERVICE: Principal("wang", Role.SERVICE)},
            clock,
        )
        reports = SiteReports(
            store, [A, B, C], SHANGHAI, clock, {A: "http://10.0.0.5:8080/metrics"}
        )
        app = http_app(store, {}, 64 * 1024, reports_routes(reports, gate, Pages(Catalog())))
        async with serve_http(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as c:
            path = "/v1/reports/daily/2026-11-10"
            assert (await c.get(path)).status_code == 401
            refused = await c.get(path, headers={"Authorization": f"Bearer {SERVICE}"})
            assert refused.status_code == 403
            lead = {"Authorization": f"Bearer {LEAD}"}
            bad = await c.get("/v1/reports/weekly/2026-11-10", headers=lead)
            assert bad.status_code == 400
            assert (await c.get("/v1/reports/yearly/2026-01-01", headers=lead)).status_code == 400
            got = await c.get(path, headers=lead)
            assert got.status_code == 200
            doc = got.json()
            as_csv = await c.get(path, params={"format": "csv"}, headers=lead)
    finally:
        await store.close()
    site = doc["site"]
    assert doc["start"] == "2026-11-10T00:00:00+08:00" and doc["end"] == "2026-11-11T00:00:00+08:00"
    assert site["orders_completed"] == SITE_ORDERS
    assert site["units_completed"] == SITE_UNITS
    assert site["units_scrapped"] == 3
    assert (site["otd"]["numerator"], site["otd"]["denominator"]) == OTD
    assert site["otd"]["ratio"] == round(29 / 35, 4)
    assert site["otd"]["lacking"] == [D]
    assert (site["fpy"]["numerator"], site["fpy"]["denominator"]) == FPY
    assert (site["availability"]["numerator"], site["availability"]["denominator"]) == AVAILABILITY
    assert (site["performance"]["numerator"], site["performance"]["denominator"]) == PERFORMANCE
    assert (site["quality"]["numerator"], site["quality"]["denominator"]) == QUALITY
    assert site["scrap_rate"]["ratio"] == round(3 / 55, 4)
    assert site["oee"] == OEE
    # Not the average of the lines' OTDs: (0.8 + 0.9) / 2 = 0.85 would be wrong.
    assert site["otd"]["ratio"] != round((20 / 25 + 9 / 10) / 2, 4)
    assert site["cost"] == {"CNY": 19.75}  # OA1 12.5 + OB1 7.25; OA2 was the 11th
    assert doc["missing"] == [C]
    lines = {line["gateway_id"]: line for line in doc["lines"]}
    assert list(lines) == [A, B, C, D]
    assert lines[C]["missing"] is True and lines[C]["units_completed"] is None
    assert lines[A]["summary"]["otd"] == 0.8  # the report made again
    assert lines[A]["url"] == "http://10.0.0.5:8080/reports/daily-2026-11-10"
    assert lines[B]["url"] == "/reports/daily-2026-11-10"  # no address known: as sent
    assert lines[D]["units_completed"] == 5 and lines[D]["orders_completed"] == 4
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0][:3] == ["line", "report", "orders_completed"]
    assert rows[1][:5] == ["site", "", str(SITE_ORDERS), str(SITE_UNITS), "3"]
    assert rows[1][5] == str(round(29 / 35, 4))
    assert [r[0] for r in rows[2:]] == [A, B, C, D]
    assert rows[4][1] == "missing"
