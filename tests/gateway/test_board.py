"""The line board's data: station tiles in andon states, alarms, OTD and FPY of the local
day, output by local hour, the plan's late orders and Gantt, and one shared snapshot.

Real parts: the store on a real SQLite file, the line worked through the StationService,
the solver (in process) for a plan, and the simulated machines for a fault. The clock is a
manual one: nothing depends on when the test runs. Expected values come from the
definitions (gateway/web/board.py's precedence, gateway/orderbook/kpi.py's OTD and FPY).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers.opcua_machine.packml import PackMLState
from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.numbers.elements import compute
from gateway.numbers.kpis import kpi_doc
from gateway.orderbook.alarms import acknowledge, raise_alarm
from gateway.planning.line_plan import LineJob
from gateway.planning.line_solve import solve_line
from gateway.store.rows import Severity, TaskStatus
from gateway.web.board import AndonColor, AndonState, Board, BoardData, StationTile
from gateway.web.board_bottleneck import REFRESH_S
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import (
    REFERENCE_LINE,
    Line,
    catalog_bytes,
    do_unit_task,
    pack,
    stock_doc,
)
from tests.gateway.floor_fixture import FloorRig, floor_rig, until

# The reference line: Asia/Shanghai, shifts 08:00-16:00 and 16:00-24:00.
TZ = "+08:00"
KIT = "KIT-XMAS-A"  # assembled at kit-1 by hand (checklist of 2), then packed (310 ± 12 g)


def local(text: str) -> datetime:
    """A time on the reference line's wall clock: "2026-11-26 09:30"."""
    return datetime.fromisoformat(text.replace(" ", "T") + TZ)


def _config(**changes: Any) -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    # No devices: the stations are worked through the service (the fault test has them).
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    settings = config.planner.model_copy(update={"time_limit_s": 1.0, "interval_s": 3600.0})
    return config.model_copy(update={"stations": stations, "planner": settings, **changes})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(LINE_MORNING)


def _line(tmp_path: Path, clock: ManualClock, config: LineConfig) -> Iterator[Line]:
    gw = Gateway(config, data_dir=tmp_path, clock=clock)
    gw.open()
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    yield ln
    gw.store.close()


@pytest.fixture
def line(tmp_path: Path, clock: ManualClock) -> Iterator[Line]:
    yield from _line(tmp_path, clock, _config())


def board_of(line: Line) -> BoardData:
    gw = line.gateway
    return BoardData(gw.stations, gw.floor, gw.planner)


def tile(board: Board, station: str) -> StationTile:
    return next(t for t in board.stations if t.station == station)


def order(order_id: str, sku: str, ship_by: datetime, **personalization: str) -> dict[str, Any]:
    line: dict[str, Any] = {"sku": sku, "qty": 1}
    if personalization:
        line["personalization"] = personalization
    return {"order_id": order_id, "ship_by": ship_by.isoformat(), "lines": [line]}


def start_print(svc: StationService, station: str, badge: str) -> dict[str, Any]:
    """Sign in, take the next task, scan its unit and materials, start it; its view."""
    svc.login(station, badge)
    svc.next_task(station)
    task: dict[str, Any] = svc.view(station)["task"]
    svc.scan(station, task["serial"])
    for m in task["materials"]:
        svc.scan(station, m["suggested_lot"] or m["material"])
    assert svc.start(station).ok
    return task


# -- station tiles --------------------------------------------------------------------------


def test_a_running_task_shows_its_operator_order_and_time_against_standard(
    line: Line, clock: ManualClock
) -> None:
    line.send("in/orders", order("SO-1", "TEE-WHT-M", local("2026-11-26 18:00")))
    task = start_print(line.svc, "dtg-1", "OP-1001")
    started = clock.now()
    clock.advance(30)
    shown = tile(board_of(line).snapshot(clock.now()), "dtg-1")
    assert shown.state is AndonState.RUNNING
    assert (shown.label, shown.label_zh, shown.color) == ("Running", "运行", AndonColor.GREEN)
    assert shown.operator is not None
    assert (shown.operator.badge, shown.operator.name) == ("OP-1001", "王芳 Wang Fang")
    assert (shown.order_id, shown.serial, shown.op) == ("SO-1", task["serial"], "print")
    assert shown.task_status is TaskStatus.RUNNING
    assert shown.task_started_at == started
    assert shown.elapsed_s == 30.0
    assert shown.standard_s == 45.0  # R-TEE-DTG's print: run_s 45 in the reference catalog
    assert shown.reason is None


