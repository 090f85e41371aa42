"""Pick requests from the plan (``material.requested``, contract 1.1) on a running line.

Real parts throughout: the gateway runs (its store on a SQLite file, the station API on a
loopback port), the planner solves in its worker process, the line's clock is a manual
one. What is expected comes from the definitions: the reference catalog's BOMs (a DTG
print takes one blank and 6 ml of ink, a Christmas kit a lipstick, a hand cream and a gift
box, an engraved pen a brass pen), the reference stock's lots (first expiry first out:
the lipsticks and creams of lot L2609A, 40 of each, before those of L2611B), and the plan
the planner made (which station does what when). Every event is checked against the
contract: the envelope against event.schema.json, the data's fields against the
contract's table.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.orderbook.alarms import raise_alarm
from gateway.planning.line_plan import LinePlan
from gateway.planning.picks import PickPlanner
from gateway.planning.planner import LinePlanner
from gateway.store.rows import Severity
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, stock_doc

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "cloud_sync" / "schemas"
EVENT_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "event.schema.json").read_text())
PROTOCOL = SCHEMAS / "hub-protocol.md"
MORNING = LINE_MORNING
LEAD = timedelta(minutes=15)  # [picking] lead_min's default
INK, INK_LOT = "INK-DTG-CMYK", "INK-DTG-CMYK-L2611A"  # the reference stock's only ink lot
PEN, PEN_LOT = "PEN-BRASS", "PEN-BRASS-L2611A"
EARLY, LATE = "L2609A", "L2611B"  # lipstick and cream lots: 40 expire first, then 200
STANDARD = {"ink_profile": "standard"}
DARK = {"ink_profile": "dark-underbase"}


def config(**picking: Any) -> LineConfig:
    """The reference line without devices (its stations worked through the API), its
    planner quick (1 s solves, no interval replans) and ``picking`` as given."""
    base = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in base.stations.items()}
    planner = base.planner.model_copy(
        update={"time_limit_s": 1.0, "settle_s": 0.2, "interval_s": 3600.0}
    )
    return base.model_copy(
        update={
            "stations": stations,
            "planner": planner,
            "picking": base.picking.model_copy(update={"recheck_s": 3600.0, **picking}),
        }
    )


def order(order_id: str, sku: str, qty: int, hours: float = 8, **person: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": (MORNING + timedelta(hours=hours)).isoformat(),
        "lines": [{"sku": sku, "qty": qty, "personalization": person}],
    }


# -- the contract ---------------------------------------------------------------------------


def contract_fields(type_: str) -> set[str]:
    """The field names of ``type_``'s data in hub-protocol.md (parentheses describe)."""
    for row in PROTOCOL.read_text().splitlines():
        cells = row.split("|")
        if len(cells) > 3 and cells[1].strip() == f"`{type_}`":
            return set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[-2])))
    raise AssertionError(f"{type_} is not in the contract")


