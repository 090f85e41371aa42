"""The planner in the gateway: the line's open work as a problem, the stations handed the
plan, replans on events (coalesced), and the dispatch rule when the solver dies.

Real parts throughout: the store on a real SQLite file, the solver in its worker process,
the gateway serving its API on a loopback port. The clock is a manual one so shifts and
overruns do not depend on when the test runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access.tokens import create_token
from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.planner.feasibility import check_plan
from gateway.planner.model import solve
from gateway.planner.problem import Assignment, Plan
from gateway.planning.line_plan import LineJob, LinePlan, compact
from gateway.planning.line_problem import line_problem, task_key
from gateway.planning.line_solve import solve_line
from gateway.planning.planner import EARLY_REASON, LinePlanner
from gateway.store.rows import Role, Severity
from gateway.web.station_api import create_app
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, stock_doc
from tests.keys import issue_keys

# A Thursday morning on the reference line (shifts 08:00-24:00, Asia/Shanghai).
MORNING = LINE_MORNING


def _config(**planner: Any) -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    # No devices: the stations are worked through the API (the devices have their tests).
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    settings = config.planner.model_copy(
        update={"time_limit_s": 1.0, "settle_s": 0.2, "interval_s": 3600.0, **planner}
    )
    return config.model_copy(update={"stations": stations, "planner": settings})


def _order(
    order_id: str, *lines: tuple[str, int, dict[str, str]], hours: float = 8, priority: int = 5
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": (MORNING + timedelta(hours=hours)).isoformat(),
        "priority": priority,
        "lines": [{"sku": s, "qty": q, "personalization": p} for s, q, p in lines],
    }


DARK = {"ink_profile": "dark-underbase"}
STANDARD = {"ink_profile": "standard"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture
def planned(tmp_path: Path, clock: ManualClock) -> Iterator[Line]:
    gw = Gateway(_config(), data_dir=tmp_path, clock=clock)
    gw.open()
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    yield ln
    gw.store.close()


def _planner(line: Line) -> LinePlanner:
    assert line.gateway.planner is not None
    return line.gateway.planner


def _task_id(line: Line, order_id: str, op: str) -> int:
    row = line.gateway.store.one(
        "SELECT task_id FROM tasks WHERE order_id = ? AND op = ? ORDER BY task_id",
        (order_id, op),
    )
    assert row is not None
    return int(row["task_id"])


def _start_next(svc: StationService, station: str, badge: str) -> dict[str, Any]:
    """Log in, take the next task, scan its unit and materials, start it; its view."""
    svc.login(station, badge)
    svc.next_task(station)
    task: dict[str, Any] = svc.view(station)["task"]
    svc.scan(station, task["serial"])
    for m in task["materials"]:
        svc.scan(station, m["suggested_lot"] or m["material"])
    assert svc.start(station).ok
    return task


def _rule_order(line: Line, capability: str) -> list[int]:
    return [
        r["task_id"]
        for r in line.gateway.store.all(
            "SELECT task_id FROM tasks WHERE status = 'ready' AND capability = ? "
            "ORDER BY ship_by, priority DESC, task_id",
            (capability,),
        )
    ]


# -- the problem ------------------------------------------------------------------------


def test_the_problem_is_the_lines_open_work(planned: Line, clock: ManualClock) -> None:
    line, svc = planned, planned.svc
    line.send("in/orders", _order("SO-1", ("TEE-WHT-M", 2, STANDARD)))
    line.send("in/orders", _order("SO-2", ("CAP-EMB-RED", 2, {"thread_color": "gold"})))
    line.send("in/orders", _order("SO-3", ("TUMBLER-ENG", 1, {"fixture": "FX-TUMBLER"})))
    # Six red caps in stock, two taken: four more wait for material.
    line.send("in/orders", _order("SO-4", ("CAP-EMB-RED", 5, {"thread_color": "red"})))
    _start_next(svc, "dtg-1", "OP-1001")
    running = svc.current("dtg-1")
    assert running is not None and running.order_id == "SO-1"
    svc.login("emb-1", "OP-1003")
    svc.next_task("emb-1")
    dispatched = svc.current("emb-1")
    assert dispatched is not None
    clock.advance(20)

    lp = line_problem(line.gateway.core, clock.now(), down={"laser-1"})
    problem = lp.problem
    tasks = problem.task_map()
    open_ids = {
        task_key(r["task_id"])
        for r in line.gateway.store.all(
            "SELECT task_id FROM tasks WHERE order_id != 'SO-4' AND status != 'done'"
        )
    }
    assert set(tasks) == open_ids
    assert lp.waiting == {"SO-4": ("BLANK-CAP-RED",)}
    assert {o.id for o in problem.orders} == {"SO-1", "SO-2", "SO-3"}
    # The running print: frozen where it runs, started 20 s ago, its standard 45 s.
    run = tasks[task_key(running.task_id)]
    assert run.frozen is not None and run.frozen.station == "dtg-1"
    assert (run.frozen.start, run.duration) == (-20, 45)
    # The dispatched embroidery: frozen as emb-1's next task, with its thread's setup.
    nxt = tasks[task_key(dispatched.task_id)]
    assert nxt.frozen is not None and (nxt.frozen.station, nxt.frozen.start) == ("emb-1", None)
    assert (nxt.setup_key, nxt.setup_s, nxt.duration) == ("gold", 120, 150)
    # The tumbler's routing in order, the pack after it; SO-1's pack after both units.
    engrave, inspect, box, pack3 = (
        tasks[task_key(_task_id(line, "SO-3", op))] for op in ("engrave", "inspect", "box", "pack")
    )
    assert inspect.predecessors == (engrave.id,)
    assert box.predecessors == (inspect.id,)
    assert pack3.predecessors == (box.id,)
    pack1 = tasks[task_key(_task_id(line, "SO-1", "pack"))]
    assert len(pack1.predecessors) == 2
    assert pack1.duration == 20 + 10  # the pack time, plus 10 s for the second unit
    # dtg-1 is set up for what it runs; laser-1 is down, closed for 15 minutes.
    stations = problem.station_map()
    assert stations["dtg-1"].setup == "standard"
    assert (0, 900) in stations["laser-1"].breaks
    assert lp.down == {"laser-1"}

    plan = solve(problem, time_limit_s=2.0, workers=2).plan
    assert check_plan(problem, plan) == []
    assert plan.assignments[engrave.id].start >= 900
    assert plan.assignments[run.id] == Assignment("dtg-1", -20, 25, 0)


def test_the_previous_plans_head_becomes_the_stations_frozen_next_task(planned: Line) -> None:
    line = planned
    for n in range(3):
        line.send("in/orders", _order(f"SO-{n}", ("TEE-WHT-M", 1, STANDARD), hours=8 + n))
    ids = _rule_order(line, "dtg_print")
    # The previous plan had the last of them first on dtg-2.
    lp = line_problem(line.gateway.core, MORNING, previous={"dtg-2": (ids[2], ids[0])})
    frozen = {t.id: t.frozen for t in lp.problem.tasks if t.frozen is not None}
    assert list(frozen) == [task_key(ids[2])]
    plan = solve(lp.problem, time_limit_s=1.0).plan
    assert check_plan(lp.problem, plan) == []
    assert plan.sequences()["dtg-2"][0] == task_key(ids[2])
    # Unless dtg-2 is down: then its head is free to go to dtg-1.
    lp = line_problem(
        line.gateway.core, MORNING, down={"dtg-2"}, previous={"dtg-2": (ids[2], ids[0])}
    )
    assert all(t.frozen is None for t in lp.problem.tasks)
    plan = solve(lp.problem, time_limit_s=1.0).plan
    assert {plan.assignments[task_key(t)].station for t in ids} == {"dtg-1"}


# -- dispatch from the plan ---------------------------------------------------------------


def _hand_plan(sequences: dict[str, tuple[int, ...]], received: float | None = None) -> LinePlan:
    assignments = {
        task_key(t): Assignment(station, 60 * i, 60 * i + 45)
        for station, ids in sequences.items()
        for i, t in enumerate(ids)
    }
    plan = compact(
        Plan(assignments, {}),
        MORNING,
        waiting={},
        down=frozenset(),
        reasons=("test",),
        solve_s=0.0,
    )
    return replace(plan, received=time.monotonic() if received is None else received)


def test_a_station_is_handed_its_planned_tasks_first(planned: Line) -> None:
    line, svc = planned, planned.svc
    for n in range(4):
        line.send("in/orders", _order(f"SO-{n}", ("TEE-WHT-M", 1, STANDARD), hours=8 + n))
    t0, t1, t2, t3 = _rule_order(line, "dtg_print")
    planner = _planner(line)
    # No plan yet: the rule (ship-by first).
    assert [r.task_id for r in svc.queue("dtg-1")] == [t0, t1, t2, t3]
    assert planner.source() == "rule (no plan yet)"
    # The plan: t3 then t1 on dtg-1, t0 on dtg-2; t2 came after the plan was made.
    planner.replanner.current = _hand_plan({"dtg-1": (t3, t1), "dtg-2": (t0,)})
    assert planner.source() == "plan"
    # Planned here, then unplanned by the rule, then what is planned for another station.
    assert [r.task_id for r in svc.queue("dtg-1")] == [t3, t1, t2, t0]
    assert [r.task_id for r in svc.queue("dtg-2")] == [t0, t2, t1, t3]
    svc.login("dtg-1", "OP-1001")
    reply = svc.next_task("dtg-1")
    assert reply.data["task_id"] == t3
    # t3 is no longer ready: the next station asking gets the next of its own plan.
    assert [r.task_id for r in svc.queue("dtg-1")] == [t1, t2, t0]
    # A plan nobody could renew for longer than stale_s is dropped for the rule.
    planner.replanner.current = _hand_plan({"dtg-1": (t2, t1)}, received=time.monotonic() - 1e6)
    assert planner.source() == "rule (the plan is stale)"
    assert [r.task_id for r in svc.queue("dtg-1")] == [t0, t1, t2]


def test_a_stations_planned_tasks_are_found_behind_tasks_not_ready(planned: Line) -> None:
    # The plan is read a few rows at a time from the station's head, more when those are
    # not ready: 20 blocked packs first, then the prints.
    line = planned
    for n in range(20):
        line.send("in/orders", _order(f"SO-{n}", ("TEE-WHT-M", 1, STANDARD)))
    packs = [_task_id(line, f"SO-{n}", "pack") for n in range(20)]
    prints = _rule_order(line, "dtg_print")
    planner = _planner(line)
    planner.replanner.current = _hand_plan({"dtg-1": (*packs, *reversed(prints))})
    assert [r.task_id for r in line.svc.queue("dtg-1", 1)] == [prints[-1]]
    assert [r.task_id for r in line.svc.queue("dtg-1", 3)] == prints[::-1][:3]


# -- replanning in the running gateway ------------------------------------------------------


async def _until(pred: Callable[[], object], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not pred():  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.02)


@pytest.fixture
async def running(
    tmp_path: Path, clock: ManualClock
) -> AsyncIterator[tuple[Line, httpx.AsyncClient]]:
    gw = Gateway(_config(), data_dir=tmp_path, clock=clock, http_port=0)
    task = asyncio.create_task(gw.run())
    await _until(gw.started.is_set)
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    # Reading the plan is the board's, asking a replan a line lead's: a token per role.
    keys = issue_keys(gw.store, gw.config, clock.now())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}", auth=keys) as client:
        try:
            yield ln, client
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_events_replan_the_running_line_once_per_burst(
    running: tuple[Line, httpx.AsyncClient], clock: ManualClock
) -> None:
    line, api = running
    planner = _planner(line)
    stats = planner.replanner.stats
    await _until(lambda: stats.replans == 1)  # the start: nothing to plan yet
    for n in range(12):  # a burst of orders: one replan
        line.send("in/orders", _order(f"SO-{n}", ("TEE-BLK-M", 1, DARK), hours=2 + n / 4))
    line.send("in/orders", _order("SO-RED", ("CAP-EMB-RED", 8, {"thread_color": "red"})))
    await _until(lambda: stats.replans == 2)
    await asyncio.sleep(0.5)
    assert stats.replans == 2 and stats.failures == 0
    assert stats.requests["orders arrived"] == 13
    assert stats.last_reasons == ("orders arrived",)

    body = (await api.get("/api/plan")).json()
    assert body["source"] == "plan"
    plan = body["plan"]
    planned_ids = {t["order_id"] for rows in plan["stations"].values() for t in rows}
    assert planned_ids == {f"SO-{n}" for n in range(12)}
    assert plan["waiting"] == [
        {
            "order_id": "SO-RED",
            "materials": ["BLANK-CAP-RED"],
            "reasons": ["material: BLANK-CAP-RED short, not planned until in stock"],
        }
    ]
    forecast = (await api.get("/api/plan/orders/SO-0")).json()
    assert forecast["planned"] and forecast["predicted_completion"] is not None
    assert (await api.get("/api/plan/orders/NOPE")).status_code == 404

    # A machine faults: the station is planned closed, and the line replanned once.
    core = line.gateway.core
    with core.store.transaction():
        raise_alarm(
            core, "fault:dtg-1", "machine_fault", "dtg-1/machine", Severity.MAJOR, "head jam"
        )
    await _until(lambda: stats.replans == 3)
    assert stats.last_reasons == ("station dtg-1 down",)
    current = planner.replanner.current
    assert current is not None and current.down == {"dtg-1"}
    # dtg-1 is planned closed for down_assumed_s (900 s). The twelve dark prints are about
    # 12 x 45 s + one 15 s setup = 555 s of work: dtg-2 has them all done before dtg-1
    # could reopen, so none of them is planned on dtg-1 at all.
    assert len(current.stations.get("dtg-1") or ()) == 0
    assert len(current.stations["dtg-2"]) == 12
    with core.store.transaction():
        clear_alarm(core, "fault:dtg-1", "cleared")
    await _until(lambda: stats.replans == 4)
    assert stats.last_reasons == ("station dtg-1 back",)

    # Red caps arrive: the shortage clears, the order is planned.
    stock = stock_doc()
    for item in stock["items"]:
        if item["material"] == "BLANK-CAP-RED":
            item["qty"] = 50
    line.send("in/masterdata/stock", stock)
    await _until(lambda: stats.replans == 5)
    assert stats.last_reasons == ("shortage cleared",)
    assert (await api.get("/api/plan/orders/SO-RED")).json()["planned"] is True

    # A print running far past its standard time (45 s × 2 + 60 s grace).
    _start_next(line.svc, "dtg-2", "OP-1001")
    clock.advance(100)
    assert planner.check_overruns() == 0
    clock.advance(60)
    assert planner.check_overruns() == 1
    assert planner.check_overruns() == 0  # asked once per task
    await _until(lambda: stats.replans == 6)
    assert stats.last_reasons == ("task far off its standard time",)

    # The line lead asks.
    assert (await api.post("/api/plan/replan")).json()["ok"] is True
    await _until(lambda: stats.replans == 7)
    assert stats.last_reasons == ("asked",)


def _do_in(svc: StationService, clock: ManualClock, station: str, badge: str, s: int) -> None:
    """The station's next task, done in ``s`` seconds of line time."""
    task = _start_next(svc, station, badge)
    clock.advance(s)
    for i, _ in enumerate(task["checklist"]):
        svc.checklist(station, i, True)
    assert svc.complete(station).ok


