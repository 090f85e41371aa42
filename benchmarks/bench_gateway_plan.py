"""The planner inside the gateway on a promotion surge: how soon the line has a plan, what
planning costs the gateway's own memory, how fast a station is answered from the plan.

    .venv/bin/python benchmarks/bench_gateway_plan.py
    .venv/bin/python benchmarks/bench_gateway_plan.py --orders 2000 --time-limit 10 --json

One process is the gateway, as `linegate run` builds it (pandas and numpy kept out, no
solver imported): the reference line without devices, on a real SQLite file in a temporary
folder, its clock fixed at 08:00 on a surge morning. The surge scenario's orders (generated
from the reference catalog, gateway/planner/scenarios.py) are accepted in one burst, the
stock being ample. Then the planner starts, exactly as the running gateway starts it, and
plans the line ``--replans`` times (the first on "start", the rest asked for):

- first plan: from the request to the solver's first plan in the gateway (the line works
  by it), and final plan: to the end of the solve (the time limit);
- the gateway's resident memory (VmRSS) before the planner starts, sampled every 5 ms
  while it plans, and after the last replan: the rise is what planning costs the process;
- the problem the worker builds from the store (timed here after the memory readings, as
  the worker does it), and its pickled size;
- a station asking for its next task: ``StationService.queue(station, 1)``, with the plan
  and with the dispatch rule, p50/p99 over every station many times.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import pickle
import sys
import tempfile
import time
from datetime import datetime
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
from gateway.percentiles import percentile  # noqa: E402
from gateway.planner import scenarios  # noqa: E402
from gateway.planning.cpu import search_threads  # noqa: E402
from gateway.planning.line_problem import line_problem  # noqa: E402

SURGE_MORNING = datetime.fromisoformat("2026-11-11T08:00:00+08:00")
DATA = ROOT / "simulators" / "data"


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def rss_mib() -> float:
    with Path("/proc/self/status").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def config(time_limit: float) -> LineConfig:
    cfg = load_line_config(ROOT / "station_configs" / "reference-line")
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in cfg.stations.items()}
    planner = cfg.planner.model_copy(
        update={"time_limit_s": time_limit, "interval_s": 86_400.0, "settle_s": 0.0}
    )
    return cfg.model_copy(update={"stations": stations, "planner": planner})


def deliver(gw: Gateway, topic: str, doc: Any) -> None:
    gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 3), "p99": round(percentile(values, 99), 3)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="lg-bench-plan-"))
    gw = Gateway(config(args.time_limit), data_dir=data_dir, clock=FixedClock(SURGE_MORNING))
    planner = gw.planner
    assert planner is not None
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
    t0 = time.perf_counter()
    for i in range(0, len(docs), 100):  # as the hub sends them: batches off the broker
        gw.inbound.deliver(
            [InboundMessage("in/orders", json.dumps(d).encode()) for d in docs[i : i + 100]]
        )
    intake_s = time.perf_counter() - t0
    tasks = gw.store.one("SELECT count(*) AS n FROM tasks WHERE status != 'done'")
    ready = gw.store.one("SELECT count(*) AS n FROM tasks WHERE status = 'ready'")

    rule_ms = queue_times(gw, args.queue_rounds)
    loadavg = os.getloadavg()[0]
    gc.collect()
    rss_before = rss_mib()
    peak = rss_before
    stats = planner.replanner.stats
    running = asyncio.create_task(planner.run())
    replans: list[dict[str, float]] = []
    try:
        for n in range(args.replans):
            if n:
                planner.request("asked")
            t0 = time.perf_counter()
            first_at: float | None = None
            while stats.replans + stats.failures <= n:
                if first_at is None and stats.first_plans > n:
                    first_at = time.perf_counter() - t0
                peak = max(peak, rss_mib())
                await asyncio.sleep(0.005)
            replans.append(
                {
                    "first_plan_s": round(first_at if first_at is not None else -1.0, 3),
                    "final_plan_s": round(time.perf_counter() - t0, 3),
                }
            )
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    gc.collect()
    rss_after = rss_mib()
    plan_ms = queue_times(gw, args.queue_rounds)
    live = planner.replanner.current
    # The problem's build, as the worker does it; timed here, after the memory readings
    # (this process never builds it otherwise).
    t0 = time.perf_counter()
    lp = line_problem(gw.core, SURGE_MORNING)
    build_s = time.perf_counter() - t0
    pickled = len(pickle.dumps(lp.problem))
    gw.store.close()
    return {
        "orders": args.orders,
        "open_tasks": tasks["n"] if tasks else 0,
        "ready_tasks": ready["n"] if ready else 0,
        "intake_s": round(intake_s, 2),
        "problem_build_s": round(build_s, 3),
        "problem_pickled_kib": round(pickled / 1024, 1),
        "time_limit_s": args.time_limit,
        # The worker's search threads (the config's, capped below the cores), SCHED_IDLE.
        "solver_threads": search_threads(gw.config.planner.workers),
        "loadavg_1min_at_start": round(loadavg, 2),
        "replans": replans,
        "failures": stats.failures,
        "method": live.method if live else None,
        "orders_predicted_late": len(live.late) if live else None,
        "orders_waiting_material": len(live.waiting) if live else None,
        "rss_before_mib": round(rss_before, 1),
        "rss_peak_while_planning_mib": round(peak, 1),
        "rss_after_mib": round(rss_after, 1),
        "rss_rise_after_mib": round(rss_after - rss_before, 1),
        "rss_rise_peak_mib": round(peak - rss_before, 1),
        "queue_ms_rule": rule_ms,
        "queue_ms_plan": plan_ms,
    }


def queue_times(gw: Gateway, rounds: int) -> dict[str, float]:
    """A station asking for its next task, as the station API does, in milliseconds."""
    svc = gw.stations
    out: list[float] = []
    for _ in range(rounds):
        for sid in gw.config.stations:
            t0 = time.perf_counter()
            svc.queue(sid, 1)
            out.append((time.perf_counter() - t0) * 1000)
    return percentiles(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--replans", type=int, default=3)
    parser.add_argument("--queue-rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key, value in result.items():
        print(f"{key:30} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
