""" "Can we take this promotion?" (issue 14): the capacity check on the reference line.

Real parts throughout: the line's store on a real SQLite file, master data and orders
through intake, the check in its planning worker process (and as ``linegate capacity``, a
process of its own), the gateway serving its API on a loopback port. The line's clock is
a manual one at a Thursday morning: never today's date.

The scenario is one a line lead can check by hand. A promotion of 400 embroidered caps
(one each, all gold thread), every one promised for the SF truck at 10:00 on Friday. Only
emb-1 embroiders: 150 s a cap, and a 120 s setup before the first (the machine's thread is
not known). Between Thursday 10:00 and Friday 10:00 emb-1 works (shifts 08:00-16:00 and
16:00-24:00, breaks 12:00-12:30 and 20:00-20:30; a cap is never split across a break or
the change of shift):

    Thu 10:00-12:00   7,200 s less the setup  ->  47 caps
    Thu 12:30-16:00  12,600 s                 ->  84
    Thu 16:00-20:00  14,400 s                 ->  96
    Thu 20:30-24:00  12,600 s                 ->  84
    Fri 08:00-10:00   7,200 s, and the last
                      one packed (20 s) by 10:00 -> 47
                                                 358 caps in time, 42 late

Working the late shift of Thursday on past midnight by X seconds adds X // 150 caps to its
last window: 90 minutes give 36 (394, still 6 late), 2 hours give 48 (406): so the
overtime, in half-hour steps, is 2 h on emb-1's late shift of Thursday, 00:00-02:00.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.calendar import Shift
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.i18n import Lang
from gateway.planning.capacity import (
    CapacityAnswer,
    CapacityJob,
    NoAnswer,
    SearchEnd,
    check_capacity,
)
from gateway.planning.line_plan import LineJob
from gateway.planning.line_solve import solve_line
from gateway.planning.worker import PlanWorker
from gateway.store.rows import Role
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc
from tests.gateway.test_station_api import served_line
from tests.gateway.test_station_api_hostile import post_head, read_answer, refusal_of

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = LINE_MORNING  # Thursday 2026-11-26 10:00 in Shanghai
FRIDAY_TRUCK = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
CAPS = 400
IN_TIME = 47 + 84 + 96 + 84 + 47  # the table in the module docstring
LATE = CAPS - IN_TIME


def _config(*extra: Shift) -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    # No devices: nothing is down, and no machine is asked (the devices have their tests).
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    return config.model_copy(update={"stations": stations, "shifts": [*config.shifts, *extra]})


def _cap(order_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": FRIDAY_TRUCK.isoformat(),
        "carrier": "SF",
        "lines": [{"sku": "CAP-EMB-NAVY", "qty": 1, "personalization": {"thread_color": "gold"}}],
        **extra,
    }


PROMOTION = [_cap(f"PROMO-{n:03d}") for n in range(1, CAPS + 1)]


def _line(path: Path, config: LineConfig, orders: Sequence[dict[str, Any]] = ()) -> Gateway:
    """A line's store with the reference master data and ``orders`` taken by intake."""
    gw = Gateway(config, data_dir=path, clock=ManualClock(NOW))
    gw.open()
    messages = [
        InboundMessage("in/masterdata/catalog", catalog_bytes()),
        InboundMessage("in/masterdata/stock", json.dumps(stock_doc()).encode()),
    ]
    if orders:
        messages.append(InboundMessage("in/orders", json.dumps(list(orders)).encode()))
    gw.inbound.deliver(messages)
    gw.store.flush()
    return gw


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Gateway]:
    gw = _line(tmp_path / "line", _config())
    yield gw
    gw.store.close()


def _check(gw: Gateway, forecast: bytes) -> CapacityAnswer | NoAnswer:
    job = CapacityJob(gw.config, gw.store.path, NOW, forecast)
    return asyncio.run(check_capacity(PlanWorker(), job))


