"""Customer service's order lookup, and the board's order flow and cut-offs, on a real line.

One scenario (its orders at every stage, worked through the stations' service on a real
SQLite file, the clock by hand) and what each function must say of it, by the task's
definitions: an order is found by its id, a unit's serial, the customer's reference, a
prefix of its destination's name or channel; a finished order tells its steps with stations
and times, its lots, its parcel; an unknown one is refused over HTTP (a real server on a
loopback port behind the gateway's own gate) with the API's refusal, in both languages.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gateway.app.root import Gateway
from gateway.clock import iso
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.orderbook.flow import Cutoff, cutoffs, flow
from gateway.orderbook.lookup import (
    Destination,
    Failure,
    LotUsed,
    MatchKind,
    PackedWith,
    find_orders,
    order_detail,
)
from gateway.orderbook.progress import Stage
from gateway.planner.problem import Plan
from gateway.planning.line_plan import LinePlan, compact
from gateway.planning.planner import LinePlanner
from gateway.store.rows import TaskStatus, UnitStatus
from gateway.web.station_api import create_app
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, stock_doc
from tests.keys import issue_keys

# Two cut-offs: SF's truck at 18:00 and YTO's at 20:00, line time (Asia/Shanghai).
SF_CUTOFF = LINE_MORNING + timedelta(hours=8)
YTO_CUTOFF = LINE_MORNING + timedelta(hours=10)
INK_LOT = "INK-DTG-CMYK-L2611A"  # the reference stock's only lot of DTG ink


def _config() -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    return config.model_copy(update={"stations": stations})


def tee(order_id: str, carrier: str, ship_by: datetime, priority: int, **extra: Any) -> Any:
    return {
        "order_id": order_id,
        "ship_by": ship_by.isoformat(),
        "priority": priority,
        "carrier": carrier,
        "lines": [{"sku": "TEE-WHT-M", "qty": 1, "personalization": {"text": order_id}}],
        **extra,
    }


@dataclass
class Shop:
    """The line after the scenario, and what the test needs to know of it."""

    line: Line
    clock: ManualClock
    serial: dict[str, str]  # order → its unit's serial
    label_id: str
    weight_g: float
    times: dict[str, str]  # what happened when, as the store has it

    @property
    def gw(self) -> Gateway:
        return self.line.gateway

    @property
    def planner(self) -> LinePlanner:
        assert self.gw.planner is not None
        return self.gw.planner

    def at(self, minutes: float) -> str:
        self.clock.at = LINE_MORNING + timedelta(minutes=minutes)
        return iso(self.clock.at)


def _work_at_dtg(shop: Shop, order_id: str, minute: int, finish: bool = True) -> None:
    """At dtg-1 from ``minute``: take the next task (it must be ``order_id``'s), scan,
    start, and unless told not to, finish a minute later."""
    svc = shop.line.svc
    shop.times[f"{order_id} print started"] = shop.at(minute)
    svc.next_task("dtg-1")
    task = svc.view("dtg-1")["task"]
    assert task["order_id"] == order_id, task
    shop.serial[order_id] = task["serial"]
    svc.scan("dtg-1", task["serial"])
    for m in task["materials"]:
        svc.scan("dtg-1", m["suggested_lot"] or m["material"])
    assert svc.start("dtg-1").ok
    if finish:
        for i, _ in enumerate(task["checklist"]):
            svc.checklist("dtg-1", i, True)
        shop.times[f"{order_id} print ended"] = shop.at(minute + 1)
        assert svc.complete("dtg-1").ok


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    clock = ManualClock(LINE_MORNING)
    gw = Gateway(_config(), data_dir=tmp_path, clock=clock)
    gw.open()
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    shop = Shop(ln, clock, {}, "", 0.0, {})
    svc = ln.svc
    ln.send(
        "in/orders",
        [
            tee(
                "SO-1",
                "SF",
                SF_CUTOFF,
                9,
                channel="Tmall",
                customer_ref="CR-7781",
                destination={"name": "Zhang Wei", "city": "Hangzhou"},
            ),
            tee("SO-2", "SF", SF_CUTOFF, 7, channel="JD", destination={"name": "Zhao Li"}),
            tee("SO-3", "YTO", YTO_CUTOFF, 5),
            {  # 8 red caps, 6 in stock: waits for material
                "order_id": "SO-4",
                "ship_by": YTO_CUTOFF.isoformat(),
                "carrier": "YTO",
                "lines": [{"sku": "CAP-EMB-RED", "qty": 8}],
            },
            tee("SO-5", "SF", SF_CUTOFF, 5),
            tee("SO-6", "SF", SF_CUTOFF, 8),
        ],
    )
    shop.at(1)
    ln.send("in/cancel", {"order_id": "SO-5", "reason": "customer cancelled"})

    # SO-1 printed at dtg-1: a smudge first (redone), then right.
    svc.login("dtg-1", "OP-1001")
    _work_at_dtg(shop, "SO-1", 2, finish=False)
    shop.times["print failed"] = shop.at(3)
    assert svc.fail("dtg-1", "smudged print", "rework").ok
    shop.at(4)
    task = svc.view("dtg-1")["task"]
    for m in task["materials"]:
        svc.scan("dtg-1", m["suggested_lot"] or m["material"])
    shop.times["print started"] = iso(clock.at)
    assert svc.start("dtg-1").ok
    for i, _ in enumerate(task["checklist"]):
        svc.checklist("dtg-1", i, True)
    shop.times["print ended"] = shop.at(5)
    assert svc.complete("dtg-1").ok
    # SO-6 printed; SO-2's print started and left running.
    _work_at_dtg(shop, "SO-6", 6)
    _work_at_dtg(shop, "SO-2", 8, finish=False)

    # SO-1 packed at pack-1; then SO-6's packing begun there.
    shop.times["pack started"] = shop.at(10)
    svc.login("pack-1", "OP-1008")
    svc.next_task("pack-1")
    parcel = svc.view("pack-1")["task"]
    assert parcel["order_id"] == "SO-1"
    svc.scan("pack-1", shop.serial["SO-1"])
    for m in parcel["materials"]:
        svc.scan("pack-1", m["suggested_lot"] or m["material"])
    shop.weight_g = float(parcel["expected_weight_g"])
    reply = svc.weight("pack-1", shop.weight_g)
    assert reply.ok, reply.message
    shop.label_id = str(reply.data["label_id"])
    shop.times["completed"] = shop.at(12)
    svc.scan("pack-1", shop.label_id)
    shop.times["SO-6 packing"] = shop.at(15)
    svc.next_task("pack-1")
    assert svc.view("pack-1")["task"]["order_id"] == "SO-6"
    svc.scan("pack-1", shop.serial["SO-6"])
    shop.at(20)
    yield shop
    gw.store.close()


# -- finding --------------------------------------------------------------------------------


def _found(shop: Shop, query: str, limit: int = 20) -> list[tuple[str, MatchKind]]:
    return [(m.order_id, m.matched_by) for m in find_orders(shop.gw.core, query, limit)]


def test_an_order_is_found_by_id_serial_reference_destination_or_channel(shop: Shop) -> None:
    assert _found(shop, "SO-2") == [("SO-2", MatchKind.ORDER_ID)]
    serial = shop.serial["SO-6"]
    assert _found(shop, serial) == [("SO-6", MatchKind.SERIAL)]
    assert _found(shop, f"  {serial.lower()} ") == [("SO-6", MatchKind.SERIAL)]
    # The shop's customer_ref (an extra field of the order), by a prefix, in any case.
    assert _found(shop, "cr-77") == [("SO-1", MatchKind.CUSTOMER_REF)]
    assert _found(shop, "CR-7781") == [("SO-1", MatchKind.CUSTOMER_REF)]
    # Without one: the destination's name, then the channel.
    assert _found(shop, "zhao") == [("SO-2", MatchKind.DESTINATION)]
    assert _found(shop, "ZHANG W") == [("SO-1", MatchKind.DESTINATION)]
    assert _found(shop, "tm") == [("SO-1", MatchKind.CHANNEL)]
    assert _found(shop, "jd") == [("SO-2", MatchKind.CHANNEL)]
    # "Zh" names both destinations; the limit is kept.
    assert sorted(_found(shop, "zh")) == [
        ("SO-1", MatchKind.DESTINATION),
        ("SO-2", MatchKind.DESTINATION),
    ]
    assert len(_found(shop, "zh", limit=1)) == 1
    assert _found(shop, "nobody") == _found(shop, "   ") == []
    [match] = find_orders(shop.gw.core, "cr-7781", 5)
    assert (match.stage, match.carrier, match.channel, match.destination_name) == (
        Stage.COMPLETED,
        "SF",
        "Tmall",
        "Zhang Wei",
    )
    assert (match.customer_ref, match.ship_by) == ("CR-7781", iso(SF_CUTOFF))


def test_a_prefix_search_reads_its_index_not_every_order(shop: Shop) -> None:
    # The lookup's own query text, asked of SQLite's planner.
    plan = shop.gw.store.all(
        "EXPLAIN QUERY PLAN SELECT order_id FROM orders "
        "WHERE lower(json_extract(doc, '$.destination.name')) >= ? "
        "AND lower(json_extract(doc, '$.destination.name')) < ? "
        "ORDER BY lower(json_extract(doc, '$.destination.name')) DESC LIMIT ?",
        ("zh", "zi", 20),
    )
    assert any("USING INDEX orders_destination" in str(r["detail"]) for r in plan), [
        r["detail"] for r in plan
    ]


# -- one order ------------------------------------------------------------------------------


def test_a_finished_orders_detail(shop: Shop) -> None:
    detail = order_detail(shop.gw.core, shop.planner, "SO-1")
    assert detail is not None
    t = shop.times
    assert (detail.stage, detail.revision, detail.priority, detail.carrier) == (
        Stage.COMPLETED,
        1,
        9,
        "SF",
    )
    assert detail.ship_by == iso(SF_CUTOFF)
    assert detail.destination == Destination(name="Zhang Wei", city="Hangzhou")
    assert (detail.channel, detail.customer_ref) == ("Tmall", "CR-7781")
    assert (detail.units_total, detail.units_done) == (1, 1)
    [unit] = detail.units
    assert (unit.serial, unit.sku, unit.status, unit.line_no) == (
        shop.serial["SO-1"],
        "TEE-WHT-M",
        UnitStatus.DONE,
        1,
    )
    assert unit.personalization == {"text": "SO-1"}
    [step] = unit.steps
    assert (step.op, step.station, step.operator, step.status) == (
        "print",
        "dtg-1",
        "OP-1001",
        TaskStatus.DONE,
    )
    # The attempt that counted, and the one that failed with its reason.
    assert (step.started_at, step.ended_at, step.attempt) == (
        t["print started"],
        t["print ended"],
        2,
    )
    assert step.failures == [
        Failure(
            attempt=1,
            at=t["print failed"],
            station="dtg-1",
            operator="OP-1001",
            reason="smudged print",
        )
    ]
    # Each attempt consumed its blank and its ink (from the ink's one lot).
    used = sorted((lot.material, lot.lot, lot.qty) for lot in unit.lots)
    assert used == [
        ("BLANK-TEE-WHT-M", None, 1.0),
        ("BLANK-TEE-WHT-M", None, 1.0),
        ("INK-DTG-CMYK", INK_LOT, 6.0),
        ("INK-DTG-CMYK", INK_LOT, 6.0),
    ]
    assert {lot.at for lot in unit.lots} == {t["print failed"], t["print ended"]}
    assert all(isinstance(lot, LotUsed) for lot in unit.lots)
    packing = detail.packing
    assert packing is not None
    assert (packing.op, packing.station, packing.operator, packing.status) == (
        "pack",
        "pack-1",
        "OP-1008",
        TaskStatus.DONE,
    )
    assert (packing.started_at, packing.ended_at) == (t["pack started"], t["completed"])
    parcel = detail.parcel
    assert parcel is not None
    assert (parcel.weight_g, parcel.label_id, parcel.tracking) == (
        shop.weight_g,
        shop.label_id,
        None,
    )
    # TEE-WHT-M's BOM packs it in a POLYBAG, which the catalog calls a container.
    assert parcel.containers == [PackedWith(material="POLYBAG", qty=1.0)]
    assert parcel.packed_at == detail.completed_at == t["completed"]
    # A completed order's prediction is its completion: in time.
    assert (detail.predicted_completion, detail.at_risk, detail.reasons) == (
        t["completed"],
        False,
        [],
    )
    assert [(h.stage, h.at) for h in detail.history] == [
        (Stage.QUEUED, iso(LINE_MORNING)),
        (Stage.IN_PROCESS, t["SO-1 print started"]),  # the first attempt began it
        (Stage.PACKING, t["pack started"]),
        (Stage.COMPLETED, t["completed"]),
    ]
    json_ready = detail.model_dump(mode="json")
    assert json_ready["stage"] == "completed" and json_ready["units"][0]["lots"]


def test_an_open_orders_detail_has_the_plans_forecast(shop: Shop) -> None:
    core = shop.gw.core
    assert order_detail(core, shop.planner, "NO-SUCH-ORDER") is None
    detail = order_detail(core, None, "SO-2")
    assert detail is not None
    assert (detail.stage, detail.parcel, detail.predicted_completion) == (
        Stage.IN_PROCESS,
        None,
        None,
    )
    [step] = detail.units[0].steps
    assert (step.status, step.ended_at) == (TaskStatus.RUNNING, None)
    shop.planner.replanner.offer(_plan({"SO-2": 7 * 3600 + 3000}))  # 17:50, before 18:00
    detail = order_detail(core, shop.planner, "SO-2")
    assert detail is not None
    assert detail.predicted_completion == iso(SF_CUTOFF - timedelta(minutes=10))
    assert (detail.at_risk, detail.reasons) == (False, [])
    waiting = order_detail(core, shop.planner, "SO-4")
    assert waiting is not None and waiting.stage is Stage.WAITING_MATERIAL
    assert waiting.waiting_for == ["BLANK-CAP-RED"]
    cancelled = order_detail(core, shop.planner, "SO-5")
    assert cancelled is not None
    assert (cancelled.stage, cancelled.cancel_reason) == (Stage.CANCELLED, "customer cancelled")
    assert [u.status for u in cancelled.units] == [UnitStatus.CANCELLED]


# -- the board ------------------------------------------------------------------------------


def _plan(completion: dict[str, int]) -> LinePlan:
    """A plan made at 10:00 (the scenario's start) predicting each order's completion."""
    return compact(
        Plan({}, completion),
        LINE_MORNING,
        waiting={"SO-4": ("BLANK-CAP-RED",)},
        down=frozenset(),
        reasons=("test",),
        solve_s=0.0,
    )


def test_the_flow_counts_orders_per_stage_and_today_in_the_lines_day(shop: Shop) -> None:
    core = shop.gw.core
    # One order at each stage; SO-1 completed and SO-5 cancelled this morning.
    assert flow(core, shop.clock.at) == {
        Stage.WAITING_MATERIAL: 1,
        Stage.QUEUED: 1,
        Stage.IN_PROCESS: 1,
        Stage.PACKING: 1,
        Stage.COMPLETED: 1,
        Stage.CANCELLED: 1,
    }
    # 23:59 in Shanghai is still today; midnight there (16:00 UTC, the same UTC day) is not.
    late = flow(core, LINE_MORNING + timedelta(hours=13, minutes=59))
    assert (late[Stage.COMPLETED], late[Stage.CANCELLED]) == (1, 1)
    tomorrow = flow(core, LINE_MORNING + timedelta(hours=14))
    assert (tomorrow[Stage.COMPLETED], tomorrow[Stage.CANCELLED]) == (0, 0)
    assert tomorrow[Stage.QUEUED] == tomorrow[Stage.PACKING] == 1


def test_cutoffs_per_carrier_with_what_is_left_and_in_time(shop: Shop) -> None:
    core, now = shop.gw.core, shop.clock.at
    # SF 18:00: SO-1 (completed), SO-2, SO-6 (SO-5 cancelled, not counted); YTO 20:00: SO-3
    # and SO-4. No plan yet: nobody can say what comes in time.
    assert cutoffs(core, shop.planner, now) == [
        Cutoff(carrier="SF", ship_by=iso(SF_CUTOFF), orders=3, left=2, in_time=None),
        Cutoff(carrier="YTO", ship_by=iso(YTO_CUTOFF), orders=2, left=2, in_time=None),
    ]
    # The plan: SO-2 at 17:00 (in time), SO-6 at 18:10 (late), SO-3 at 18:00 (in time);
    # SO-4 waits for material (not planned, so not in time).
    shop.planner.replanner.offer(
        _plan({"SO-2": 7 * 3600, "SO-6": 8 * 3600 + 600, "SO-3": 8 * 3600})
    )
    assert cutoffs(core, shop.planner, now) == [
        Cutoff(carrier="SF", ship_by=iso(SF_CUTOFF), orders=3, left=2, in_time=2),
        Cutoff(carrier="YTO", ship_by=iso(YTO_CUTOFF), orders=2, left=2, in_time=1),
    ]
    # Without a planner, the counts stand and in_time is None.
    assert [c.in_time for c in cutoffs(core, None, now)] == [None, None]
    # Tomorrow SO-1 is yesterday's: it leaves SF's count.
    tomorrow = cutoffs(core, None, LINE_MORNING + timedelta(days=1))
    assert [(c.carrier, c.orders, c.left) for c in tomorrow] == [("SF", 2, 2), ("YTO", 2, 2)]


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def served(shop: Shop) -> AsyncIterator[tuple[Shop, httpx.AsyncClient, str]]:
    """The station API of the scenario's gateway (create_app registers the lookup's routes
    with add_order_routes), on a free loopback port, behind its gate; a client with a
    token per role."""
    gw = shop.gw
    app = create_app(
        gw.stations, gw.health, gw.floor, gw.planner, gate=gw.gate, sign_ins=gw.sign_ins
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
                await asyncio.sleep(0.01)
        keys = issue_keys(gw.store, gw.config, shop.clock.at)
        async with httpx.AsyncClient(base_url=base, timeout=10, auth=keys) as api:
            yield shop, api, base
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_the_lookup_over_http(served: tuple[Shop, httpx.AsyncClient, str]) -> None:
    shop, api, base = served
    r = await api.get("/api/orders", params={"q": "cr-77"})
    assert r.status_code == 200, r.text
    [match] = r.json()
    assert (match["order_id"], match["matched_by"], match["stage"]) == (
        "SO-1",
        "customer_ref",
        "completed",
    )
    r = await api.get("/api/orders/SO-1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stage"], body["parcel"]["label_id"]) == ("completed", shop.label_id)
    assert body["units"][0]["steps"][0]["station"] == "dtg-1"

    r = await api.get("/api/orders/SO-404")
    assert r.status_code == 404, r.text
    refused = r.json()
    assert (refused["ok"], refused["code"]) == (False, "UNKNOWN_ORDER")
    assert "SO-404" in refused["message"] and refused["next"]
    assert re.search(r"[\u4e00-\u9fff]", refused["message_zh"]) and refused["next_zh"]

    # A bad query is refused in the API's shape; nobody signed in gets nothing.
    r = await api.get("/api/orders", params={"q": "x", "limit": 0})
    assert r.status_code == 422 and r.json()["ok"] is False, r.text
    async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
        r = await anonymous.get("/api/orders/SO-1")
        assert r.status_code == 401 and r.json()["code"] == "NOT_SIGNED_IN", r.text
