"""order.progress (contract 1.1) on a real line: an order through its stages, each stage
reported once, in order, in the transaction of the change; nothing when the stage stays;
nothing from a rolled-back change; a cancelled order; an order waiting for material; and
the step rule against plans handed to the planner as a replan would.

The event's fields and stages are read from the contract's text (the vendored
hub-protocol.md); the envelope is validated against event.schema.json (which describes
no 1.1 type's data: the fields are checked against the contract's table instead).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.app.root import Gateway
from gateway.clock import iso
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.desk.replies import Refused
from gateway.orderbook.inbound import cancel_order
from gateway.orderbook.progress import Forecast, Stage, forecast_of, history, stage_of
from gateway.planner.problem import LateOrder, Plan
from gateway.planning.line_plan import LinePlan, compact
from gateway.planning.planner import LinePlanner
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, stock_doc

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "cloud_sync" / "schemas"
EVENT_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "event.schema.json").read_text())
PROTOCOL = SCHEMAS / "hub-protocol.md"
SHIP_BY = LINE_MORNING + timedelta(hours=8)


def contract_row(type_: str) -> str:
    """The ``data`` column of ``type_``'s row in hub-protocol.md's event tables."""
    for line in PROTOCOL.read_text().splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip() == f"`{type_}`":
            return cells[-2]
    raise AssertionError(f"{type_} is not in the contract")


def contract_fields(type_: str) -> set[str]:
    """The field names of ``type_``'s data (what is in parentheses describes a field)."""
    return set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", contract_row(type_))))


def contract_stages() -> list[str]:
    described = re.search(r"`stage` \(([^)]*)\)", contract_row("order.progress"))
    assert described is not None
    return re.findall(r"`([a-z_]+)`", described.group(1))


def check_event(event: dict[str, Any]) -> dict[str, Any]:
    """An order.progress envelope as the contract has it; returns its data."""
    jsonschema.validate(event, EVENT_SCHEMA, format_checker=jsonschema.FormatChecker())
    data: dict[str, Any] = event["data"]
    assert set(data) == contract_fields("order.progress"), data
    assert data["stage"] in contract_stages()
    assert isinstance(data["units_total"], int) and isinstance(data["units_done"], int)
    for work in data["current"]:
        assert set(work) == {"serial", "op", "station"}, work
    for ts in (data["predicted_completion"], data["ship_by"]):
        assert ts is None or datetime.fromisoformat(ts).tzinfo is not None
    assert isinstance(data["at_risk"], bool)
    assert all(isinstance(r, str) and r for r in data["reasons"])
    # "empty when on time"
    assert bool(data["reasons"]) == data["at_risk"]
    return data


def _config(planner: bool = False, step_min: float | None = None) -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    settings = config.planner.model_copy(update={"enabled": planner})
    hub = config.hub
    if step_min is not None:
        hub = hub.model_copy(update={"progress_step_min": step_min})
    return config.model_copy(update={"stations": stations, "planner": settings, "hub": hub})


class Progress(Line):
    """The reference line, its clock by hand; its order.progress events."""

    clock: ManualClock

    def progress(self, order_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events("order.progress") if e["order_id"] == order_id]

    def stages(self, order_id: str) -> list[str]:
        return [e["data"]["stage"] for e in self.progress(order_id)]

    def at(self, minutes: float) -> str:
        self.clock.at = LINE_MORNING + timedelta(minutes=minutes)
        return iso(self.clock.at)

    @property
    def planner(self) -> LinePlanner:
        assert self.gateway.planner is not None
        return self.gateway.planner


def _line(tmp_path: Path, config: LineConfig) -> Iterator[Progress]:
    clock = ManualClock(LINE_MORNING)
    gw = Gateway(config, data_dir=tmp_path, clock=clock)
    gw.open()
    ln = Progress(gw)
    ln.clock = clock
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    yield ln
    gw.store.close()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Progress]:
    yield from _line(tmp_path, _config())


@pytest.fixture
def planned(tmp_path: Path) -> Iterator[Progress]:
    yield from _line(tmp_path, _config(planner=True))


def tee_order(order_id: str, qty: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": SHIP_BY.isoformat(),
        "lines": [{"sku": "TEE-WHT-M", "qty": qty}],
        **extra,
    }