def test_a_paused_task_is_held_with_its_reason_and_runs_again_once_resumed(
    line: Line, clock: ManualClock
) -> None:
    line.send("in/orders", order("SO-1", "TEE-WHT-M", local("2026-11-26 18:00")))
    start_print(line.svc, "dtg-1", "OP-1001")
    line.svc.pause("dtg-1", "ink cartridge change")
    board = board_of(line)
    shown = tile(board.snapshot(clock.now()), "dtg-1")
    assert shown.state is AndonState.HELD
    assert (shown.label, shown.label_zh, shown.color) == ("Held", "暂停", AndonColor.AMBER)
    assert shown.reason == "paused: ink cartridge change"
    line.svc.resume("dtg-1")
    assert tile(board.snapshot(clock.now()), "dtg-1").state is AndonState.RUNNING


def test_a_weight_out_of_tolerance_holds_the_station_until_a_lead_overrides(
    line: Line, clock: ManualClock
) -> None:
    svc = line.svc
    line.send("in/orders", order("SO-1", KIT, local("2026-11-26 18:00")))
    svc.login("kit-1", "OP-1007")
    do_unit_task(svc, "kit-1")
    svc.login("pack-1", "OP-1001")
    svc.next_task("pack-1")
    task = svc.view("pack-1")["task"]
    for u in task["units"]:
        svc.scan("pack-1", u["serial"])
    for m in task["materials"]:
        svc.scan("pack-1", m["suggested_lot"] or m["material"])
    assert not svc.weight("pack-1", task["expected_weight_g"] + 100).ok
    board = board_of(line)
    shown = tile(board.snapshot(clock.now()), "pack-1")
    assert shown.state is AndonState.HELD
    assert shown.reason is not None and "out of tolerance" in shown.reason
    svc.override("pack-1", "weight", "gift wrap is heavier", "lead")
    assert tile(board.snapshot(clock.now()), "pack-1").state is AndonState.RUNNING


def test_without_an_operator_a_station_is_offline_and_signed_in_it_is_idle_or_starved(
    line: Line, clock: ManualClock
) -> None:
    svc = line.svc
    board = board_of(line)
    shown = tile(board.snapshot(clock.now()), "dtg-1")
    assert shown.state is AndonState.OFFLINE and shown.color is AndonColor.GREY
    assert (shown.label, shown.label_zh, shown.operator) == ("Offline", "离线", None)
    svc.login("dtg-1", "OP-1001")
    shown = tile(board.snapshot(clock.now()), "dtg-1")
    assert (shown.state, shown.queue_len, shown.color) == (
        AndonState.STARVED,
        0,
        AndonColor.AMBER,
    )
    line.send("in/orders", order("SO-1", "TEE-WHT-M", local("2026-11-26 18:00")))
    line.send("in/orders", order("SO-2", "TEE-WHT-M", local("2026-11-26 18:00")))
    shown = tile(board.snapshot(clock.now()), "dtg-1")
    assert (shown.state, shown.queue_len, shown.color) == (AndonState.IDLE, 2, AndonColor.SLATE)
    # Signing out with a task running pauses it: the station is held, not offline.
    start_print(svc, "dtg-2", "OP-1002")
    svc.logout("dtg-2")
    shown = tile(board.snapshot(clock.now()), "dtg-2")
    assert shown.state is AndonState.HELD and shown.operator is None