def _answer(gw: Gateway, forecast: object) -> CapacityAnswer:
    found = _check(gw, json.dumps(forecast).encode())
    assert isinstance(found, CapacityAnswer), found
    return found


def _orders_in(gw: Gateway) -> int:
    return gw.store.count("SELECT count(*) FROM orders")


# -- the promotion of caps ---------------------------------------------------------------


def test_a_promotion_of_caps_overloads_emb_1_and_two_hours_of_overtime_bring_it_in(
    line: Gateway, tmp_path: Path
) -> None:
    answer = _answer(line, PROMOTION)

    plan = answer.plan
    assert answer.forecast_orders == CAPS and answer.forecast_units == CAPS
    assert answer.refused == [] and answer.backlog_orders == 0
    assert plan.orders == CAPS
    assert plan.bottleneck == "emb-1"
    top = plan.stations[0]
    assert top.station == "emb-1" and top.utilization > 0.95
    assert all(s.utilization < 0.5 for s in plan.stations[1:])  # pack: 20 s a cap, two stations
    # 42 caps miss the truck, every one of them a forecast order of the Friday 10:00 cut-off.
    assert len(plan.late) == LATE
    assert {(r.ship_by, r.carrier, r.forecast) for r in plan.late} == {
        (FRIDAY_TRUCK.isoformat(), "SF", True)
    }
    assert all(r.late_s > 0 and r.reasons for r in plan.late)
    assert [(c.carrier, c.ship_by, c.orders, c.in_time) for c in plan.cutoffs] == [
        ("SF", FRIDAY_TRUCK.isoformat(), CAPS, IN_TIME)
    ]
    # The caps' last one is embroidered on Friday; the line finishes after the truck left.
    assert plan.finish is not None and datetime.fromisoformat(plan.finish) > FRIDAY_TRUCK
    # Materials: 400 navy blanks of 800, 4,800 g of thread of 5,000, 400 polybags of 800.
    assert answer.materials == []

    # The overtime: emb-1's late shift of Thursday, 2 h on past midnight.
    assert answer.search is SearchEnd.ON_TIME
    assert [(o.station, o.shift, o.day.isoformat(), o.minutes) for o in answer.overtime] == [
        ("emb-1", "late", "2026-11-26", 120)
    ]
    ot = answer.overtime[0]
    assert (ot.start, ot.end) == ("2026-11-27T00:00:00+08:00", "2026-11-27T02:00:00+08:00")
    assert answer.with_overtime is not None and answer.with_overtime.late == []

    # The forecast was only asked about: nothing of it is on the line.
    assert _orders_in(line) == 0


def test_the_proposed_overtime_planned_by_the_line_itself_brings_every_cap_in(
    tmp_path: Path,
) -> None:
    """The check's proposal against the line's own planner (not the check's search): the
    promotion taken by intake as real orders, planned by solve_line on a calendar with the
    overtime as a shift of its own; and with half an hour less, still late."""

    def late_with(name: str, *extra: Shift) -> int:
        config = _config(*extra)
        gw = _line(tmp_path / name, config, PROMOTION)
        try:
            assert _orders_in(gw) == CAPS
            plan = solve_line(LineJob(config, gw.store.path, NOW), time_limit_s=3, workers=1)
        finally:
            gw.store.close()
        assert len(plan.completion) == CAPS
        return len(plan.late)

    def overtime(end: str) -> Shift:
        return Shift(name="overtime", start="00:00", end=end, days=["fri"], stations=["emb-1"])

    assert late_with("as-is") == LATE  # the check's own count, by the line's planner
    assert late_with("two-hours", overtime("02:00")) == 0
    assert late_with("ninety-minutes", overtime("01:30")) > 0


# -- the forecast's orders, checked as intake checks them ---------------------------------