def begin_print(ln: Progress) -> dict[str, Any]:
    """At dtg-1: take the next task, scan its unit and materials, start it."""
    svc = ln.svc
    if svc.view("dtg-1")["operator"] is None:
        svc.login("dtg-1", "OP-1001")
    svc.next_task("dtg-1")
    task: dict[str, Any] = svc.view("dtg-1")["task"]
    svc.scan("dtg-1", task["serial"])
    for m in task["materials"]:
        svc.scan("dtg-1", m["suggested_lot"] or m["material"])
    assert svc.start("dtg-1").ok
    return task


def finish_print(ln: Progress, task: dict[str, Any]) -> None:
    for i, _ in enumerate(task["checklist"]):
        ln.svc.checklist("dtg-1", i, True)
    assert ln.svc.complete("dtg-1").ok


def ts_of(ln: Progress, type_: str, order_id: str) -> list[str]:
    return [e["ts"] for e in ln.events(type_) if e.get("order_id") == order_id]


# -- stages ----------------------------------------------------------------------------------


def test_an_order_reports_each_stage_once_in_order(line: Progress) -> None:
    ln = line
    ln.send("in/orders", tee_order("SO-1", qty=2))
    [queued] = ln.progress("SO-1")
    assert check_event(queued) == {
        "stage": "queued",
        "units_total": 2,
        "units_done": 0,
        "current": [],
        "predicted_completion": None,  # no planner on this line
        "ship_by": iso(SHIP_BY),
        "at_risk": False,
        "reasons": [],
    }
    # Reported in the transaction that accepted the order (one instant per transaction).
    assert queued["ts"] == ts_of(ln, "order.accepted", "SO-1")[0]

    ln.at(5)
    first = begin_print(ln)
    assert ln.stages("SO-1") == ["queued", "in_process"]
    in_process = ln.progress("SO-1")[-1]
    assert check_event(in_process)["current"] == [
        {"serial": first["serial"], "op": "print", "station": "dtg-1"}
    ]
    assert in_process["ts"] == ts_of(ln, "task.started", "SO-1")[0]

    # The first unit done, the second printed start to end: still in process, so nothing.
    ln.at(6)
    finish_print(ln, first)
    second = begin_print(ln)
    ln.at(7)
    finish_print(ln, second)
    assert ln.stages("SO-1") == ["queued", "in_process"]
    assert len(ln.events("task.completed")) == 2

    # Packing begins with the first unit scanned into the parcel.
    ln.at(10)
    svc = ln.svc
    svc.login("pack-1", "OP-1008")
    svc.next_task("pack-1")
    parcel = svc.view("pack-1")["task"]
    svc.scan("pack-1", parcel["units"][0]["serial"])
    assert ln.stages("SO-1") == ["queued", "in_process", "packing"]
    packing = check_event(ln.progress("SO-1")[-1])
    assert packing["units_done"] == 2
    assert packing["current"] == [{"serial": None, "op": "pack", "station": "pack-1"}]

    svc.scan("pack-1", parcel["units"][1]["serial"])
    for m in parcel["materials"]:
        svc.scan("pack-1", m["suggested_lot"] or m["material"])
    reply = svc.weight("pack-1", parcel["expected_weight_g"])
    assert reply.ok, reply.message
    assert ln.stages("SO-1") == ["queued", "in_process", "packing"]
    done_at = ln.at(12)
    svc.scan("pack-1", reply.data["label_id"])
    assert ln.stages("SO-1") == ["queued", "in_process", "packing", "completed"]
    completed = ln.progress("SO-1")[-1]
    assert check_event(completed) == {
        "stage": "completed",
        "units_total": 2,
        "units_done": 2,
        "current": [],
        "predicted_completion": done_at,  # a completed order's is its completion
        "ship_by": iso(SHIP_BY),
        "at_risk": False,
        "reasons": [],
    }
    assert completed["ts"] == ts_of(ln, "order.completed", "SO-1")[0] == done_at
    # The history customer service reads: each stage with when it was reached.
    assert [(h.stage, h.at) for h in history(ln.gateway.core, "SO-1")] == [
        (Stage.QUEUED, iso(LINE_MORNING)),
        (Stage.IN_PROCESS, ln.at(5)),
        (Stage.PACKING, ln.at(10)),
        (Stage.COMPLETED, done_at),
    ]