async def test_early_completions_replan_together_not_one_by_one(
    running: tuple[Line, httpx.AsyncClient], clock: ManualClock
) -> None:
    line, _ = running
    planner = _planner(line)
    stats = planner.replanner.stats
    await _until(lambda: stats.replans == 1)
    for n in range(30):
        line.send("in/orders", _order(f"SO-{n}", ("CAP-EMB-NAVY", 1, {"thread_color": "gold"})))
    await _until(lambda: stats.replans == 2)
    # 30 caps: 30 x (150 s of embroidery + 20 s of packing) and a 120 s thread change of
    # station time in the plan; a replan once early completions freed a tenth of it.
    assert planner.early_threshold_s() == pytest.approx(0.1 * (30 * (150 + 20) + 120))
    # Embroidery done in 10 s of its 150: 140 s freed each time. The one-by-one rule asked
    # for a replan at every one of these (10 x 2 + 60 s grace < 150).
    per_request = math.ceil(planner.early_threshold_s() / 140)
    _do_in(line.svc, clock, "emb-1", "OP-1003", 10)
    assert stats.requests[EARLY_REASON] == 0
    for _ in range(21):
        _do_in(line.svc, clock, "emb-1", "OP-1003", 10)
    assert stats.requests[EARLY_REASON] == 22 // per_request == 5
    # Asked within one burst: one replan.
    await _until(lambda: stats.replans == 3)
    await asyncio.sleep(1.0)
    assert stats.replans == 3 and stats.last_reasons == (EARLY_REASON,)
    # The replan saw every completion so far: the sum starts over. Two more early caps
    # stay under the new plan's threshold, though with the two before they would not.
    threshold = planner.early_threshold_s()
    assert 2 * 140 < threshold <= 4 * 140
    for _ in range(2):
        _do_in(line.svc, clock, "emb-1", "OP-1003", 10)
    assert stats.requests[EARLY_REASON] == 5
    # Done at or over their standard time: not early (long overruns are the watch's).
    for _ in range(3):
        _do_in(line.svc, clock, "emb-1", "OP-1003", 150)
    assert stats.requests[EARLY_REASON] == 5


