"""Pick requests on a promotion day: what looking at the plan costs the gateway's loop.

    .venv/bin/python benchmarks/bench_picks.py
    .venv/bin/python benchmarks/bench_picks.py --orders 5000 --time-limit 10 --json

The gateway as `linegate run` builds it (the reference line without devices, a real SQLite
file in a temporary folder, its clock fixed at 08:00 on a surge morning) takes the surge
scenario's ``--orders`` orders (gateway/planner/scenarios.py, stock ample) and plans them
once with its planner (the solver in its worker process, ``--time-limit``). Then the pick
requests look at that plan, as gateway/planning/picks.py does in the running gateway, a
slice of tasks per step, each step timed (what an operator's scan may wait behind):

- cold: no request yet, every (station, material, lot) within the horizon is requested;
- again: the same plan at the same instant, nothing to say;
- later: the clock ten minutes on, the same plan: the horizon took in more work.

For each: the tasks within the horizon, the events emitted, the whole look's wall time,
the longest step (the loop's longest wait) and the deciding transaction's share of it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.cli.main import _without_pandas  # noqa: E402

_without_pandas()  # what `linegate run` does before it builds the gateway

from cloud_sync.ports import InboundMessage  # noqa: E402
from gateway.app.root import Gateway  # noqa: E402
from gateway.config.line import LineConfig  # noqa: E402
from gateway.config.load import load_line_config  # noqa: E402
from gateway.planner import scenarios  # noqa: E402
from gateway.planning.picks import PickPlanner  # noqa: E402

SURGE_MORNING = datetime.fromisoformat("2026-11-11T08:00:00+08:00")
DATA = ROOT / "simulators" / "data"


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def config(time_limit: float) -> LineConfig:
    cfg = load_line_config(ROOT / "station_configs" / "reference-line")
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in cfg.stations.items()}
    planner = cfg.planner.model_copy(
        update={"time_limit_s": time_limit, "interval_s": 86_400.0, "settle_s": 0.0}
    )
    # The pick requests are made below, step by step, not by the plan's adoption.
    picking = cfg.picking.model_copy(update={"enabled": False})
    return cfg.model_copy(update={"stations": stations, "planner": planner, "picking": picking})


def deliver(gw: Gateway, topic: str, doc: Any) -> None:
    gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])


class Collections:
    """The garbage collector's pauses (gc.callbacks): a full collection of this process's
    heap (5,000 orders' documents held by the benchmark itself) can land in any step, and
    is no work of the step's own."""

    def __init__(self) -> None:
        self.paused = 0.0
        self.longest = 0.0
        self._since = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._since = now
        else:
            self.paused += now - self._since
            self.longest = max(self.longest, now - self._since)


def look(picks: PickPlanner) -> dict[str, Any]:
    """One look at the plan, each step timed (with and without the collector's pauses)."""
    steps = picks.steps()
    durations: list[float] = []
    own: list[float] = []  # less the collector's pauses within the step
    emitted: int | None = None
    collections = Collections()
    gc.callbacks.append(collections)
    t0 = time.perf_counter()
    try:
        while True:
            s0, p0 = time.perf_counter(), collections.paused
            try:
                next(steps)
            except StopIteration as done:
                emitted = done.value
                break
            finally:
                durations.append(time.perf_counter() - s0)
                own.append(durations[-1] - (collections.paused - p0))
    finally:
        gc.callbacks.remove(collections)
    total = time.perf_counter() - t0
    return {
        "tasks_in_horizon": picks.stats.tasks,
        "events": emitted,
        "steps": len(durations),
        "total_ms": round(total * 1000, 1),
        "longest_step_ms": round(max(durations) * 1000, 1),
        "longest_step_without_gc_ms": round(max(own) * 1000, 1),
        "longest_gc_pause_ms": round(collections.longest * 1000, 1),
        "deciding_transaction_ms": round(durations[-1] * 1000, 1),
    }


async def plan_once(gw: Gateway) -> dict[str, Any]:
    planner = gw.planner
    assert planner is not None
    stats = planner.replanner.stats
    running = asyncio.create_task(planner.run())
    t0 = time.perf_counter()
    try:
        while stats.replans + stats.failures < 1:  # noqa: ASYNC110 - polling is the point
            await asyncio.sleep(0.01)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    live = planner.replanner.current
    return {
        "plan_s": round(time.perf_counter() - t0, 2),
        "planned_tasks": len(live.planned) if live is not None else 0,
        "failures": stats.failures,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="lg-bench-picks-"))
    clock = MovableClock(SURGE_MORNING)
    cfg = config(args.time_limit)
    gw = Gateway(cfg, data_dir=data_dir, clock=clock)
    gw.open()
    catalog = scenarios.read_catalog(DATA / "reference-catalog.json")
    stock = json.loads((DATA / "reference-stock.json").read_text())
    for item in stock["items"]:
        item["qty"] = item["qty"] * 50  # stocked up for the promotion
    deliver(gw, "in/masterdata/catalog", catalog)
    deliver(gw, "in/masterdata/stock", stock)
    spec = scenarios.SPECS["surge"]
    docs = scenarios.generate_orders(
        catalog, dataclasses.replace(spec, orders=args.orders), SURGE_MORNING, 1
    )
    for i in range(0, len(docs), 100):
        gw.inbound.deliver(
            [InboundMessage("in/orders", json.dumps(d).encode()) for d in docs[i : i + 100]]
        )
    open_tasks = gw.store.count("SELECT count(*) FROM tasks WHERE status != 'done'")
    planning = asyncio.run(plan_once(gw))
    assert gw.planner is not None
    out: dict[str, Any] = {
        "orders": args.orders,
        "open_tasks": open_tasks,
        **planning,
        "horizons": {},
    }
    for horizon in args.horizons:
        settings = cfg.picking.model_copy(update={"enabled": True, "horizon_min": horizon})
        with gw.store.transaction() as conn:  # each horizon starts with no request
            conn.execute("DELETE FROM pick_requests")
        clock.at = SURGE_MORNING
        picks = PickPlanner(gw.core, settings, gw.planner)
        cold = look(picks)
        again = look(picks)
        clock.at = SURGE_MORNING + timedelta(minutes=10)
        later = look(picks)
        out["horizons"][f"{horizon:g} min"] = {"cold": cold, "again": again, "later": later}
    gw.store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--horizons", type=float, nargs="+", default=[120.0, 480.0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key, value in result.items():
        if key != "horizons":
            print(f"{key:20} {value}")
    for horizon, looks in result["horizons"].items():
        for name, found in looks.items():
            print(f"horizon {horizon:8} {name:6} {found}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
