"""Closing a busy day's numbers: what it costs the gateway, and how long it holds the loop.

    .venv/bin/python benchmarks/bench_numbers.py
    .venv/bin/python benchmarks/bench_numbers.py --orders 3000 --stations 12 --json
    .venv/bin/python benchmarks/bench_numbers.py --cpu-quota 1.2   # as root: a Pi 5's worth

One process: a gateway as `linegate run` builds it (no devices, no hub), on a real SQLite
file, with the line of benchmarks/bench_board.py (``--stations`` stations, shifts
08:00-24:00 in Asia/Shanghai). ``--orders`` orders of the reference catalog are worked
through the station service over the day from 08:00 to about 23:00 (one task in ten
failed and reworked), each station's operator signed in; then the day is closed as the
gateway closes it (gateway/numbers/closing.py: a quarter of an hour at a time, a yield
between parts) and measured:

- the whole day's elements: wall and CPU time;
- the worst lateness of a 1 ms ticker on the loop meanwhile (how long an operator's scan
  could wait behind it);
- the size of the day's kept elements and of its kpi.snapshot;
- the database's size per order (every event still in the outbox: no hub here).

The tasks' times are compressed (one task after another, seconds each): the figures'
values mean nothing here, only what computing them costs.

With ``--cpu-quota`` the process joins a cgroup with that many cores' worth of CPU for the
closing (benchmarks/bench_line.py's CpuQuota), and leaves it after.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_board import (  # noqa: E402 - after the path
    CATALOG,
    MORNING,
    Clock,
    big_stock,
    finish,
    make_orders,
    take,
    write_line,
)
from bench_line import CpuQuota  # noqa: E402

from cloud_sync.ports import InboundMessage  # noqa: E402
from gateway.app.root import Gateway  # noqa: E402
from gateway.config.load import load_line_config  # noqa: E402
from gateway.numbers.closing import Closing  # noqa: E402
from gateway.numbers.kpis import kpi_doc  # noqa: E402
from gateway.numbers.model import Elements  # noqa: E402
from gateway.numbers.periods import parse_period  # noqa: E402


def work_the_day(gw: Gateway, clock: Clock, orders: int, rng: random.Random) -> int:
    """Every order's tasks, the stations in turn, one after another over 08:00-23:00 (about
    3.6 tasks an order on the reference catalog): each task's start to end is 30 to 90 %
    of the time until the next."""
    svc = gw.stations
    stations = list(gw.config.stations)
    for n, sid in enumerate(stations):
        svc.login(sid, f"OP-{n:04d}")
    clock.at = MORNING.replace(hour=8)
    gap = 15 * 3600 / max(1, round(orders * 3.6))
    done = 0
    while True:
        worked = 0
        for sid in stations:
            at = clock.at
            task = take(svc, sid)
            if task is None:
                continue
            clock.at = at + timedelta(seconds=rng.uniform(0.3, 0.9) * gap)
            finish(svc, sid, task, fail=rng.random() < 0.1)
            clock.at = at + timedelta(seconds=gap)
            worked += 1
        done += worked
        if not worked:
            return done


async def close_day(gw: Gateway) -> tuple[Elements, float, float, float]:
    """The day's elements as the gateway computes them when the day closes
    (``Closing.elements``), with a 1 ms ticker beside it on the loop: (elements, wall s,
    CPU s, the ticker's worst lateness in ms: how long an operator's answer could have
    waited behind the numbers)."""
    tz = gw.config.line.tzinfo
    day = parse_period(f"day:{MORNING.date().isoformat()}", gw.config.shifts, tz)
    closing = Closing(gw.core)
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    el = await closing.elements(day, raw=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    done.set()
    await tick
    return el, wall, cpu, worst * 1000


def _leave(group: Path, home: str) -> None:
    """Back to the cgroup the process came from (so the bench's group can be removed)."""
    root = group.parent
    for line in home.splitlines():
        _, controllers, path = line.split(":", 2)
        if root.name in controllers.split(",") or (controllers == "" and root.name == "cgroup"):
            (root / path.lstrip("/") / "cgroup.procs").write_text(str(os.getpid()))
            return
    (root / "cgroup.procs").write_text(str(os.getpid()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--stations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cpu-quota", type=float, default=None, help="cores for the closing")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = load_line_config(write_line(tmp, args.stations))
        config = config.model_copy(
            update={"planner": config.planner.model_copy(update={"enabled": False})}
        )
        clock = Clock(MORNING.replace(hour=7))
        gw = Gateway(config, data_dir=tmp / "data", clock=clock)
        gw.open()
        catalog = json.dumps(CATALOG).encode()
        stock = json.dumps(big_stock()).encode()
        gw.inbound.deliver([InboundMessage("in/masterdata/catalog", catalog)])
        gw.inbound.deliver([InboundMessage("in/masterdata/stock", stock)])
        for chunk in range(0, args.orders, 200):
            batch = make_orders(min(200, args.orders - chunk), rng, chunk)
            gw.inbound.deliver([InboundMessage("in/orders", raw) for raw in batch])
        t0 = time.perf_counter()
        tasks = work_the_day(gw, clock, args.orders, rng)
        work_s = time.perf_counter() - t0
        # As the gateway does once started (gateway/app/root.py): what lives for the
        # process is kept out of the collector's full passes.
        gc.collect()
        gc.freeze()
        quota = CpuQuota(args.cpu_quota) if args.cpu_quota else None
        home = Path("/proc/self/cgroup").read_text()
        try:
            if quota is not None:
                (quota.path / "cgroup.procs").write_text(str(os.getpid()))
            el, wall, cpu, longest = asyncio.run(close_day(gw))
        finally:
            if quota is not None:
                _leave(quota.path, home)
                quota.remove()
        doc = kpi_doc(el)
        gw.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db = gw.store.path
        size = db.stat().st_size + sum(
            p.stat().st_size for p in db.parent.glob(db.name + "-*") if p.exists()
        )
        out: dict[str, Any] = {
            "orders": args.orders,
            "orders_completed": el.orders_completed,
            "stations": args.stations,
            "tasks_done": tasks,
            "working_the_day_s": round(work_s, 1),
            "close_day_wall_s": round(wall, 3),
            "close_day_cpu_s": round(cpu, 3),
            "loop_lag_max_ms": round(longest, 1),
            "elements_kib": round(len(el.model_dump_json()) / 1024, 1),
            "snapshot_kib": round(len(json.dumps(doc)) / 1024, 1),
            "db_kib_per_order": round(size / 1024 / max(1, args.orders), 1),
            "cpus": os.cpu_count(),
            "cpu_quota": args.cpu_quota,
        }
        gw.store.close()
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