async def test_the_rule_takes_over_when_the_solver_is_killed(
    running: tuple[Line, httpx.AsyncClient],
) -> None:
    line, api = running
    planner = _planner(line)
    stats = planner.replanner.stats
    await _until(lambda: stats.replans == 1)

    async def kill_the_next_solve() -> None:
        await _until(lambda: planner.worker.pid is not None)
        pid = planner.worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

    for n in range(6):
        line.send("in/orders", _order(f"SO-{n}", ("TEE-WHT-M", 1, STANDARD), hours=8 - n))
    await kill_the_next_solve()
    await _until(lambda: stats.failures == 1)
    assert "exited with -9" in (stats.last_error or "")
    body = (await api.get("/api/plan")).json()
    # The only plan so far is the empty one of the start.
    assert body["source"] == "rule (no plan yet)"
    assert body["plan"]["stations"] == {sid: [] for sid in line.gateway.config.stations}
    # The stations are answered at once, by the rule.
    svc = line.svc
    rule = _rule_order(line, "dtg_print")
    assert [r.task_id for r in svc.queue("dtg-1")] == rule
    svc.login("dtg-1", "OP-1001")
    assert svc.next_task("dtg-1").data["task_id"] == rule[0]

    # The next replan works; killing the one after keeps that plan.
    planner.request("asked")
    await _until(lambda: stats.replans == 2)
    assert planner.source() == "plan"
    kept = planner.replanner.current
    planner.request("asked")
    await kill_the_next_solve()
    await _until(lambda: stats.failures == 2)
    assert planner.replanner.current is kept and planner.source() == "plan"
    svc.login("dtg-2", "OP-1002")
    assert kept is not None
    planned_here = [t for t in kept.sequence("dtg-2") if t != rule[0]]
    reply = svc.next_task("dtg-2")
    if planned_here:
        assert reply.data["task_id"] == planned_here[0]
    else:
        assert reply.data["task_id"] in rule


