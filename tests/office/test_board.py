"""The site board: its views kept by the projector as events are stored (SQLite and
PostgreSQL), filled by migration 7 from events stored before it, the lines' /metrics
scraped over HTTP, and ``GET /v1/board`` behind the gate.

Expected values are worked out by hand from the definitions in office/answer/board_read.py
(last hour = the current UTC minute and the 59 before it; OTD today = on time / completed
since local midnight in Asia/Shanghai, of the orders whose ship-by is known; WIP = accepted,
neither completed nor cancelled)."""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from office.access import Gate, Principal, Role
from office.answer.board import Board, board_routes
from office.answer.board_scrape import MetricsScraper, ScrapeTarget, parse_health
from office.answer.board_views import project
from office.app import serve_http
from office.config import ConfigError, load_config, read_secret
from office.i18n import Catalog
from office.receive.http import http_app
from office.store import Store
from office.web import Pages
from tests.office.board_events import Line, kpi_line

pytestmark = pytest.mark.timeout(90)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 11, 4, 30, tzinfo=UTC)  # 12:30 in Shanghai
A, B = "hz01/line1", "hz01/line2"
LEAD, SHOP, GATEWAY_VIEWER = "lead-t0ken", "shop-t0ken", "viewer-t0ken"


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


def line_a() -> tuple[Line, list[list[int]]]:
    """Line A's stream, and the order its batches are delivered in (by seq ranges)."""
    a = Line(A)
    a.raised(utc(11, 1), "a1", "warning", "scanner lost")  # 1
    a.raised(utc(11, 2), "a2", "critical", "scale down")  # 2
    a.raised(utc(11, 3), "a3", "major")  # 3
    a.cleared(utc(11, 3, 30), "a3")  # 4
    a.raised(utc(11, 3, 40), "a4", "critical")  # 5: raise, then its clear ...
    a.cleared(utc(11, 3, 41), "a4")  # 6: ... delivered first: a4 is closed
    a.cleared(utc(11, 3, 42), "a5")  # 7: a clear, then a new raise ...
    a.raised(utc(11, 3, 43), "a5", "warning")  # 8: ... delivered first: a5 is open
    a.unit(utc(11, 3, 30, 59), "O1")  # 9: outside the last hour (03:31..04:30)
    a.unit(utc(11, 3, 31), "O1")  # 10: inside
    a.unit(utc(11, 4, 0), "O2")  # 11
    a.unit(utc(11, 4, 30), "O3")  # 12: the current minute
    a.accepted(utc(10, 16, 30), "O1", utc(11, 4))  # 13
    a.completed(utc(11, 3, 50), "O1")  # 14: on time
    a.accepted(utc(10, 16, 31), "O2", utc(11, 3))  # 15
    a.completed(utc(11, 3, 40), "O2")  # 16: late
    a.accepted(utc(10, 16, 32), "O3", utc(11, 10))  # 17
    a.event(  # 18: ship-by brought forward: O3 is late
        "order.progress",
        utc(11, 1),
        {"stage": "in_process", "ship_by": utc(11, 3).isoformat(), "units_total": 1},
        "O3",
    )
    a.completed(utc(11, 4, 10), "O3")  # 19
    a.accepted(utc(10, 10), "O4", utc(11, 10))  # 20
    a.completed(utc(10, 15, 59), "O4")  # 21: 23:59 on the 10th in Shanghai: not today
    a.accepted(utc(11, 1), "O5", utc(11, 12))  # 22: WIP
    a.accepted(utc(11, 1), "O6", utc(11, 12))  # 23
    a.event("order.cancelled", utc(11, 2), {"reason": "shop"}, "O6")  # 24
    a.accepted(utc(11, 1), "O7", utc(11, 12))  # 25: WIP
    a.completed(utc(11, 4, 20), "O8")  # 26: never seen accepted: no ship-by
    a.kpi(utc(11, 4), "interval", utc(11, 3), utc(11, 4), kpi_line(
        orders=3, units=3, on_time=1, due=3, first_pass=3, scrapped=0,
        pbt=3600, apt=3000, pri_pq=2400, pq=4, gq=3,
    ))  # fmt: skip  # 27
    a.kpi(utc(11, 4, 1), "daily", utc(9, 16), utc(10, 16), kpi_line(
        orders=30, units=40, on_time=20, due=25, first_pass=38, scrapped=1,
        pbt=86400, apt=60000, pri_pq=50000, pq=41, gq=40,
    ))  # fmt: skip  # 28: sent later, but an older period: not the latest
    a.event("task.completed", utc(11, 4), {"whatever": True})  # 29: not the board's
    a.event("alarm.raised", utc(11, 4), {"no_alarm_id": 1})  # 30: odd, tolerated
    a.event("order.accepted", utc(11, 4), {"ship_by": "not a time"}, "O9")  # 31: WIP
    batches = [[1, 2, 3, 4], [6], [5], [8], [7], list(range(9, 32))]
    return a, batches