def test_nothing_is_reported_when_the_stage_stays(line: Progress) -> None:
    ln = line
    ln.send("in/orders", [tee_order("SO-1"), tee_order("SO-2")])
    assert ln.stages("SO-1") == ln.stages("SO-2") == ["queued"]
    # The same order again (idempotent), a refused revision, an order that is refused:
    # events about orders, none of them a change of stage.
    ln.send("in/orders", tee_order("SO-1"))
    ln.send("in/orders", {**tee_order("SO-2", qty=2), "revision": 2})
    ln.send("in/orders", {**tee_order("SO-3"), "lines": [{"sku": "NO-SUCH-SKU", "qty": 1}]})
    assert [e["order_id"] for e in ln.events("order.rejected")] == ["SO-3"]
    assert len(ln.events("order.accepted")) == 3  # SO-2's revision 2 replaced it
    assert ln.stages("SO-1") == ln.stages("SO-2") == ["queued"]
    assert ln.stages("SO-3") == []
    # A dispatched task has not begun: the unit is not being worked on yet.
    ln.svc.login("dtg-1", "OP-1001")
    ln.svc.next_task("dtg-1")
    assert len(ln.events("task.dispatched")) == 1
    assert [e["data"]["stage"] for e in ln.events("order.progress")] == ["queued", "queued"]


class Boom(Exception):
    pass


def test_a_rolled_back_change_reports_nothing(line: Progress) -> None:
    ln = line
    core, store = ln.gateway.core, ln.gateway.store
    ln.send("in/orders", tee_order("SO-1"))
    before = ln.events()
    with pytest.raises(Boom), store.transaction():
        cancel_order(core, "SO-1", "changed my mind")
        store.flush()  # what a reader inside the transaction sees: reported, for now
        assert ln.stages("SO-1") == ["queued", "cancelled"]
        raise Boom
    assert ln.events() == before
    assert stage_of(core, "SO-1") is Stage.QUEUED
    assert [h.stage for h in history(core, "SO-1")] == [Stage.QUEUED]
    # An operator's refused action: nothing.
    with pytest.raises(Refused):
        ln.svc.start("dtg-1")
    assert ln.events() == before

    # A change made and reported inside a savepoint that rolls back: neither is left.
    with store.transaction():
        with pytest.raises(Boom), store.savepoint():
            cancel_order(core, "SO-1", "changed my mind")
            store.flush()
            assert ln.stages("SO-1") == ["queued", "cancelled"]
            raise Boom
        assert ln.stages("SO-1") == ["queued"]
    assert ln.events() == before
    assert stage_of(core, "SO-1") is Stage.QUEUED

    # A change made before a savepoint, reported inside it (a flush there), and the
    # savepoint rolls back: the change stands, so it is reported again, once, at the commit.
    with store.transaction():
        cancel_order(core, "SO-1", "changed my mind")
        ln.gateway.outbox.flush()  # order.cancelled is written before the savepoint
        with pytest.raises(Boom), store.savepoint():
            store.flush()
            assert ln.stages("SO-1") == ["queued", "cancelled"]
            raise Boom
        assert ln.stages("SO-1") == ["queued"]
    assert ln.stages("SO-1") == ["queued", "cancelled"]
    assert len(ln.events()) == len(before) + 2  # order.cancelled and its progress
    assert [h.stage for h in history(core, "SO-1")] == [Stage.QUEUED, Stage.CANCELLED]