# -- linegate plan --config ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_linegate_plan_plans_the_lines_database_when_no_gateway_runs(tmp_path: Path) -> None:
    # The orders come in and the command plans at the same instant, Thursday 10:00 on the
    # floor: on the real clock the ship-bys below would pass, and the shifts close, by date.
    gw = Gateway(_config(), data_dir=tmp_path, clock=ManualClock(MORNING))
    gw.open()
    line = Line(gw)
    line.send("in/masterdata/catalog", catalog_bytes())
    line.send("in/masterdata/stock", stock_doc())
    line.send("in/orders", _order("SO-LATE", ("TEE-WHT-M", 1, STANDARD), hours=-1))
    line.send("in/orders", _order("SO-OK", ("PEN-ENG", 1, {"fixture": "FX-PEN"}), hours=200))
    line.send("in/orders", _order("SO-RED", ("CAP-EMB-RED", 9, {"thread_color": "red"})))
    gw.store.close()
    args = ["--config", str(REFERENCE_LINE), "--data-dir", str(tmp_path), "--offline"]
    args += ["--now", MORNING.isoformat()]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "plan", *args, "--time-limit", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("This is a plan made here from ")
    assert "Plan made at" in out
    # The Gantt: a row per station, the pen's engraving on the laser.
    assert re.search(r"^laser-1 +[#s.]{60}$", out, re.MULTILINE)
    assert re.search(r"SO-OK .* engrave", out)
    # The late order and why; the order waiting for red caps.
    assert "Plan made at 10:00 " in out
    assert "Orders predicted late: 1" in out
    block = out.split("Orders predicted late: 1", 1)[1]
    assert block.splitlines()[1].lstrip().startswith("SO-LATE  ship-by 09:00, predicted 10:")
    # Nothing else waits for dtg: the ship-by had passed before the print could start.
    assert re.fullmatch(
        r"work: ship-by 09:00 already passed; its own work takes \d+ s from 10:0\d",
        block.splitlines()[2].strip(),
    )
    assert "SO-RED  material: BLANK-CAP-RED short" in out
    # The same as JSON, the shape of GET /api/plan.
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "plan", *args, "--time-limit", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    body = json.loads(done.stdout)
    assert [o["order_id"] for o in body["plan"]["late"]] == ["SO-LATE"]
    assert body["plan"]["waiting"][0]["order_id"] == "SO-RED"