def check_event(event: dict[str, Any]) -> dict[str, Any]:
    """A material.requested envelope as the contract has it; returns its data."""
    jsonschema.validate(event, EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert event["type"] == "material.requested"
    data: dict[str, Any] = event["data"]
    assert set(data) == contract_fields("material.requested"), data
    assert isinstance(data["request_id"], str) and data["request_id"]
    assert isinstance(data["revision"], int) and data["revision"] >= 1
    assert isinstance(data["qty"], float | int) and data["qty"] >= 0
    assert isinstance(data["uom"], str) and data["uom"]
    assert data["lot"] is None or isinstance(data["lot"], str)
    assert isinstance(data["deliver_to"], str)
    assert datetime.fromisoformat(data["need_by"]).tzinfo is not None
    assert all(isinstance(o, str) for o in data["orders"])
    assert (data["qty"] == 0) == (data["orders"] == [])
    return data


def requested(line: Line) -> list[dict[str, Any]]:
    """Every material.requested so far, checked, oldest first."""
    return [check_event(e) for e in line.events("material.requested")]


def latest(line: Line) -> dict[str, dict[str, Any]]:
    """Each request's last revision, by request id (revisions come in order)."""
    out: dict[str, dict[str, Any]] = {}
    for data in requested(line):
        before = out.get(data["request_id"])
        assert before is None or data["revision"] == before["revision"] + 1, data
        out[data["request_id"]] = data
    return out


Key = tuple[str, str, str | None]  # station, material, lot


def open_requests(line: Line) -> dict[Key, dict[str, Any]]:
    """The requests neither withdrawn nor arrived (the warehouse is not told of an arrival:
    the store knows), as last sent, by (station, material, lot): one each at most."""
    arrived = set(
        line.gateway.store.texts("SELECT request_id FROM pick_requests WHERE state = 'arrived'")
    )
    out: dict[Key, dict[str, Any]] = {}
    for data in latest(line).values():
        if data["qty"] > 0 and data["request_id"] not in arrived:
            key = (data["deliver_to"], data["material"], data["lot"])
            assert key not in out, f"two open requests for {key}"
            out[key] = data
    return out


# -- the running line -----------------------------------------------------------------------


async def until(pred: Callable[[], object], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


def planner(line: Line) -> LinePlanner:
    assert line.gateway.planner is not None
    return line.gateway.planner


def picks(line: Line) -> PickPlanner:
    assert line.gateway.picks is not None
    return line.gateway.picks


async def settled(line: Line, replans: int) -> LinePlan:
    """Once the planner made ``replans`` replans and the pick requests looked at the last
    plan: that plan."""
    stats = planner(line).replanner.stats
    await until(lambda: stats.replans >= replans)
    await until(lambda: picks(line).looked_at is planner(line).replanner.current)
    plan = planner(line).replanner.current
    assert plan is not None and stats.failures == 0
    return plan


@asynccontextmanager
async def running_line(tmp_path: Path, clock: ManualClock, cfg: LineConfig) -> AsyncIterator[Line]:
    gw = Gateway(cfg, data_dir=tmp_path, clock=clock, http_port=0)
    task = asyncio.create_task(gw.run())
    await until(gw.started.is_set)
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    try:
        await settled(ln, 1)  # the start: nothing to plan
        yield ln
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture
async def line(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Line]:
    async with running_line(tmp_path, clock, config()) as ln:
        yield ln


# -- what the plan says ---------------------------------------------------------------------


def planned(line: Line, plan: LinePlan) -> dict[int, tuple[str, datetime, str, str | None, str]]:
    """Each task of ``plan``: task id → (station, planned start, order, serial, op)."""
    store = line.gateway.store
    out = {}
    for task_id, a in plan.assignments():
        row = store.one("SELECT order_id, serial, op FROM tasks WHERE task_id = ?", (task_id,))
        assert row is not None
        out[task_id] = (a.station, plan.at(a.start), row["order_id"], row["serial"], row["op"])
    return out


class Expected:
    """What should be requested: per (station, material, lot), the quantity, the orders,
    and the first planned start (need_by is it less the lead)."""

    def __init__(self) -> None:
        self.qty: dict[Key, float] = defaultdict(float)
        self.orders: dict[Key, set[str]] = defaultdict(set)
        self.first: dict[Key, datetime] = {}

    def add(self, key: Key, qty: float, order_id: str, start: datetime) -> None:
        self.qty[key] += qty
        self.orders[key].add(order_id)
        self.first[key] = min(start, self.first.get(key, start))

    def check(self, found: dict[Key, dict[str, Any]], keys: set[Key] | None = None) -> None:
        """The open requests of ``keys`` (every expected one by default) are these."""
        keys = set(self.qty) if keys is None else keys
        for key in keys:
            assert key in found, f"no request for {key}"
            data = found[key]
            assert data["qty"] == pytest.approx(self.qty[key]), key
            assert set(data["orders"]) == self.orders[key], key
            assert datetime.fromisoformat(data["need_by"]) == self.first[key] - LEAD, key


# -- the tests ------------------------------------------------------------------------------


async def test_requests_per_station_material_and_lot_from_the_plan(line: Line) -> None:
    for n in range(6):
        line.send("in/orders", order(f"SO-T{n}", "TEE-WHT-M", 1, hours=2 + n, **STANDARD))
    line.send("in/orders", order("SO-K1", "KIT-XMAS-A", 39))
    line.send("in/orders", order("SO-K2", "KIT-XMAS-A", 3))
    plan = await settled(line, 2)
    tasks = planned(line, plan)
    # The lipsticks and creams by serial: the first 40 made (SO-K1's 39, SO-K2's first) are
    # of the lot that expires first.
    kits = sorted(s for (_, _, o, s, op) in tasks.values() if op == "assemble" and s)
    assert len(kits) == 42
    early = set(kits[:40])
    want = Expected()
    for station, start, order_id, serial, op in tasks.values():
        if op == "print":
            want.add((station, "BLANK-TEE-WHT-M", None), 1, order_id, start)
            want.add((station, INK, INK_LOT), 6, order_id, start)
        elif op == "assemble":
            assert serial is not None
            lot = EARLY if serial in early else LATE
            want.add((station, "LIPSTICK-R01", f"LIPSTICK-R01-{lot}"), 1, order_id, start)
            want.add((station, "CREAM-H50", f"CREAM-H50-{lot}"), 1, order_id, start)
            want.add((station, "GIFTBOX-XMAS", None), 1, order_id, start)
    found = open_requests(line)
    want.check(found)
    # Both lots of lipstick are asked for, as many of each as the stock's FEFO gives.
    lipsticks = {k[2]: 0.0 for k in found if k[1] == "LIPSTICK-R01"}
    for k, data in found.items():
        if k[1] == "LIPSTICK-R01":
            lipsticks[k[2]] += data["qty"]
    assert lipsticks == {"LIPSTICK-R01-L2609A": 40, "LIPSTICK-R01-L2611B": 2}
    # The units of measure are the catalog's.
    uoms = {data["material"]: data["uom"] for data in found.values()}
    assert uoms[INK] == "ml" and uoms["BLANK-TEE-WHT-M"] == "pcs"
    # Packing materials at the pack station each order's pack task is planned at.
    pack_stations = {o: st for (st, _, o, s, op) in tasks.values() if op == "pack"}
    for (station, _, _), data in found.items():
        if station.startswith("pack-"):
            assert {pack_stations[o] for o in data["orders"]} == {station}
    assert {o for k, d in found.items() if k[0].startswith("pack-") for o in d["orders"]} == set(
        pack_stations
    )
    # Nothing but requests so far: one revision each, every one open.
    assert all(d["revision"] == 1 for d in latest(line).values())


async def test_the_horizon_bounds_what_is_requested(tmp_path: Path, clock: ManualClock) -> None:
    cfg = config(horizon_min=20.0, recheck_s=1.0)
    async with running_line(tmp_path, clock, cfg) as line:
        # 30 caps of 150 s of embroidery each: 75 minutes of work at the one embroiderer.
        for n in range(30):
            line.send("in/orders", order(f"SO-{n}", "CAP-EMB-NAVY", 1, thread_color="gold"))
        plan = await settled(line, 2)
        caps = ("emb-1", "BLANK-CAP-NAVY", None)

        def within(minutes: int) -> Expected:
            want = Expected()
            until_ = MORNING + timedelta(minutes=minutes)
            for station, start, order_id, _, op in planned(line, plan).values():
                if op == "embroider" and start <= until_:
                    want.add((station, "BLANK-CAP-NAVY", None), 1, order_id, start)
                    want.add((station, "THREAD-POLY", None), 12, order_id, start)
            return want

        want = within(20)
        assert 5 <= want.qty[caps] < 30
        want.check(open_requests(line), set(want.qty))
        # Twenty minutes on, no new plan: the look every recheck_s finds more of the work
        # within the horizon, more than the tolerance (a tenth of it) more: revised.
        clock.advance(20 * 60)
        await until(lambda: open_requests(line)[caps]["revision"] == 2, within=10)
        assert planner(line).replanner.current is plan
        later = within(40)
        assert later.qty[caps] > want.qty[caps]
        later.check(open_requests(line), set(later.qty))


async def _take(line: Line, station: str, badge: str) -> dict[str, Any]:
    svc = line.svc
    if svc.view(station)["operator"] is None:
        svc.login(station, badge)
    svc.next_task(station)
    task: dict[str, Any] = svc.view(station)["task"]
    assert task is not None
    svc.scan(station, task["serial"])
    return task


def _pick(view: dict[str, Any], material: str, state: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        p for p in view["picks"] if p["material"] == material and p["state"] == state
    ]
    assert len(found) == 1, view["picks"]
    return found[0]


async def test_a_lot_scanned_at_the_station_arrives_and_is_netted(line: Line) -> None:
    for n in range(3):
        line.send("in/orders", order(f"SO-P{n}", "PEN-ENG", 1, hours=2 + n, text=f"P{n}"))
    await settled(line, 2)
    request = open_requests(line)[("laser-1", PEN, PEN_LOT)]
    assert request["qty"] == 3 and request["orders"] == ["SO-P0", "SO-P1", "SO-P2"]
    svc = line.svc
    assert _pick(svc.view("laser-1"), PEN, "requested")["qty"] == 3
    # The first pen's lot scanned at the laser: the warehouse brought the three.
    await _take(line, "laser-1", "OP-1006")
    svc.scan("laser-1", PEN_LOT)
    arrived = _pick(svc.view("laser-1"), PEN, "arrived")
    assert (arrived["request_id"], arrived["at_station"]) == (request["request_id"], 3)
    assert svc.start("laser-1").ok and svc.complete("laser-1").ok
    assert _pick(svc.view("laser-1"), PEN, "arrived")["at_station"] == 2
    # Two pens to engrave, two at the station: nothing to ask for, nothing said.
    before = len(requested(line))
    assert await picks(line).recheck() == 0
    assert len(requested(line)) == before
    # A fourth order: one pen more than the station holds.
    line.send("in/orders", order("SO-P3", "PEN-ENG", 1, hours=9, text="P3"))
    await settled(line, 3)
    more = open_requests(line)[("laser-1", PEN, PEN_LOT)]
    assert more["request_id"] != request["request_id"]
    assert (more["revision"], more["qty"], more["orders"]) == (1, 1, ["SO-P3"])
    # The next pen comes from what the station holds: the new request has not arrived.
    await _take(line, "laser-1", "OP-1006")
    svc.scan("laser-1", PEN_LOT)
    view = svc.view("laser-1")
    assert _pick(view, PEN, "requested")["request_id"] == more["request_id"]
    assert _pick(view, PEN, "arrived")["at_station"] == 2  # one of them held by the task


async def test_a_station_down_moves_its_requests_to_the_station_that_takes_the_work(
    line: Line,
) -> None:
    for n in range(12):
        line.send("in/orders", order(f"SO-{n}", "TEE-BLK-M", 1, hours=2 + n / 4, **DARK))
    plan = await settled(line, 2)
    busy = {st for (st, _, _, _, op) in planned(line, plan).values() if op == "print"}
    before = open_requests(line)
    down = sorted(busy)[0]
    other = "dtg-2" if down == "dtg-1" else "dtg-1"
    gone = {k: d for k, d in before.items() if k[0] == down}
    assert {k[1] for k in gone} == {"BLANK-TEE-BLK-M", INK}
    # Its machine faults: planned closed for 15 minutes, its prints go to the other.
    core = line.gateway.core
    with core.store.transaction():
        raise_alarm(
            core, f"fault:{down}", "machine_fault", f"{down}/machine", Severity.MAJOR, "jam"
        )
    plan = await settled(line, 3)
    assert plan.down == {down}
    tasks = planned(line, plan)
    assert not any(st == down for (st, _, _, _, op) in tasks.values() if op == "print")
    after = latest(line)
    for data in gone.values():
        withdrawn = after[data["request_id"]]
        assert (withdrawn["revision"], withdrawn["qty"], withdrawn["orders"]) == (
            data["revision"] + 1,
            0,
            [],
        )
    want = Expected()
    for station, start, order_id, _, op in tasks.values():
        if op == "print":
            want.add((station, "BLANK-TEE-BLK-M", None), 1, order_id, start)
            want.add((station, INK, INK_LOT), 6, order_id, start)
    assert want.qty[(other, "BLANK-TEE-BLK-M", None)] == 12
    found = open_requests(line)
    want.check(found)
    assert not any(k[0] == down for k in found)


async def test_a_cancelled_order_revises_then_withdraws_its_request(line: Line) -> None:
    for n in range(3):
        line.send("in/orders", order(f"SO-P{n}", "PEN-ENG", 1, hours=2 + n, text=f"P{n}"))
    await settled(line, 2)
    first = open_requests(line)[("laser-1", PEN, PEN_LOT)]
    line.send("in/cancel", {"order_id": "SO-P1", "reason": "customer"})
    await settled(line, 3)
    revised = open_requests(line)[("laser-1", PEN, PEN_LOT)]
    assert revised["request_id"] == first["request_id"]
    assert (revised["revision"], revised["qty"], revised["orders"]) == (2, 2, ["SO-P0", "SO-P2"])
    line.send("in/cancel", {"order_id": "SO-P0", "reason": "customer"})
    line.send("in/cancel", {"order_id": "SO-P2", "reason": "customer"})
    await settled(line, 4)
    assert ("laser-1", PEN, PEN_LOT) not in open_requests(line)
    last = latest(line)[first["request_id"]]
    assert (last["revision"], last["qty"], last["orders"]) == (3, 0, [])
    # Every request of the cancelled orders is withdrawn: nothing is left open.
    assert open_requests(line) == {}


async def test_replans_that_change_nothing_say_nothing(line: Line) -> None:
    for n in range(8):
        line.send("in/orders", order(f"SO-T{n}", "TEE-WHT-M", 2, hours=2 + n, **STANDARD))
    line.send("in/orders", order("SO-K", "KIT-XMAS-A", 6))
    await settled(line, 2)
    made = len(requested(line))
    assert made > 0
    for n in range(3, 9):
        planner(line).request("asked")
        await settled(line, n)
    # Six replans of the same work at the same instant: the same plan, not one word more.
    assert len(requested(line)) == made