def test_a_cancelled_order_stays_cancelled_while_its_unit_in_work_finishes(
    line: Progress,
) -> None:
    ln = line
    ln.send("in/orders", tee_order("SO-1", qty=2))
    task = begin_print(ln)
    ln.at(3)
    ln.send("in/cancel", {"order_id": "SO-1", "reason": "customer cancelled"})
    assert ln.stages("SO-1") == ["queued", "in_process", "cancelled"]
    cancelled = check_event(ln.progress("SO-1")[-1])
    assert (cancelled["units_done"], cancelled["predicted_completion"]) == (0, None)
    # The unit being printed is left to its operator: still shown as worked on.
    assert cancelled["current"] == [{"serial": task["serial"], "op": "print", "station": "dtg-1"}]
    assert ln.progress("SO-1")[-1]["ts"] == ts_of(ln, "order.cancelled", "SO-1")[0]
    ln.at(4)
    finish_print(ln, task)
    assert len(ln.events("task.completed")) == 1
    assert ln.stages("SO-1") == ["queued", "in_process", "cancelled"]


def test_an_order_waits_for_material_until_the_stock_comes(line: Progress) -> None:
    ln = line
    # The reference stock holds 6 red cap blanks.
    order = {
        "order_id": "SO-RED",
        "ship_by": SHIP_BY.isoformat(),
        "lines": [{"sku": "CAP-EMB-RED", "qty": 8}],
    }
    ln.send("in/orders", order)
    assert ln.stages("SO-RED") == ["waiting_material"]
    assert check_event(ln.progress("SO-RED")[0])["units_total"] == 8
    # A snapshot with more of them: the order is kitted with nothing to say of its own;
    # its stage is reported in the snapshot's transaction.
    stock = stock_doc()
    for item in stock["items"]:
        if item["material"] == "BLANK-CAP-RED":
            item["qty"] = 50
    ln.at(30)
    ln.send("in/masterdata/stock", stock)
    assert ln.stages("SO-RED") == ["waiting_material", "queued"]
    assert ln.progress("SO-RED")[-1]["ts"] == ln.at(30)


# -- forecasts and the step rule -----------------------------------------------------------


def plan_for(
    completion: dict[str, int], late: tuple[LateOrder, ...] = (), made_at: datetime = LINE_MORNING
) -> LinePlan:
    """A plan as the worker answers it: each order's predicted completion in seconds
    from ``made_at``."""
    return compact(
        Plan({}, completion, late),
        made_at,
        waiting={},
        down=frozenset(),
        reasons=("test",),
        solve_s=0.0,
    )


def test_forecast_of_a_plan() -> None:
    plan = plan_for(
        {"A": 3600, "B": 9 * 3600},
        late=(LateOrder("B", 8 * 3600, 9 * 3600, 1, ("dtg-1 busy until 17:30",)),),
    )
    assert forecast_of(plan, "A", SHIP_BY) == Forecast(LINE_MORNING + timedelta(hours=1))
    assert forecast_of(plan, "B", SHIP_BY) == Forecast(
        LINE_MORNING + timedelta(hours=9), True, ("dtg-1 busy until 17:30",)
    )
    # Late without a reason from the plan: at risk all the same, and said so in words.
    bare = forecast_of(plan_for({"C": 8 * 3600 + 1800}), "C", SHIP_BY)
    assert bare.at_risk and len(bare.reasons) == 1 and "ship-by" in bare.reasons[0]
    assert forecast_of(plan, "unknown", SHIP_BY) == Forecast()
    assert forecast_of(None, "A", SHIP_BY) == Forecast()