async def test_linegate_plan_shows_the_plan_the_running_gateway_follows(
    running: tuple[Line, httpx.AsyncClient], clock: ManualClock
) -> None:
    line, _ = running
    stats = _planner(line).replanner.stats
    await _until(lambda: stats.replans == 1)
    line.send("in/orders", _order("SO-1", ("TEE-WHT-M", 2, STANDARD)))
    await _until(lambda: stats.replans == 2)
    # The command asks with a token, as an admin makes one (linegate tokens create).
    token = create_token(line.gateway.store, "plan cli", Role.VIEWER, clock.now()).token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "plan", "--config", str(REFERENCE_LINE),
        "--url", f"http://127.0.0.1:{line.gateway.http_port}", "--token", token,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "Queues follow: plan (from the running gateway at http://127.0.0.1:" in text
    assert text.count("SO-1  ") == 3  # two prints and the parcel
    assert "Orders predicted late: 0" in text


async def test_with_the_planner_off_the_rule_orders_every_queue(tmp_path: Path) -> None:
    gw = Gateway(_config(enabled=False), data_dir=tmp_path, clock=ManualClock(MORNING))
    gw.open()
    try:
        assert gw.planner is None and gw.stations.sequencer is None
        line = Line(gw)
        line.send("in/masterdata/catalog", catalog_bytes())
        line.send("in/masterdata/stock", stock_doc())
        for n in range(3):
            line.send("in/orders", _order(f"SO-{n}", ("TEE-WHT-M", 1, STANDARD), hours=8 - n))
        assert [r.task_id for r in gw.stations.queue("dtg-1")] == _rule_order(line, "dtg_print")
        app = create_app(
            gw.stations, gw.health, gw.floor, gw.planner, gate=gw.gate, sign_ins=gw.sign_ins
        )
        transport = httpx.ASGITransport(app=app)
        keys = issue_keys(gw.store, gw.config, gw.core.clock.now())
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", auth=keys) as api:
            body = (await api.get("/api/plan")).json()
            assert body == {"enabled": False, "source": "rule (the planner is off)", "plan": None}
            assert (await api.post("/api/plan/replan")).status_code == 409
            assert (await api.get("/api/plan/orders/SO-1")).status_code == 404
    finally:
        gw.store.close()


