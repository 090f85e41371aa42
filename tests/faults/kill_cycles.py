"""SIGKILL of the gateway at random moments of a busy run, many times, on the same data.

Operators work every station through the station API while orders keep arriving; at a
random moment the gateway process is killed (SIGKILL: nothing flushed, no goodbye), its
database is checked (``PRAGMA integrity_check``), and it is started again. At the end the
line is worked until idle and the hub's stream is compared with what the gateway
committed: every seq from 1 to the last committed one reached the hub (no loss, no gap),
nothing else did, and every action an operator was told "done" (HTTP 200) is there.

    .venv/bin/python -m tests.faults.kill_cycles --kills 200    # the long version

``make test`` runs a short version (tests/faults/test_kill.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Mosquitto, find_mosquitto, free_port
from tests.faults.report import HubRecorder, Report, last_committed_seq, report
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient
from tests.integration.line_driver import BADGES, Driver

DATA = ROOT / "simulators" / "data"
SKUS = ("TEE-WHT-S", "TEE-BLK-M", "PEN-ENG", "KIT-XMAS-A", "CAP-EMB-NAVY")


@dataclass(frozen=True)
class KillRun:
    kills: int
    orders: int
    report: Report
    acknowledged: int
    acknowledged_missing: list[tuple[str, Any]]
    integrity_failures: list[str]
    restart_s_max: float
    seed: int

    def __str__(self) -> str:
        return (
            f"{self.kills} kills (seed {self.seed}), {self.orders} orders: {self.report}; "
            f"{self.acknowledged} acknowledged actions, {len(self.acknowledged_missing)} "
            f"missing; integrity failures {len(self.integrity_failures)}; restart up to "
            f"{self.restart_s_max:.2f} s"
        )


def _order(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "order_id": f"K-{n:05d}",
        "ship_by": "2030-01-01T17:00:00+08:00",
        "lines": [{"sku": rng.choice(SKUS), "qty": 1, "personalization": {"text": "kill"}}],
    }


async def _work(gw: GatewayProcess, driver: Driver, seconds: float) -> None:
    """Operators at every station for ``seconds`` (or until the gateway dies)."""
    deadline = time.monotonic() + seconds
    async with gw.async_client(timeout=5) as c:
        with contextlib.suppress(httpx.HTTPError, OSError, json.JSONDecodeError):
            while time.monotonic() < deadline:
                for station in BADGES:
                    await driver.step(c, station)


async def _finish(gw: GatewayProcess, driver: Driver) -> None:
    async with gw.async_client() as c:
        await driver.run_until_idle(c)


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def run_kill_cycles(workdir: Path, broker: Mosquitto, kills: int, seed: int) -> KillRun:
    rng = random.Random(seed)
    hub = HubClient("127.0.0.1", broker.port)
    recorder = HubRecorder(broker.port, name="kill-recorder")
    hub.publish("in/masterdata/catalog", (DATA / "reference-catalog.json").read_bytes(), True)
    hub.publish("in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), True)
    gw = GatewayProcess(workdir, broker.port, free_port())
    driver = Driver(gw.base)
    integrity: list[str] = []
    restarts: list[float] = []
    orders = 0
    try:
        gw.start()
        for _ in range(kills):
            batch = [_order(orders + k, rng) for k in range(rng.randint(1, 4))]
            orders += len(batch)
            hub.publish("in/orders", batch)
            asyncio.run(_work(gw, driver, rng.uniform(0.2, 1.2)))
            gw.kill()
            if (verdict := _integrity(gw.db)) != "ok":
                integrity.append(verdict)
            if rng.random() < 0.5:  # orders that arrive while the gateway is down
                hub.publish("in/orders", [_order(orders, rng)])
                orders += 1
            started = time.monotonic()
            gw.start()
            restarts.append(time.monotonic() - started)
        asyncio.run(_finish(gw, driver))
        started = time.monotonic()
        hub.wait_for(
            lambda ev: (
                sum(e["type"] in ("order.completed", "order.rejected") for e in ev) >= orders
            ),
            timeout=60,
        )
        last = last_committed_seq(gw.db)
        deadline = time.monotonic() + 30
        while len(recorder.unique()) < last and time.monotonic() < deadline:
            time.sleep(0.05)
        # Recovery: the slowest restart, from the start to the station API answering.
        result = report(recorder, last, max(restarts, default=0.0))
        seen = {
            ("task.completed", e["data"]["task_id"])
            for e in recorder.unique().values()
            if e["type"] == "task.completed"
        }
        seen |= {
            ("order.completed", e["order_id"])
            for e in recorder.unique().values()
            if e["type"] == "order.completed"
        }
        missing = [a for a in driver.acknowledged if a not in seen]
    finally:
        gw.stop()
        hub.close()
        recorder.close()
    return KillRun(
        kills=kills,
        orders=orders,
        report=result,
        acknowledged=len(driver.acknowledged),
        acknowledged_missing=missing,
        integrity_failures=integrity,
        restart_s_max=max(restarts, default=0.0),
        seed=seed,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lg-kills-"))
    binary = find_mosquitto()
    if binary is None:
        parser.error("mosquitto is not installed (apt-get install mosquitto)")
    (work / "broker").mkdir()
    broker = Mosquitto(binary, work / "broker", persistence=True)
    broker.start()
    try:
        run = run_kill_cycles(work, broker, args.kills, args.seed)
    finally:
        broker.stop()
    print(run)  # noqa: T201 - the report is the output
    ok = not (run.report.lost or run.report.unexpected or run.acknowledged_missing)
    ok = ok and not run.integrity_failures
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