async def deliver(store: Store, line: Line, batches: list[list[int]]) -> None:
    for seqs in batches:
        await store.add_events(line.gateway_id, [line.sent[s - 1] for s in seqs], "mqtt")


EXPECTED_A = {
    "gateway_id": A,
    "state": "online",
    "throughput_last_hour": {"units": 3, "orders": 4},  # units 10, 11, 12; O1, O2, O3, O8
    "otd_today": {"on_time": 1, "completed": 3, "ratio": round(1 / 3, 4)},
    "wip": 3,  # O5, O7, O9
    "alarms_open": 3,  # a1, a2, a5
    "highest_severity": "critical",
    "oldest": "a1",
    "kpi": {"period": "interval:2026-11-11", "oee": round(3000 / 3600 * 2400 / 3000 * 3 / 4, 4)},
}


def check_line_a(doc: dict) -> None:  # type: ignore[type-arg]
    assert doc["gateway_id"] == EXPECTED_A["gateway_id"]
    assert doc["throughput_last_hour"] == EXPECTED_A["throughput_last_hour"]
    assert doc["otd_today"] == EXPECTED_A["otd_today"]
    assert doc["wip"] == EXPECTED_A["wip"]
    assert doc["alarms"]["open"] == EXPECTED_A["alarms_open"]
    assert doc["alarms"]["highest_severity"] == EXPECTED_A["highest_severity"]
    assert doc["alarms"]["oldest"]["alarm_id"] == EXPECTED_A["oldest"]
    assert doc["alarms"]["oldest"]["message"] == "scanner lost"
    assert doc["kpi"] == EXPECTED_A["kpi"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A gateway's /metrics as gateway/app/metrics.py writes it (recorded from the reference line,
# trimmed to the families the board reads and two it ignores).
GATEWAY_METRICS = """\
# HELP linegate_info This gateway: its version and line.
# TYPE linegate_info gauge
linegate_info{gateway_id="hz01/line1",line="line1",site="hz01",version="0.16.0"} 1.0
# HELP linegate_outbox_events Events committed and waiting for the hub to acknowledge them.
# TYPE linegate_outbox_events gauge
linegate_outbox_events 17.0
# HELP linegate_outbox_oldest_age_seconds How long the oldest event waiting has waited.
# TYPE linegate_outbox_oldest_age_seconds gauge
linegate_outbox_oldest_age_seconds 42.5
# HELP linegate_link_up 1 while the hub link is connected.
# TYPE linegate_link_up gauge
linegate_link_up{transport="mqtt"} 1.0
# HELP linegate_device_state The device's state: 1 for the state it is in, 0 for the others.
# TYPE linegate_device_state gauge
linegate_device_state{device="printer",state="ready",station="pack-1"} 1.0
linegate_device_state{device="printer",state="failed",station="pack-1"} 0.0
linegate_device_state{device="scale",state="ready",station="pack-1"} 0.0
linegate_device_state{device="scale",state="failed",station="pack-1"} 1.0
linegate_device_state{device="scanner",state="ready",station="dtg-1"} 1.0
# HELP linegate_plan_in_use 1 while the stations follow the plan.
# TYPE linegate_plan_in_use gauge
linegate_plan_in_use 1.0
# HELP linegate_plan_age_seconds How long ago the current plan was made.
# TYPE linegate_plan_age_seconds gauge
linegate_plan_age_seconds 95.0
# HELP linegate_action_seconds How long the station API took.
# TYPE linegate_action_seconds histogram
linegate_action_seconds_bucket{le="0.05"} 3.0
linegate_action_seconds_bucket{le="+Inf"} 3.0
linegate_action_seconds_count 3.0
linegate_action_seconds_sum 0.04
"""


@contextlib.asynccontextmanager
async def fake_gateway() -> AsyncIterator[str]:
    """A gateway's /metrics: the recorded text for its viewer token, 401 otherwise."""

    async def metrics(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {GATEWAY_VIEWER}":
            return PlainTextResponse("no", status_code=401)
        return PlainTextResponse(GATEWAY_METRICS, media_type="text/plain; version=0.0.4")

    async with serve_http(Starlette(routes=[Route("/metrics", metrics)]), "127.0.0.1", 0) as url:
        yield url


def test_parse_health_reads_the_gateway_families() -> None:
    h = parse_health(GATEWAY_METRICS)
    assert h.outbox_events == 17.0
    assert h.outbox_oldest_age_s == 42.5
    assert h.link_up is True
    assert h.plan_in_use is True
    assert h.plan_age_s == 95.0
    assert h.devices == {
        "dtg-1/scanner": "ready",
        "pack-1/printer": "ready",
        "pack-1/scale": "failed",
    }


async def test_a_token_rotated_on_disk_is_taken_at_the_next_scrape(tmp_path: Path) -> None:
    # The token file is read at each scrape: a gateway's viewer token replaced on disk (a
    # rotation, or a site demo writing it once the line made it) needs no restart.
    token_file = tmp_path / "viewer.token"
    token_file.write_text("lgt_old_revoked\n")
    clock = Clock()
    target = ScrapeTarget(A, "", functools.partial(read_secret, token_file, "viewer token"))
    async with fake_gateway() as gw:
        scraper = MetricsScraper([replace(target, url=f"{gw}/metrics")], clock)
        await scraper.scrape_all()
        failing = scraper.health(A)
        assert failing is not None and failing.error == "HTTP 401"
        token_file.write_text(GATEWAY_VIEWER + "\n")
        clock.at = NOW + timedelta(seconds=15)
        await scraper.scrape_all()
        good = scraper.health(A)
        assert good is not None and good.outbox_events == 17.0
        assert good.scraped_at == NOW + timedelta(seconds=15)
        token_file.unlink()  # unreadable: the scrape fails with why, the board says so
        await scraper.scrape_all()
        gone = scraper.health(A)
        assert gone is not None and gone.error is not None and "viewer token" in gone.error


async def test_board_figures_from_the_projector(store_url: str) -> None:
    clock = Clock()
    store = await Store.open(store_url, clock, projectors=[project])
    try:
        a, batches = line_a()
        await deliver(store, a, batches)
        await deliver(store, a, batches)  # delivered again: duplicates, counted once
        await store.set_status(
            A, {"gateway_id": A, "state": "online", "ts": utc(11, 0).isoformat(), "version": "1"}
        )
        async with fake_gateway() as gw:
            scraper = MetricsScraper(
                [
                    ScrapeTarget(A, f"{gw}/metrics", lambda: GATEWAY_VIEWER),
                    ScrapeTarget(B, f"http://127.0.0.1:{_closed_port()}/metrics", lambda: "x"),
                ],
                clock,
            )
            await scraper.scrape_all()
            clock.at = NOW + timedelta(seconds=15)
            await scraper.scrape_all()  # B still failing: since the first failure
        clock.at = NOW
        board = Board(store, [A, B], scraper, SHANGHAI, clock)
        doc = board.document(*await board.lines())
    finally:
        await store.close()
    assert doc["timezone"] == "Asia/Shanghai" and doc["today"] == "2026-11-11"
    first, second = doc["lines"]
    check_line_a(first)
    assert first["state"] == "online"
    assert first["link"]["held_through"] == 31 and first["link"]["gaps"] == []
    m = first["metrics"]
    assert m["available"] is True
    assert (m["outbox_events"], m["outbox_oldest_age_s"], m["plan_age_s"]) == (17.0, 42.5, 95.0)
    assert m["devices_not_ready"] == 1
    assert m["scraped_at"] == (NOW + timedelta(seconds=15)).isoformat()
    # B: configured, never heard from, its gateway not answering.
    assert second["gateway_id"] == B and second["state"] == "unknown"
    assert second["throughput_last_hour"] == {"units": 0, "orders": 0}
    assert second["otd_today"]["ratio"] is None and second["wip"] == 0
    assert second["metrics"]["available"] is False
    assert second["metrics"]["unavailable_since"] == NOW.isoformat()


async def test_migration_7_fills_the_views_from_stored_events(store_url: str) -> None:
    clock = Clock()
    store = await Store.open(store_url, clock)  # no projector: the views stay empty
    try:
        a, batches = line_a()
        await deliver(store, a, batches)
        async with store.transaction() as conn:  # as before migration 7
            for table in ("board_alarms", "board_minutes", "board_orders", "board_kpis",
                          "board_reports"):  # fmt: skip
                await conn.execute(text(f"DROP TABLE {table}"))
            await conn.execute(text("DELETE FROM schema_migrations WHERE version = 7"))
    finally:
        await store.close()
    store = await Store.open(store_url, clock, projectors=[project])  # the upgrade
    try:
        board = Board(store, [A], MetricsScraper([], clock), SHANGHAI, clock)
        doc = board.document(*await board.lines())
    finally:
        await store.close()
    check_line_a(doc["lines"][0])


async def test_board_json_behind_the_gate(store_url: str) -> None:
    clock = Clock()
    store = await Store.open(store_url, clock, projectors=[project])
    try:
        a, batches = line_a()
        await deliver(store, a, batches)
        gate = Gate(
            store,
            {LEAD: Principal("zhang", Role.LEAD), SHOP: Principal("tmall", Role.SHOP)},
            clock,
        )
        board = Board(store, [A], MetricsScraper([], clock), SHANGHAI, clock)
        app = http_app(store, {}, 64 * 1024, board_routes(board, gate, Pages(Catalog())))
        async with serve_http(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as c:
            anonymous = await c.get("/v1/board")
            assert anonymous.status_code == 401
            page = await c.get("/board", headers={"Accept": "text/html"})
            assert page.status_code == 303
            assert page.headers["location"] == "/login?next=%2Fboard"
            shop = await c.get("/v1/board", headers={"Authorization": f"Bearer {SHOP}"})
            assert shop.status_code == 403
            ok = await c.get("/v1/board", headers={"Authorization": f"Bearer {LEAD}"})
            assert ok.status_code == 200
            check_line_a(ok.json()["lines"][0])
            assert ok.json()["lines"][0]["metrics"] is None  # no metrics_url for it
    finally:
        await store.close()


def test_site_and_metrics_settings(tmp_path: Path) -> None:
    (tmp_path / "line.token").write_text("line-token\n")
    (tmp_path / "viewer.token").write_text("gateway-viewer\n")
    good = tmp_path / "office.toml"
    good.write_text(
        '[site]\ntimezone = "Europe/Berlin"\n\n[[lines]]\ngateway_id = "hz01/line1"\n'
        'token_file = "line.token"\nmetrics_url = "http://10.0.0.5:8080/metrics"\n'
        'metrics_token_file = "viewer.token"\n'
    )
    config = load_config(good)
    assert config.site.timezone == "Europe/Berlin"
    assert config.metrics_tokens() == {"hz01/line1": "gateway-viewer"}
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[site]\ntimezone = "Mars/Olympus"\n\n[[lines]]\ngateway_id = "hz01/line1"\n'
        'token_file = "line.token"\nmetrics_url = "http://10.0.0.5:8080/metrics"\n'
    )
    with pytest.raises(ConfigError) as problem:
        load_config(bad)
    assert "site.timezone" in str(problem.value)
    assert "metrics_url and metrics_token_file go together" in str(problem.value)
    default = tmp_path / "default.toml"
    default.write_text("")
    assert load_config(default).site.timezone == "Asia/Shanghai"