def test_a_malformed_forecast_order_is_reported_with_its_reason_and_the_rest_answered(
    line: Gateway,
) -> None:
    line.inbound.deliver([InboundMessage("in/orders", json.dumps([_cap("ON-LINE-1")]).encode())])
    line.store.flush()
    red = {
        "order_id": "RED-10",
        "ship_by": FRIDAY_TRUCK.isoformat(),
        "lines": [{"sku": "CAP-EMB-RED", "qty": 10, "personalization": {"thread_color": "gold"}}],
    }
    forecast = [
        red,
        _cap("ZERO", lines=[{"sku": "CAP-EMB-NAVY", "qty": 0}]),
        _cap("NOSUCH", lines=[{"sku": "CAP-EMB-GREEN", "qty": 1}]),
        {"order_id": "NO-SHIP-BY", "lines": [{"sku": "CAP-EMB-NAVY", "qty": 1}]},
        _cap("RED-10"),  # the forecast's own order id again
        _cap("ON-LINE-1"),  # an order the line already has
        "not an order",
    ]
    answer = _answer(line, forecast)

    refused = {(r.index, r.order_id): [(e.code, e.field) for e in r.errors] for r in answer.refused}
    assert refused == {
        (1, "ZERO"): [("QTY_OUT_OF_RANGE", "lines.0.qty")],
        (2, "NOSUCH"): [("UNKNOWN_SKU", "lines.0.sku")],
        (3, "NO-SHIP-BY"): [("SCHEMA", "ship_by")],
        (4, "RED-10"): [("DUPLICATE", "order_id")],
        (5, "ON-LINE-1"): [("DUPLICATE", "order_id")],
        (6, None): [("SCHEMA", "")],
    }
    assert all(e.message for r in answer.refused for e in r.errors)
    assert answer.forecast_orders == 7 and answer.forecast_units == 10
    assert answer.backlog_orders == 1  # ON-LINE-1, planned with the forecast
    assert answer.plan.orders == 2 and answer.plan.late == []
    # Red blanks: 6 in the reference stock, 1 reserved by nothing; the 10 red caps need 10.
    assert [(m.material, m.need, m.available, m.short, m.orders) for m in answer.materials] == [
        ("BLANK-CAP-RED", 10.0, 6.0, 4.0, 1)
    ]
    assert answer.search is SearchEnd.NOT_NEEDED and answer.overtime == []
    assert _orders_in(line) == 1  # the forecast's order RED-10 is not on the line


def test_a_forecast_that_is_no_forecast_gets_no_answer_but_why(line: Gateway) -> None:
    for payload, words in (
        (b'[{"order_id": "A", ', "not JSON"),
        (b'"caps"', "JSON array of orders"),
        (b"[]", "no order"),
    ):
        found = _check(line, payload)
        assert isinstance(found, NoAnswer) and found.forecast, payload
        assert words in str(found.why)
        assert "预测" in found.why.render(Lang.ZH)


# -- the command line ---------------------------------------------------------------------


def _linegate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stored(db: Path) -> dict[str, str]:
    """The database and its write-ahead log, by SHA-256: what a reader must not change.
    (Not the -shm index: every reader marks its place there.)"""
    files = (db, db.with_name(db.name + "-wal"))
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.exists()}