def test_a_failing_trigger_never_breaks_what_committed(
    planned: Line, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    line, svc = planned, planned.svc
    line.send("in/orders", _order("SO-1", ("TEE-WHT-M", 1, STANDARD)))

    def broken(task_id: int) -> int:
        raise RuntimeError(f"no standard time for {task_id}")

    monkeypatch.setattr(_planner(line), "_standard_s", broken)
    task = _start_next(svc, "dtg-1", "OP-1001")
    for i, _ in enumerate(task["checklist"]):
        svc.checklist("dtg-1", i, True)
    assert svc.complete("dtg-1").ok
    assert line.events("task.completed")
    assert "the planner's task.completed trigger failed" in caplog.text


def test_late_reasons_are_told_in_the_floors_clock_time(planned: Line, clock: ManualClock) -> None:
    line = planned
    clock.at = datetime.fromisoformat("2026-11-26T11:55:00+08:00")  # the break is at 12:00
    due = _order("SO-CAP", ("CAP-EMB-NAVY", 2, {"thread_color": "gold"}))
    due["ship_by"] = "2026-11-26T12:15:00+08:00"
    line.send("in/orders", due)
    job = LineJob(line.gateway.config, line.gateway.store.path, clock.now())
    plan = solve_line(job, time_limit_s=1.0, workers=1)
    [late] = plan.late
    assert late.order_id == "SO-CAP"
    # 120 s of setup and 2 × 150 s do not fit before the break: the second cap waits.
    assert late.reasons[0].startswith("shift: emb-1 closes at 12:00 (waited ")
    assert late.reasons[1] == "bottleneck: emb-1 (queued 300 s)"
    # After the break: the second cap 12:30-12:32:30, then its parcel packed in 30 s.
    assert plan.at(late.completion) == datetime.fromisoformat("2026-11-26T12:33:00+08:00")