def test_a_planned_changeover_before_a_task_shows_setup(line: Line, clock: ManualClock) -> None:
    svc = line.svc
    line.send(
        "in/orders",
        order("SO-1", "CAP-EMB-NAVY", local("2026-11-26 18:00"), thread_color="gold"),
    )
    install_plan(line, clock)
    svc.login("emb-1", "OP-1003")
    svc.next_task("emb-1")
    shown = tile(board_of(line).snapshot(clock.now()), "emb-1")
    # R-CAP-EMB's embroider: setup_s 120 when its thread colour is not the station's.
    assert (shown.state, shown.setup_s, shown.color) == (AndonState.SETUP, 120, AndonColor.BLUE)
    assert shown.task_status is TaskStatus.DISPATCHED


# -- alarms ---------------------------------------------------------------------------------


def test_alarms_are_listed_worst_first_with_their_age_and_stop_their_station(
    line: Line, clock: ManualClock
) -> None:
    core = line.gateway.core
    with core.store.transaction():
        raise_alarm(core, "shortage:INK", "material_shortage", "INK", Severity.WARNING, "no ink")
    clock.advance(60)
    with core.store.transaction():
        raise_alarm(
            core,
            "printer:pack-1/printer",
            "printer_problem",
            "pack-1/printer",
            Severity.MAJOR,
            "pack-1/printer: paper out",
        )
    clock.advance(30)
    with core.store.transaction():
        acknowledge(core, "printer:pack-1/printer", "lead")
    clock.advance(15)
    board = board_of(line).snapshot(clock.now())
    major, warning = board.alarms
    assert (major.alarm_id, major.station, major.age_s) == ("printer:pack-1/printer", "pack-1", 45)
    assert (major.acked_by, major.acked_at) == ("lead", clock.now() - timedelta(seconds=15))
    assert (warning.alarm_id, warning.station, warning.age_s) == ("shortage:INK", None, 105)
    # Raised in words the line did not write: the same in every language (or none yet).
    assert warning.message == "no ink" and warning.message_zh in ("no ink", None)
    shown = tile(board, "pack-1")
    assert shown.state is AndonState.FAULT and shown.color is AndonColor.RED
    assert (shown.reason, shown.open_alarms) == ("pack-1/printer: paper out", 1)
    assert tile(board, "kit-1").open_alarms == 0


async def test_a_faulted_machine_shows_fault_and_running_again_once_cleared(
    tmp_path: Path,
) -> None:
    async with floor_rig(tmp_path) as rig:
        board = BoardData(rig.svc, rig.gateway.floor, rig.gateway.planner)
        machine = rig.sim.machines["laser-1"]
        machine.cycle_s = 5.0  # the job outlasts the test's looks at it

        def state() -> AndonState:
            return tile(board.snapshot(rig.gateway.core.clock.now()), "laser-1").state

        engrave(rig, "SO-1")
        async with asyncio.timeout(5):
            await machine.wait_for_state(PackMLState.EXECUTE)
        await until("running", lambda: state() is AndonState.RUNNING)
        await machine.fault("lid opened")
        await until("fault", lambda: state() is AndonState.FAULT)
        shown = tile(board.snapshot(rig.gateway.core.clock.now()), "laser-1")
        assert shown.reason == "laser-1/machine is HELD: lid opened"
        assert shown.machine is not None and shown.machine.state == "HELD"
        assert shown.machine.connected and shown.machine.fault == "lid opened"
        assert shown.task_status is TaskStatus.PAUSED and shown.open_alarms == 1
        await machine.clear_fault()
        await until("running again", lambda: state() is AndonState.RUNNING)
        shown = tile(board.snapshot(rig.gateway.core.clock.now()), "laser-1")
        assert shown.open_alarms == 0 and shown.task_status is TaskStatus.RUNNING
        assert {d.device: d.ok for d in shown.devices} == {"machine": True, "printer": True}


def engrave(rig: FloorRig, order_id: str) -> None:
    """An engraving of one pen started at laser-1 (its job goes to the machine)."""
    doc = order(order_id, "PEN-ENG", local("2030-01-01 10:00"), text="For Ana", font="Script")
    doc["lines"][0]["personalization"]["fixture"] = "PEN-V2"
    rig.send("in/orders", doc)
    start_print(rig.svc, "laser-1", "OP-1002")


# -- the day's KPIs and output --------------------------------------------------------------