def test_linegate_capacity_answers_from_a_real_database_and_changes_nothing(
    line: Gateway, tmp_path: Path
) -> None:
    # Beside the gateway: its store stays open, in WAL mode, while the command reads it.
    db = line.store.path
    forecast = tmp_path / "promotion.json"
    forecast.write_text(json.dumps(PROMOTION))
    before = _stored(db)
    assert before  # the database, and the gateway's log
    common = ["--config", str(REFERENCE_LINE), "--db", str(db), "--now", NOW.isoformat()]

    ran = _linegate("capacity", "--orders", str(forecast), *common, "--json")
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["plan"]["bottleneck"] == "emb-1"
    assert len(doc["plan"]["late"]) == LATE
    assert [(o["station"], o["shift"], o["day"], o["minutes"]) for o in doc["overtime"]] == [
        ("emb-1", "late", "2026-11-26", 120)
    ]
    assert doc["with_overtime"]["late"] == []

    table = _linegate("capacity", "--orders", str(forecast), *common, "--lang", "zh-CN")
    assert table.returncode == 0, table.stderr
    assert "瓶颈：emb-1" in table.stdout
    assert "emb-1：" in table.stdout and "2 小时" in table.stdout
    english = _linegate("capacity", "--orders", str(forecast), *common, "--lang", "en")
    assert "Bottleneck: emb-1" in english.stdout
    assert "emb-1: the late shift of Thu 11-26, 2 h longer (Fri 11-27 00:00 to" in english.stdout

    assert _stored(db) == before  # read-only: not a byte of the store changed

    bad = tmp_path / "bad.json"
    bad.write_text('[{"order_id": "A", ')
    ran = _linegate("capacity", "--orders", str(bad), *common, "--lang", "en")
    assert ran.returncode == 65 and "bad.json: The forecast is not JSON" in ran.stderr
    ran = _linegate("capacity", "--orders", str(bad), *common)  # the line's language
    assert ran.returncode == 65 and "预测文件不是 JSON" in ran.stderr
    ran = _linegate("capacity", "--orders", str(tmp_path / "missing.json"), *common)
    assert ran.returncode == 66 and "missing.json" in ran.stderr
    partly = tmp_path / "partly.json"
    partly.write_text(json.dumps([_cap("OK-1"), _cap("BAD", lines=[])]))
    ran = _linegate("capacity", "--orders", str(partly), *common, "--lang", "en")
    assert ran.returncode == 1, ran.stderr
    assert "1 of the forecast's 2 orders were refused" in ran.stderr
    assert "#1 BAD  SCHEMA  lines" in ran.stdout
    assert _stored(db) == before and _orders_in(line) == 0


# -- the API -------------------------------------------------------------------------------


async def test_the_api_answers_a_line_lead_and_refuses_a_viewer_and_an_operator(
    tmp_path: Path,
) -> None:
    async with served_line(tmp_path) as (ln, gw):
        forecast = json.dumps([_cap("API-1"), _cap("API-2", lines=[])]).encode()
        headers = {"Content-Type": "application/json"}

        def bearer(credential: str) -> dict[str, str]:
            return headers | {"Authorization": f"Bearer {credential}"}

        for who in (ln.keys.token(Role.VIEWER.value), ln.keys.terminal("emb-1")):
            refused = await ln.api.post("/api/capacity", content=forecast, headers=bearer(who))
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "FORBIDDEN_ROLE"

        lead = bearer(ln.keys.token(Role.LINE_LEAD.value))
        r = await ln.api.post("/api/capacity?lang=en", content=forecast, headers=lead, timeout=60)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["forecast_orders"] == 2 and doc["plan"]["orders"] == 1
        assert [x["order_id"] for x in doc["refused"]] == ["API-2"]
        assert doc["summary"][0].startswith("Forecast: 1 of 2 orders taken")
        assert gw.store.count("SELECT count(*) FROM orders") == 0

        bad = await ln.api.post("/api/capacity", content=b"[{", headers=lead, timeout=60)
        assert bad.status_code == 422
        assert bad.json()["code"] == "BAD_FORECAST" and bad.json()["message_zh"]

        # A forecast of thousands of orders is more than an action's 16 KiB: this route
        # takes up to 4 MiB, and no more.
        big = json.dumps([_cap(f"BIG-{n:04d}") for n in range(200)]).encode()
        assert len(big) > 16 * 1024
        r = await ln.api.post("/api/capacity", content=big, headers=lead, timeout=60)
        assert r.status_code == 200, r.text
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.http_port)
        auth = f"Authorization: Bearer {ln.keys.token(Role.LINE_LEAD.value)}"
        writer.write(post_head("/api/capacity", f"Content-Length: {4 * 2**20 + 1}", auth))
        async with asyncio.timeout(5):
            status, _headers, body = await read_answer(reader)  # refused before the body
        writer.close()
        refusal_of(status, body, 413, "BODY_TOO_LARGE")