def test_a_new_plan_reports_a_forecast_that_moved_more_than_the_step(planned: Progress) -> None:
    ln = planned
    ln.send("in/orders", tee_order("SO-1"))
    assert ln.stages("SO-1") == ["queued"]
    replanner = ln.planner.replanner
    # The first plan predicts it: from none to 11:00.
    replanner.offer(plan_for({"SO-1": 3600}))
    reported = ln.progress("SO-1")
    assert len(reported) == 2
    assert check_event(reported[-1])["predicted_completion"] == iso(
        LINE_MORNING + timedelta(hours=1)
    )
    assert reported[-1]["data"]["stage"] == "queued"
    # 10 minutes later than reported: within the step (15 min), nothing.
    replanner.offer(plan_for({"SO-1": 3600 + 600}))
    assert len(ln.progress("SO-1")) == 2
    # 20 minutes later than reported (the 10 above were never reported): reported.
    replanner.offer(plan_for({"SO-1": 3600 + 1200}))
    assert len(ln.progress("SO-1")) == 3
    assert ln.progress("SO-1")[-1]["data"]["predicted_completion"] == iso(
        LINE_MORNING + timedelta(minutes=80)
    )
    # Earlier by as much: reported too.
    replanner.offer(plan_for({"SO-1": 3600}))
    assert len(ln.progress("SO-1")) == 4

    # Now late: at risk, with the plan's reasons (as gateway/planner/explain.py words them).
    def late(*reasons: str) -> tuple[LateOrder, ...]:
        return (LateOrder("SO-1", 8 * 3600, 8 * 3600 + 300, 5, reasons),)

    queued = "bottleneck: dtg-1 (queued 40 min)"
    replanner.offer(plan_for({"SO-1": 8 * 3600 + 300}, late(queued)))
    data = check_event(ln.progress("SO-1")[-1])
    assert (data["at_risk"], data["reasons"]) == (True, [queued])
    # The same cause with other durations, a few minutes off: nothing new to say.
    replanner.offer(plan_for({"SO-1": 8 * 3600 + 400}, late("bottleneck: dtg-1 (queued 42 min)")))
    assert len(ln.progress("SO-1")) == 5
    # Another cause: reported.
    shift = "shift: late closes at 00:00 (waited 1 h 5 min)"
    replanner.offer(plan_for({"SO-1": 8 * 3600 + 300}, late(queued, shift)))
    assert check_event(ln.progress("SO-1")[-1])["reasons"] == [queued, shift]
    assert len(ln.progress("SO-1")) == 6
    # The stage is still the one reported, and a stage change carries the forecast.
    assert ln.stages("SO-1") == ["queued"] * 6
    begin_print(ln)
    data = check_event(ln.progress("SO-1")[-1])
    assert (data["stage"], data["at_risk"]) == ("in_process", True)
    assert data["predicted_completion"] == iso(SHIP_BY + timedelta(minutes=5))
    # A plan that no longer knows the order (say it waits for material): reported.
    replanner.offer(plan_for({}))
    data = check_event(ln.progress("SO-1")[-1])
    assert (data["predicted_completion"], data["at_risk"], data["reasons"]) == (None, False, [])
    assert len(ln.progress("SO-1")) == 8


async def test_in_the_running_gateway_a_new_plan_is_compared_in_turns(planned: Progress) -> None:
    ln = planned
    ids = [f"SO-{n:03d}" for n in range(250)]
    ln.send("in/orders", [tee_order(i) for i in ids])
    replanner = ln.planner.replanner
    replanner.offer(plan_for(dict.fromkeys(ids, 3600)))
    # A newer plan before the first was compared: only the newer one is reported.
    replanner.offer(plan_for({i: 7200 + 60 * n for n, i in enumerate(ids)}))
    assert len(ln.events("order.progress")) == 250  # each order's "queued", nothing yet
    async with asyncio.timeout(10):
        while len(ln.events("order.progress")) < 500:  # noqa: ASYNC110 - the outbox is polled
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # and nothing more comes
    for n, order_id in enumerate(ids):
        [_, moved] = ln.progress(order_id)
        assert moved["data"]["predicted_completion"] == iso(
            LINE_MORNING + timedelta(seconds=7200 + 60 * n)
        )


def test_the_step_is_the_lines_setting(tmp_path: Path) -> None:
    # From line.toml, as a site sets it.
    folder = tmp_path / "line"
    shutil.copytree(REFERENCE_LINE, folder)
    toml = folder / "line.toml"
    toml.write_text(toml.read_text().replace("[hub]\n", "[hub]\nprogress_step_min = 30\n", 1))
    assert load_line_config(folder).hub.progress_step_min == 30
    assert load_line_config(REFERENCE_LINE).hub.progress_step_min == 15  # the default

    for ln in _line(tmp_path / "data", _config(planner=True, step_min=30)):
        ln.send("in/orders", tee_order("SO-1"))
        ln.planner.replanner.offer(plan_for({"SO-1": 3600}))
        ln.planner.replanner.offer(plan_for({"SO-1": 3600 + 20 * 60}))  # 20 < 30 min
        assert len(ln.progress("SO-1")) == 2
        ln.planner.replanner.offer(plan_for({"SO-1": 3600 + 40 * 60}))
        assert len(ln.progress("SO-1")) == 3
