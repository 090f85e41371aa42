"""The line board's snapshot on a busy line: what one computation costs, shared by every board.

    .venv/bin/python benchmarks/bench_board.py
    .venv/bin/python benchmarks/bench_board.py --stations 30 --orders 500 --history-days 30 --json

One process: a gateway as `linegate run` builds it (no devices), on a real SQLite file in a
temporary folder, its clock fixed at 10:00 on the line (Asia/Shanghai, shifts 08:00-24:00).
The line has ``--stations`` stations (a sixth of them packing, the rest the reference
catalog's other capabilities in turn), an operator signed in at each, and ``--orders`` open
orders from the reference catalog (random SKUs, quantities and personalisations, a
carrier's cut-off today or tomorrow as ship-by). Before the measurement:

- the morning's work: ``--done`` tasks done through the station service (units made, orders
  packed), one failed and reworked in ten; then a task started at most stations, some
  paused, some handed over and not started, so every tile has something to show;
- history: the completed orders, their units, tasks and attempts copied ``--history-days``
  times into past days (SQL), so the day's queries run on a store that has lived a month;
- a few alarms (a machine fault, a printer out of paper, a shortage);
- the plan: the solver run in process on the line as it stands (``--solve-s``), made the
  planner's current plan.

Then ``BoardData.snapshot`` is timed ``--rounds`` times (p50/p99 ms, wall and the process's
CPU time, which a box busy with other work does not inflate), with the JSON
encoding (``model_dump_json``) and its size, and ``latest()`` for 10 boards at once.
``--profile N`` prints cProfile's N costliest functions of the snapshots on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud_sync.ports import InboundMessage  # noqa: E402 - after the path
from gateway.app.root import Gateway  # noqa: E402
from gateway.config.load import load_line_config  # noqa: E402
from gateway.desk.replies import Refused  # noqa: E402
from gateway.desk.service import StationService  # noqa: E402
from gateway.orderbook.alarms import raise_alarm  # noqa: E402
from gateway.percentiles import percentile  # noqa: E402
from gateway.planning.line_plan import LineJob  # noqa: E402
from gateway.planning.line_solve import solve_line  # noqa: E402
from gateway.store.rows import Severity  # noqa: E402
from gateway.web.board import BoardData  # noqa: E402

CATALOG = json.loads((ROOT / "simulators" / "data" / "reference-catalog.json").read_text())
MORNING = datetime.fromisoformat("2026-11-26T10:00:00+08:00")
CAPABILITIES = ["dtg_print", "embroider", "laser_engrave", "qc_inspect", "kit_assemble"]
# The carriers' daily cut-offs (local hour): an order's ship-by is one, today or tomorrow.
CUTOFFS = (("SF", 9), ("SF", 17), ("ZTO", 16), ("JD", 12), ("JD", 20))
# The setup keys of the reference routings, with the values orders ask for.
SETUPS = {
    "ink_profile": ("standard", "dark-underbase"),
    "thread_color": ("gold", "white", "red"),
    "fixture": ("PEN-V2", "TUMBLER-V1"),
}


class Clock:
    """The line's clock, moved by the bench."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def write_line(tmp: Path, stations: int) -> Path:
    cfg = tmp / "line"
    cfg.mkdir()
    ops = "".join(
        f'[[operators]]\nbadge = "OP-{n:04d}"\nname = "op {n}"\n\n' for n in range(stations)
    )
    (cfg / "line.toml").write_text(
        '[line]\nsite = "bench"\nline = "board"\ntimezone = "Asia/Shanghai"\n\n'
        '[hub]\ntransport = "none"\n\n'
        '[[shifts]]\nname = "early"\nstart = "08:00"\nend = "16:00"\n\n'
        '[[shifts]]\nname = "late"\nstart = "16:00"\nend = "00:00"\n\n' + ops
    )
    packs = max(1, stations // 6)
    for n in range(stations):
        cap = "pack" if n < packs else CAPABILITIES[n % len(CAPABILITIES)]
        (cfg / f"st-{n:02d}.toml").write_text(
            f'[station]\nid = "st-{n:02d}"\nname = "{cap} {n}"\ncapabilities = ["{cap}"]\n'
        )
    return cfg


def big_stock() -> dict[str, Any]:
    items = []
    for m in CATALOG["materials"]:
        item: dict[str, Any] = {"material": m["material"], "qty": 100_000_000}
        if m.get("lot_tracked"):
            item["lot"] = m["material"] + "-BENCH"
            item["expires"] = "2099-12-31"
        items.append(item)
    return {"kind": "stock", "as_of": "2026-01-01T00:00:00+00:00", "items": items}


def make_orders(n: int, rng: random.Random, first: int) -> list[bytes]:
    skus = [s["sku"] for s in CATALOG["skus"]]
    out = []
    for i in range(first, first + n):
        lines = []
        for _ in range(rng.choice((1, 1, 1, 2))):
            person = {k: rng.choice(v) for k, v in SETUPS.items()}
            person |= {"text": f"Happy birthday {i} 生日快乐", "font": "Serif"}
            lines.append(
                {
                    "sku": rng.choice(skus),
                    "qty": rng.choice((1, 1, 1, 2, 3)),
                    "personalization": person,
                }
            )
        carrier, cutoff = rng.choice(CUTOFFS)
        ship_by = MORNING.replace(hour=cutoff) + timedelta(days=rng.choice((0, 0, 1)))
        out.append(
            json.dumps(
                {
                    "order_id": f"SO-{i:06d}",
                    "ship_by": ship_by.isoformat(),
                    "priority": rng.choice((5, 5, 5, 7, 9)),
                    "carrier": carrier,
                    "lines": lines,
                },
                ensure_ascii=False,
            ).encode()
        )
    return out


def take(svc: StationService, station: str) -> dict[str, Any] | None:
    """Take the station's next task and start it (unit scanned, materials, all that a start
    needs); its view, or None when nothing is waiting."""
    try:
        svc.next_task(station)
    except Refused:
        return None
    task: dict[str, Any] | None = svc.view(station)["task"]
    if task is None:
        return None
    if task["serial"] is None:
        for u in task["units"]:
            svc.scan(station, u["serial"])
    elif task["status"] == "dispatched":
        svc.scan(station, task["serial"])
    for m in task["materials"]:
        svc.scan(station, m["suggested_lot"] or m["material"])
    if task["serial"] is not None:
        svc.start(station)
    return task


def finish(svc: StationService, station: str, task: dict[str, Any], fail: bool) -> None:
    if task["serial"] is None:
        reply = svc.weight(station, task["expected_weight_g"])
        svc.scan(station, reply.data["label_id"])
        return
    if fail and task["checklist"]:
        svc.checklist(station, 0, False)
        svc.fail(station, "bench defect", "rework")
        again = svc.view(station)["task"]
        for m in again["materials"]:
            svc.scan(station, m["suggested_lot"] or m["material"])
        svc.start(station)
    for i, _ in enumerate(task["checklist"]):
        svc.checklist(station, i, True)
    svc.complete(station)


def work_the_morning(gw: Gateway, clock: Clock, done: int, rng: random.Random) -> int:
    """Do ``done`` tasks from 08:00, station after station; returns how many were done."""
    svc = gw.stations
    stations = list(gw.config.stations)
    for n, sid in enumerate(stations):
        svc.login(sid, f"OP-{n:04d}")
    clock.at = MORNING - timedelta(hours=2)
    count = idle = 0
    while count < done and idle < len(stations):
        sid = stations[count % len(stations)] if idle == 0 else rng.choice(stations)
        clock.at += timedelta(seconds=7200 / max(1, done))
        task = take(svc, sid)
        if task is None:
            idle += 1
            continue
        idle = 0
        finish(svc, sid, task, fail=rng.random() < 0.1)
        count += 1
    return count


def leave_work_in_progress(gw: Gateway, clock: Clock, rng: random.Random) -> None:
    """Most stations busy at 10:00: running (started minutes ago), paused, or handed over."""
    svc = gw.stations
    for sid in gw.config.stations:
        clock.at = MORNING - timedelta(seconds=rng.uniform(10, 300))
        task = take(svc, sid)
        if task is not None and task["serial"] is not None and rng.random() < 0.15:
            svc.pause(sid, "bench: waiting for the lead")
    clock.at = MORNING


def copy_history(gw: Gateway, days: int) -> None:
    """The completed orders and what they were made of, copied into each of ``days`` past
    days (ids suffixed, instants moved), as a store that has worked a month holds them."""
    conn = gw.store.conn
    with gw.store.transaction():
        for d in range(1, days + 1):
            shift = f"-{d} days"
            sfx = f"-H{d:03d}"
            conn.execute(
                "INSERT INTO orders SELECT order_id || ?, revision, status, "
                "datetime(ship_by, ?), priority, catalog_version, doc, "
                "datetime(accepted_at, ?), datetime(completed_at, ?), units, weight_g, "
                "label_id, cancel_reason FROM orders WHERE status = 'completed' "
                "AND order_id NOT LIKE '%-H%'",
                (sfx, shift, shift, shift),
            )
            conn.execute(
                "INSERT INTO units SELECT serial || ?, order_id || ?, wo_id, unit_index, "
                "status, kitted, replaces, datetime(created_at, ?), datetime(completed_at, ?) "
                "FROM units WHERE order_id IN (SELECT order_id FROM orders "
                "WHERE status = 'completed' AND order_id NOT LIKE '%-H%')",
                (sfx, sfx, shift, shift),
            )
            conn.execute(
                "INSERT INTO attempts (task_id, order_id, serial, op, attempt, station, "
                "operator, machine, started_at, ended_at, outcome, lots, reason) "
                "SELECT task_id, order_id || ?, serial || ?, op, attempt, station, operator, "
                "machine, datetime(started_at, ?), datetime(ended_at, ?), outcome, lots, reason "
                "FROM attempts WHERE order_id NOT LIKE '%-H%'",
                (sfx, sfx, shift, shift),
            )
            conn.execute(
                "INSERT INTO tasks (order_id, serial, wo_id, op, op_index, capability, "
                "status, ship_by, priority, station, operator, machine, attempt, "
                "dispatched_at, started_at, completed_at, work) "
                "SELECT order_id || ?, serial || ?, wo_id, op, op_index, capability, status, "
                "datetime(ship_by, ?), priority, station, operator, machine, attempt, "
                "datetime(dispatched_at, ?), datetime(started_at, ?), "
                "datetime(completed_at, ?), work FROM tasks WHERE status = 'done' "
                "AND order_id NOT LIKE '%-H%'",
                (sfx, sfx, shift, shift, shift, shift),
            )


def raise_some_alarms(gw: Gateway, stations: list[str]) -> None:
    core = gw.core
    with core.store.transaction():
        raise_alarm(
            core,
            f"machine:{stations[-1]}/machine:fault",
            "machine_fault",
            f"{stations[-1]}/machine",
            Severity.MAJOR,
            "bench: lid opened",
        )
        raise_alarm(
            core,
            f"printer:{stations[0]}/printer",
            "printer_problem",
            f"{stations[0]}/printer",
            Severity.MAJOR,
            "bench: paper out",
        )
        raise_alarm(
            core, "shortage:POLYBAG", "material_shortage", "POLYBAG", Severity.WARNING, "bench"
        )


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-board-"))
    config = load_line_config(write_line(tmp, args.stations))
    clock = Clock(MORNING - timedelta(hours=3))
    gw = Gateway(config, data_dir=tmp, clock=clock)
    gw.open()
    deliver = gw.inbound.deliver
    deliver([InboundMessage("in/masterdata/catalog", json.dumps(CATALOG).encode())])
    deliver([InboundMessage("in/masterdata/stock", json.dumps(big_stock()).encode())])
    # The morning's orders, worked; then the open ones.
    early = make_orders(args.done // 2, rng, 0)
    deliver([InboundMessage("in/orders", o) for o in early])
    t0 = time.perf_counter()
    done = work_the_morning(gw, clock, args.done, rng)
    worked_s = time.perf_counter() - t0
    deliver([InboundMessage("in/orders", o) for o in make_orders(args.orders, rng, len(early))])
    leave_work_in_progress(gw, clock, rng)
    copy_history(gw, args.history_days)
    raise_some_alarms(gw, list(config.stations))
    store = gw.store
    counts = {
        table: store.count(f"SELECT count(*) FROM {table}")
        for table in ("orders", "units", "tasks", "attempts")
    }
    open_orders = store.count(
        "SELECT count(*) FROM orders WHERE status IN ('released', 'waiting_material')"
    )
    planner = gw.planner
    assert planner is not None
    t0 = time.perf_counter()
    plan = solve_line(
        LineJob(config, store.path, clock.now()), time_limit_s=args.solve_s, workers=args.workers
    )
    solve_s = time.perf_counter() - t0
    planner.replanner.current = replace(plan, received=time.monotonic())

    board = BoardData(gw.stations, gw.floor, planner)
    first = board.snapshot(clock.now())  # the plan's tasks are read once per plan
    # As the running gateway does once started (gateway/app/root.py): what lives as long as
    # the process is kept out of the collector's scans.
    gc.collect()
    gc.freeze()
    collections = sum(st["collections"] for st in gc.get_stats())
    took: list[float] = []
    cpu: list[float] = []  # the process's CPU time: what a loaded box does not inflate
    encode: list[float] = []
    profile = cProfile.Profile() if args.profile else None
    for n in range(args.rounds):
        clock.at = MORNING + timedelta(seconds=n)
        if profile is not None:
            profile.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        snap = board.snapshot(clock.now())
        took.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        if profile is not None:
            profile.disable()
        t0 = time.perf_counter()
        doc = snap.model_dump_json()
        encode.append((time.perf_counter() - t0) * 1000)
    if profile is not None:
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumtime").print_stats(args.profile)

    async def ten_boards() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(board.latest() for _ in range(10)))
        return (time.perf_counter() - t0) * 1000

    collections = sum(st["collections"] for st in gc.get_stats()) - collections
    shared_ms = asyncio.run(ten_boards())
    states: dict[str, int] = {}
    for t in first.stations:
        states[t.state.value] = states.get(t.state.value, 0) + 1
    store.close()
    return {
        "stations": args.stations,
        "open_orders": open_orders,
        "tasks_done_this_morning": done,
        "morning_worked_s": round(worked_s, 1),
        "rows": counts,
        "history_days": args.history_days,
        "plan": {
            "solve_s": round(solve_s, 2),
            "tasks": len(plan.planned),
            "late_orders": len(plan.late),
        },
        "board": {
            "states": states,
            "at_risk": len(first.at_risk),
            "gantt_tasks": sum(len(r.tasks) for r in first.gantt),
            "alarms": len(first.alarms),
            "hours": len(first.output_by_hour),
            "otd": first.otd_today.model_dump(),
            "fpy": first.fpy_today.model_dump(),
            "flow": first.flow,
            "json_kib": round(len(doc) / 1024, 1),
        },
        "snapshot_ms": ms(took),
        "snapshot_cpu_ms": ms(cpu),
        "json_ms": ms(encode),
        "latest_10_boards_ms": round(shared_ms, 2),
        "latest_computations": board.computations,
        "rounds": args.rounds,
        "gc_collections": collections,
        "loadavg": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=30)
    parser.add_argument("--orders", type=int, default=500, help="open orders at 10:00")
    parser.add_argument("--done", type=int, default=600, help="tasks done this morning")
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--solve-s", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    b, s, c = result["board"], result["snapshot_ms"], result["snapshot_cpu_ms"]
    print(
        f"line: {result['stations']} stations, {result['open_orders']} open orders, "
        f"{result['tasks_done_this_morning']} tasks done this morning, "
        f"{result['history_days']} days of history {result['rows']}"
    )
    print(
        f"plan: {result['plan']['tasks']} tasks, {result['plan']['late_orders']} late "
        f"(solved in {result['plan']['solve_s']} s)"
    )
    print(
        f"board: {b['states']}, {b['at_risk']} at risk, {b['gantt_tasks']} Gantt tasks, "
        f"{b['alarms']} alarms, {b['hours']} hours, OTD {b['otd']}, FPY {b['fpy']}, "
        f"flow {b['flow']}, {b['json_kib']} KiB of JSON"
    )
    print(
        f"snapshot(): p50 {s['p50']} ms, p99 {s['p99']} ms, max {s['max']} ms "
        f"({result['rounds']} rounds); CPU p50 {c['p50']} ms, p99 {c['p99']} ms; "
        f"JSON p50 {result['json_ms']['p50']} ms; "
        f"latest() for 10 boards: {result['latest_10_boards_ms']} ms, "
        f"{result['latest_computations']} computation; {result['gc_collections']} "
        f"collections, load average {result['loadavg']}"
    )


if __name__ == "__main__":
    main()
