""" "Can we take this promotion?" (issue 14): how long the capacity check takes for a
forecast of 5,000 orders on the reference line, and what it costs the station API.

    .venv/bin/python benchmarks/bench_capacity.py
    .venv/bin/python benchmarks/bench_capacity.py --orders 5000 --cpu-quota 1.2 --json

The line: the reference line (its shifts and stations, no devices, no hub), its store on a
real SQLite file with the reference catalog and stock and a backlog of ``--backlog`` open
orders (the demo's generator), its clock at 08:00 on a Wednesday. The forecast:
``--orders`` orders of the reference catalog's SKUs promised for the carriers' trucks of
the next ``--days`` days (simulators/forecast.py).

Measured:

- **offline**: ``linegate capacity --orders F --json`` run as a process against the
  store (``--runs`` times): its wall time, and the worker's own (reading the line and the
  forecast, two CP-SAT plans, the overtime search); with ``--cpu-quota`` the command runs
  in a cgroup with that many cores' worth of CPU.
- **online**: the gateway as ``linegate run`` (in that cgroup when ``--cpu-quota``), a
  line lead's ``POST /api/capacity`` with the forecast: the answer's wall time; and a
  station's terminal scanning at ``--scan-rate`` a second all along: the scans' answer
  times (p50, p99, max) while nothing else runs and while the check runs; the gateway's
  resident memory before and after each of ``--checks`` checks in a row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_line import cpu_quota, free_port, rss_mib  # noqa: E402 - after the path

from cloud_sync.ports import InboundMessage  # noqa: E402 - after the path
from gateway.app.root import Gateway  # noqa: E402 - after the path
from gateway.config.load import load_line_config  # noqa: E402 - after the path
from gateway.percentiles import percentile  # noqa: E402 - after the path
from simulators.forecast import forecast_orders  # noqa: E402 - after the path
from simulators.orders import (  # noqa: E402 - after the path
    generate_orders,
    load_reference_catalog,
    load_reference_stock,
)
from tests.keys import issue_keys_in  # noqa: E402 - after the path

REFERENCE = ROOT / "station_configs" / "reference-line"
START = datetime.fromisoformat("2026-11-11T08:00:00+08:00")  # a Wednesday morning
SCAN_STATION, SCAN_BADGE = "dtg-1", "OP-1001"


class Fixed:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def write_line(tmp: Path) -> Path:
    """The reference line without its devices (nothing to connect to) and without a hub."""
    cfg = tmp / "line"
    cfg.mkdir()
    text = (REFERENCE / "line.toml").read_text(encoding="utf-8")
    kept: list[str] = []
    dropped = False
    for line in text.replace('transport = "mqtt"', 'transport = "none"').splitlines():
        if line.startswith("["):
            # A station's machine rate needs its machine: without devices, no [costs].
            dropped = line.startswith("[costs")
        if not dropped:
            kept.append(line)
    (cfg / "line.toml").write_text("\n".join(kept) + "\n", encoding="utf-8")
    for path in sorted(REFERENCE.glob("*.toml")):
        if path.name == "line.toml":
            continue
        station = tomllib.loads(path.read_text(encoding="utf-8"))["station"]
        lines = [
            "[station]",
            *(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in station.items()),
        ]
        (cfg / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


def prepare_store(cfg: Path, data: Path, backlog: int) -> None:
    """Master data and a backlog taken by intake, as the hub would have sent them."""
    config = load_line_config(cfg)
    gw = Gateway(config, data_dir=data, clock=Fixed(START))
    gw.open()
    catalog, stock = load_reference_catalog(), load_reference_stock()
    orders = generate_orders(catalog, stock, count=backlog, now=START, bad_rate=0.0)
    gw.inbound.deliver(
        [
            InboundMessage("in/masterdata/catalog", json.dumps(catalog).encode()),
            InboundMessage("in/masterdata/stock", json.dumps(stock).encode()),
            *(InboundMessage("in/orders", o.payload) for o in orders),
        ]
    )
    gw.store.close()


def offline(cfg: Path, data: Path, forecast: Path, prefix: list[str] | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    ran = subprocess.run(
        [
            *(prefix or []),
            sys.executable,
            "-m",
            "gateway",
            "capacity",
            "--orders",
            str(forecast),
            "--config",
            str(cfg),
            "--data-dir",
            str(data),
            "--now",
            START.isoformat(),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if ran.returncode not in (0, 1):
        raise RuntimeError(f"linegate capacity exited {ran.returncode}: {ran.stderr}")
    doc: dict[str, Any] = json.loads(ran.stdout)
    return {"wall_s": round(wall, 2), "worker_s": doc["wall_s"], "answer": doc}


def start_gateway(
    cfg: Path, data: Path, port: int, prefix: list[str] | None
) -> subprocess.Popen[bytes]:
    log = (data / "gateway.log").open("wb")
    offset = (START - datetime.now(UTC)).total_seconds()
    proc = subprocess.Popen(
        [
            *(prefix or []),
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(cfg),
            "--data-dir",
            str(data),
            "--http-port",
            str(port),
            "--clock-offset-s",
            str(offset),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("gateway did not start")


async def scans(
    client: httpx.AsyncClient, rate: float, until: float, out: list[float]
) -> list[int]:
    """The terminal's operator scans her badge again and again: an action through the gate
    and the desk, committed, answered."""
    codes: list[int] = []
    next_at = time.perf_counter()
    path = f"/api/stations/{SCAN_STATION}/scan"
    while time.perf_counter() < until:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        next_at += 1.0 / rate
        t = time.perf_counter()
        r = await client.post(path, json={"code": SCAN_BADGE})
        out.append((time.perf_counter() - t) * 1000)
        codes.append(r.status_code)
    return codes


def _stats(ms: list[float]) -> dict[str, Any]:
    s = sorted(ms)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "p50_ms": round(percentile(s, 50), 1),
        "p99_ms": round(percentile(s, 99), 1),
        "max_ms": round(s[-1], 1),
    }


async def online(
    cfg: Path, data: Path, forecast: bytes, prefix: list[str] | None, args: argparse.Namespace
) -> dict[str, Any]:
    keys = issue_keys_in(data / "linegate.db", load_line_config(cfg))
    port = free_port()
    gw = start_gateway(cfg, data, port, prefix)
    base = f"http://127.0.0.1:{port}"
    try:
        lead = {"Authorization": f"Bearer {keys.token('line_lead')}"}
        terminal = {"Authorization": f"Bearer {keys.terminal(SCAN_STATION)}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=lead, timeout=300) as office,
            httpx.AsyncClient(base_url=base, headers=terminal, timeout=30) as station,
        ):
            # The gateway plans its backlog at start: the check is measured after that.
            for _ in range(600):
                plan = (await office.get("/api/plan?per_station=1")).json()
                if plan.get("plan") is not None and not plan.get("solving"):
                    break
                await asyncio.sleep(0.1)
            r = await station.post(
                f"/api/stations/{SCAN_STATION}/login", json={"badge": SCAN_BADGE}
            )
            r.raise_for_status()
            idle: list[float] = []
            await scans(station, args.scan_rate, time.perf_counter() + args.idle_s, idle)
            rss_before = rss_mib(gw.pid)
            during: list[float] = []
            check_done = asyncio.Event()

            async def scanning() -> list[int]:
                codes: list[int] = []
                while not check_done.is_set():
                    codes += await scans(station, args.scan_rate, time.perf_counter() + 0.5, during)
                return codes

            scanner = asyncio.create_task(scanning())
            walls: list[float] = []
            worker: list[float] = []
            rss_after: list[float] = []
            for _ in range(args.checks):  # again: does the gateway keep what a check took?
                t0 = time.perf_counter()
                answer = await office.post(
                    "/api/capacity?lang=en",
                    content=forecast,
                    headers={"Content-Type": "application/json"},
                )
                walls.append(round(time.perf_counter() - t0, 2))
                if answer.status_code != 200:
                    raise RuntimeError(f"POST /api/capacity: {answer.status_code} {answer.text}")
                worker.append(answer.json()["wall_s"])
                rss_after.append(round(rss_mib(gw.pid), 1))
            check_done.set()
            codes = await scanner
            return {
                "wall_s": walls,
                "worker_s": worker,
                "scan_codes": sorted(set(codes)),
                "scans_idle": _stats(idle),
                "scans_during_check": _stats(during),
                "rss_before_mib": round(rss_before, 1),
                "rss_after_mib": rss_after,
            }
    finally:
        gw.terminate()
        gw.wait(10)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    plan, after = doc["plan"], doc["with_overtime"]
    return {
        "forecast_orders": doc["forecast_orders"],
        "forecast_units": doc["forecast_units"],
        "backlog_orders": doc["backlog_orders"],
        "backlog_waiting": len(doc["waiting"]),
        "planned_orders": plan["orders"],
        "finish": plan["finish"],
        "late": len(plan["late"]),
        "bottleneck": plan["bottleneck"],
        "materials_short": len(doc["materials"]),
        "overtime": [
            f"{o['station']} {o['shift']} {o['day']} +{o['minutes']} min" for o in doc["overtime"]
        ],
        "late_with_overtime": None if after is None else len(after["late"]),
        "search": doc["search"],
        "replans": doc["replans"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lg-capacity-"))
    try:
        cfg = write_line(tmp)
        data = tmp / "data"
        data.mkdir()
        prepare_store(cfg, data, args.backlog)
        docs = forecast_orders(
            load_reference_catalog(), count=args.orders, now=START, days=args.days
        )
        forecast = json.dumps(docs, ensure_ascii=False).encode()
        path = tmp / "forecast.json"
        path.write_bytes(forecast)
        with cpu_quota(args.cpu_quota) as quota:
            prefix = quota.prefix() if quota else None
            runs = [offline(cfg, data, path, prefix) for _ in range(args.runs)]
            served = asyncio.run(online(cfg, data, forecast, prefix, args))
        walls = [r["wall_s"] for r in runs] or [float("nan")]
        return {
            "orders": args.orders,
            "days": args.days,
            "backlog": args.backlog,
            "forecast_bytes": len(forecast),
            "cpu_quota": args.cpu_quota,
            "offline_wall_s": {
                "median": statistics.median(walls),
                "min": min(walls),
                "max": max(walls),
            },
            "offline_worker_s": [r["worker_s"] for r in runs],
            "answer": summary(runs[0]["answer"]) if runs else None,
            "online": served,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scan-rate", type=float, default=10.0)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--checks", type=int, default=2, help="capacity checks asked online")
    parser.add_argument(
        "--cpu-quota",
        type=float,
        help="the command and the gateway in a cgroup with this many cores' worth of CPU "
        "(1.2: a Pi 5)",
    )
    parser.add_argument("--json", action="store_true", help="(the output is JSON anyway)")
    print(json.dumps(run(parser.parse_args()), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