def test_otd_and_fpy_of_the_local_day_count_by_their_definitions(
    line: Line, clock: ManualClock
) -> None:
    svc = line.svc
    clock.at = local("2026-11-25 21:00")  # yesterday: E is due and its unit made
    line.send("in/orders", order("E", KIT, local("2026-11-25 18:00")))
    svc.login("kit-1", "OP-1007")
    svc.login("pack-1", "OP-1001")
    clock.at = local("2026-11-25 23:30")
    do_unit_task(svc, "kit-1")
    clock.at = local("2026-11-26 07:00")
    for oid, due in (("A", "09:00"), ("B", "09:30"), ("C", "09:50"), ("D", "15:00")):
        line.send("in/orders", order(oid, KIT, local(f"2026-11-26 {due}")))
    clock.at = local("2026-11-26 08:10")
    assert pack(svc, "pack-1") == "E"  # completed today, due yesterday
    clock.at = local("2026-11-26 08:20")
    assert do_unit_task(svc, "kit-1")["order_id"] == "A"
    clock.at = local("2026-11-26 08:30")
    assert pack(svc, "pack-1") == "A"  # on time
    clock.at = local("2026-11-26 09:00")
    svc.next_task("kit-1")
    b = svc.view("kit-1")["task"]
    assert b["order_id"] == "B"
    svc.scan("kit-1", b["serial"])
    for m in b["materials"]:
        svc.scan("kit-1", m["suggested_lot"] or m["material"])
    svc.start("kit-1")
    svc.checklist("kit-1", 1, False)
    svc.fail("kit-1", "seal torn", "rework")  # B's unit fails once
    for m in svc.view("kit-1")["task"]["materials"]:
        svc.scan("kit-1", m["suggested_lot"] or m["material"])
    svc.start("kit-1")
    svc.checklist("kit-1", 0, True)
    svc.checklist("kit-1", 1, True)
    clock.at = local("2026-11-26 09:05")
    assert svc.complete("kit-1").ok
    clock.at = local("2026-11-26 09:40")
    assert do_unit_task(svc, "kit-1")["order_id"] == "C"  # C is not packed: late at 09:50
    clock.at = local("2026-11-26 09:45")
    assert pack(svc, "pack-1") == "B"  # late
    clock.at = local("2026-11-26 10:00")
    board = board_of(line).snapshot(clock.now())
    # OTD: orders due today so far (A, B, C; not E, due yesterday, nor D, due at 15:00),
    # on time: A only.
    assert (board.otd_today.numerator, board.otd_today.denominator) == (1, 3)
    # FPY: units finished today (A, B, C; E's was yesterday), first time: A and C.
    assert (board.fpy_today.numerator, board.fpy_today.denominator) == (2, 3)
    # The same as the kpi.snapshot of the day so far says (the board counts as it does).
    day = compute(line.gateway.core, local("2026-11-26 00:00"), clock.now())
    line_kpis = kpi_doc(day)["line"]
    for mine, theirs in ((board.otd_today, line_kpis["otd"]), (board.fpy_today, line_kpis["fpy"])):
        assert (mine.numerator, mine.denominator, mine.value) == (
            theirs["numerator"],
            theirs["denominator"],
            theirs["ratio"],
        )
    hours = {h.label: (h.done, h.orders_done) for h in board.output_by_hour}
    assert hours["08:00"] == (1, 2)  # A's unit; E and A packed
    assert hours["09:00"] == (2, 1)  # B's and C's units; B packed
    # Open orders by stage (gateway/orderbook/flow.py): C's unit is made (in process), D's
    # is kitted and not begun (queued); E, A and B completed today, none cancelled.
    assert board.flow == {
        "waiting_material": 0,
        "queued": 1,
        "in_process": 1,
        "packing": 0,
        "completed": 3,
        "cancelled": 0,
    }
    # Cut-offs (no carrier named): the day's completed orders and the open ones, by ship-by.
    assert [(c["ship_by"], c["orders"], c["left"]) for c in board.cutoffs] == [
        ("2026-11-25T10:00:00.000+00:00", 1, 0),  # E
        ("2026-11-26T01:00:00.000+00:00", 1, 0),  # A
        ("2026-11-26T01:30:00.000+00:00", 1, 0),  # B
        ("2026-11-26T01:50:00.000+00:00", 1, 1),  # C
        ("2026-11-26T07:00:00.000+00:00", 1, 1),  # D
    ]


def test_output_by_hour_counts_in_the_lines_local_hours(line: Line, clock: ManualClock) -> None:
    svc = line.svc
    clock.at = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    line.send("in/orders", order("Y", KIT, local("2026-11-26 18:00")))
    line.send("in/orders", order("Z", KIT, local("2026-11-26 19:00")))
    svc.login("kit-1", "OP-1007")
    clock.at = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # 23:30 local: the day before
    do_unit_task(svc, "kit-1")
    clock.at = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # 07:30 local on the 26th
    do_unit_task(svc, "kit-1")
    board = board_of(line).snapshot(datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    assert board.day.isoformat() == "2026-11-26" and board.timezone == "Asia/Shanghai"
    output = board.output_by_hour
    # From the 07:00 hour (output before the first shift at 08:00) to the late shift's end.
    assert [h.label for h in output] == [f"{h:02d}:00" for h in range(7, 24)]
    assert output[0].hour == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert [h.done for h in output] == [1] + [0] * 16


def test_a_line_without_shifts_shows_the_day_from_midnight(
    tmp_path: Path, clock: ManualClock
) -> None:
    for ln in _line(tmp_path, clock, _config(shifts=[])):
        output = board_of(ln).snapshot(clock.now()).output_by_hour
        assert [h.label for h in output] == [f"{h:02d}:00" for h in range(24)]


# -- the plan -------------------------------------------------------------------------------


def _hour(ts: datetime) -> str:
    """The label of the line's local hour of ``ts``."""
    return f"{ts.astimezone(local('2026-11-26 00:00').tzinfo).hour:02d}:00"


def install_plan(line: Line, clock: ManualClock) -> None:
    """Solve the line as it stands and make it the planner's current plan."""
    planner = line.gateway.planner
    assert planner is not None
    job = LineJob(line.gateway.config, line.gateway.store.path, clock.now())
    plan = solve_line(job, time_limit_s=1.0, workers=1)
    planner.replanner.current = replace(plan, received=time.monotonic())


def test_late_orders_and_the_gantt_come_from_the_current_plan(
    line: Line, clock: ManualClock
) -> None:
    clock.at = local("2026-11-26 11:55")  # emb-1 breaks at 12:00-12:30
    gold = {"thread_color": "gold"}
    cap = order("SO-CAP", "CAP-EMB-NAVY", local("2026-11-26 12:15"))
    cap["lines"][0].update(qty=2, personalization=gold)
    line.send("in/orders", cap)
    line.send("in/orders", order("SO-TEE", "TEE-WHT-M", local("2026-11-26 18:00")))
    board_data = board_of(line)
    assert board_data.snapshot(clock.now()).at_risk == []  # no plan yet
    install_plan(line, clock)
    board = board_data.snapshot(clock.now())
    [late] = board.at_risk
    assert late.order_id == "SO-CAP" and late.ship_by == local("2026-11-26 12:15")
    # 120 s of setup and 2 × 150 s do not fit before the break: the second cap after it
    # (12:30-12:32:30), then the parcel packed in 20 s + 10 s for the second unit.
    assert late.predicted_completion == local("2026-11-26 12:33")
    assert late.late_s == 18 * 60
    assert late.reasons[0].startswith("shift: emb-1 closes at 12:00")
    rows = {r.station: r.tasks for r in board.gantt}
    assert list(rows) == list(line.gateway.config.stations)
    caps = rows["emb-1"]
    assert [(t.order_id, t.op, t.late) for t in caps] == [("SO-CAP", "embroider", True)] * 2
    assert (caps[0].start, caps[0].end) == (local("2026-11-26 11:55"), local("2026-11-26 11:59:30"))
    assert caps[0].setup_s == 120
    assert (caps[1].start, caps[1].end) == (local("2026-11-26 12:30"), local("2026-11-26 12:32:30"))
    tees = [t for r in ("dtg-1", "dtg-2") for t in rows[r]]
    assert [(t.order_id, t.op, t.late) for t in tees] == [("SO-TEE", "print", False)]
    # Units the plan completes: each cap and the tee when its one operation ends; orders:
    # SO-CAP at 12:33, SO-TEE when the plan says.
    plan = line.gateway.planner.replanner.current if line.gateway.planner else None
    assert plan is not None
    tee_done = plan.at(plan.completion["SO-TEE"])
    units = Counter(_hour(t.end) for t in (*caps, *tees))
    orders = Counter(_hour(t) for t in (local("2026-11-26 12:33"), tee_done))
    for h in board.output_by_hour:
        assert (h.planned, h.orders_planned) == (units[h.label], orders[h.label]), h
    # The first cap handed to emb-1: its bar says so.
    line.svc.login("emb-1", "OP-1003")
    line.svc.next_task("emb-1")
    bars = next(r.tasks for r in board_data.snapshot(clock.now()).gantt if r.station == "emb-1")
    assert [t.in_work for t in bars] == [True, False]
    # Far ahead, the plan has nothing left to show.
    later = board_data.snapshot(clock.now() + timedelta(hours=6))
    assert all(not r.tasks for r in later.gantt)


# -- sharing --------------------------------------------------------------------------------


async def test_latest_computes_once_for_many_callers_and_again_on_a_change(
    line: Line, clock: ManualClock
) -> None:
    ticks = [1000.0]
    gw = line.gateway
    board = BoardData(gw.stations, gw.floor, gw.planner, monotonic=lambda: ticks[0])
    first = await asyncio.gather(*(board.latest() for _ in range(10)))
    assert board.computations == 1 and all(b is first[0] for b in first)
    assert first[0].seq == gw.outbox.last_seq
    line.send("in/orders", order("SO-1", "TEE-WHT-M", local("2026-11-26 18:00")))
    ticks[0] += 0.1
    assert await board.latest() is first[0]  # within the interval: the same
    ticks[0] += 0.2
    second = await board.latest()
    assert board.computations == 2 and second.seq == gw.outbox.last_seq > first[0].seq
    ticks[0] += 1.0
    assert await board.latest() is second  # nothing changed
    line.svc.login("dtg-1", "OP-1001")  # a sign-in reports no event
    ticks[0] += 0.3
    third = await board.latest()
    assert board.computations == 3 and tile(third, "dtg-1").state is AndonState.IDLE
    board.touch()
    ticks[0] += 0.3
    assert await board.latest() is not third and board.computations == 4
    ticks[0] += 1.0
    assert await board.latest() is not None and board.computations == 4
    core = gw.core
    with core.store.transaction():
        raise_alarm(core, "shortage:INK", "material_shortage", "INK", Severity.WARNING, "ink")
    ticks[0] += 0.3
    assert (await board.latest()).alarms[0].acked_by is None and board.computations == 5
    with core.store.transaction():
        acknowledge(core, "shortage:INK", "lead")  # an acknowledgement reports no event
    ticks[0] += 0.3
    assert (await board.latest()).alarms[0].acked_by == "lead" and board.computations == 6
    clock.advance(6)
    ticks[0] += 5.0  # ages move: at least every MAX_AGE_S
    last = await board.latest()
    assert board.computations == 7 and last.as_of == clock.now()


def test_the_snapshot_is_json_and_wants_an_aware_instant(line: Line, clock: ManualClock) -> None:
    board = board_of(line)
    doc = board.snapshot(clock.now()).model_dump(mode="json")
    assert doc["as_of"] == "2026-11-26T10:00:00+08:00"
    assert doc["stations"][0]["state"] == "offline" and doc["cutoffs"] == []
    assert doc["otd_today"] == {"numerator": 0, "denominator": 0, "value": None}
    with pytest.raises(ValueError, match="aware"):
        board.snapshot(datetime(2026, 11, 26, 10, 0))  # noqa: DTZ001 - naive on purpose


# -- the bottleneck -------------------------------------------------------------------------


def test_the_bottleneck_of_the_shift_so_far_is_worked_out_at_most_once_a_minute(
    line: Line, clock: ManualClock
) -> None:
    """emb-1 embroiders from 10:00 to 15:00 in the early shift (08:00-16:00, a break
    12:00-12:30; gateway/numbers/elements.py's classes of time): by 15:00 it was busy 5 h
    (through the break: worked, so planned) and idle 08:00-10:00, 2 h: 5 / 7 = 71 % of its
    PBT, above half; every other station idle. The packing stations after it stood idle all
    their planned time: 6.5 h of 6.5 h."""
    ticks = [1000.0]
    gw = line.gateway
    board = BoardData(gw.stations, gw.floor, gw.planner, monotonic=lambda: ticks[0])
    line.send("in/orders", order("SO-1", "CAP-EMB-NAVY", local("2026-11-26 18:00")))
    start_print(line.svc, "emb-1", "OP-1003")  # taken and started at 10:00
    clock.at = local("2026-11-26 15:00")
    line.svc.checklist("emb-1", 0, True)
    line.svc.checklist("emb-1", 1, True)
    assert line.svc.complete("emb-1").ok
    first = board.snapshot(clock.now()).bottleneck
    assert first is not None
    assert (first.period, first.since) == ("shift", local("2026-11-26 08:00"))
    assert (first.found, first.station, first.stations, first.group) == (
        True,
        "emb-1",
        ["emb-1"],
        "embroider",
    )
    assert first.utilisation == pytest.approx(5 / 7, abs=1e-4)
    # Its attempt ended at 15:00, the end of [08:00, 15:00): the next period's, so no
    # queue before it is counted yet.
    assert first.queue_wait_s is None
    assert first.words.en == (
        "Bottleneck: emb-1 (embroider), 71% busy. "
        "Downstream, idle for want of work: pack-1 100%, pack-2 100%."
    )
    assert first.words.zh.startswith("瓶颈：emb-1（embroider），忙碌率 71%")
    assert board.bottleneck.computations == 1
    # Ten minutes on, within the minute of the board's own time: the same, not worked again.
    clock.advance(600)
    ticks[0] += REFRESH_S / 2
    assert board.snapshot(clock.now()).bottleneck == first
    assert board.bottleneck.computations == 1
    # Past the minute: worked out again, 10 more idle minutes: 5 / (7 + 1/6).
    ticks[0] += REFRESH_S / 2 + 1
    again = board.snapshot(clock.now()).bottleneck
    assert again is not None and board.bottleneck.computations == 2
    assert again.utilisation == pytest.approx(5 / (7 + 1 / 6), abs=1e-4)
    assert again.queue_wait_s == 0  # now counted: taken as soon as it was ready
    assert again.words.en.startswith(
        "Bottleneck: emb-1 (embroider), 70% busy, work queued a mean 0 s before it."
    )
    # A new shift is a new period: worked out at once, and nothing was busy in it yet.
    clock.at = local("2026-11-26 16:05")
    ticks[0] += 1
    late = board.snapshot(clock.now()).bottleneck
    assert late is not None and board.bottleneck.computations == 3
    assert (late.period, late.since, late.found) == ("shift", local("2026-11-26 16:00"), False)
    assert late.words.en == "No bottleneck: no station was busy; the line had no work."
    doc = board.snapshot(clock.now()).model_dump(mode="json")
    assert doc["bottleneck"]["words"] == {
        "en": "No bottleneck: no station was busy; the line had no work.",
        "zh": "无瓶颈：没有工位忙碌，产线无活可干。",
    }


def test_the_bottleneck_is_worked_out_in_parts_with_a_yield_between_them(
    line: Line, clock: ManualClock
) -> None:
    board = board_of(line)
    parts = board.bottleneck.parts(clock.now())
    steps = 0
    while True:
        try:
            next(parts)
        except StopIteration as done:
            tile = done.value
            break
        steps += 1
    assert steps > len(gw_stations(line)) and tile is not None  # a part per station at least
    cached = board.bottleneck.parts(clock.now())
    with pytest.raises(StopIteration):
        next(cached)  # kept: nothing to do, nothing to wait for


def gw_stations(line: Line) -> list[str]:
    return list(line.gateway.core.config.stations)
