"""The reference line on its simulated devices: start-up, memory, and scan-to-screen time.

    .venv/bin/python benchmarks/bench_devices.py --scans 300

Runs ``linegate simulate`` and ``linegate run`` as two processes on a copy of the
reference line moved to free ports (no broker: the hub link retries in the background),
then measures: how long after the gateway's start all 18 devices are ready; the
gateway's resident memory with every device connected; and, for a serial scanner
(pack-1) and an HID scanner (dtg-1), the time from the code leaving the simulated
scanner to its answer on the station's screen (``device_message`` of the station API,
polled every 2 ms, so the figures include up to 2 ms of polling). The station screens are
read through each station's paired terminal and the device list with an API token, as on a
real line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.load import load_line_config  # noqa: E402 - after the path
from gateway.percentiles import percentile  # noqa: E402 - after the path
from simulators.keys import LineKeys  # noqa: E402 - after the path
from simulators.relocate import free_port, relocate_line  # noqa: E402 - after the path
from tests.keys import issue_keys_in  # noqa: E402 - after the path

_READY = re.compile(r"control API on (http://\S+)")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_simulate(config: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "simulate", str(config), "--control-port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    for line in proc.stdout:
        if found := _READY.search(line):
            return proc, found.group(1)
    raise RuntimeError(f"simulate did not start: {log.read_text()[-2000:]}")


def devices(base: str, keys: LineKeys) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/api/devices", timeout=5, auth=keys)
    rows: list[dict[str, Any]] = r.raise_for_status().json()
    return rows


def scan_latencies(base: str, control: str, station: str, n: int, keys: LineKeys) -> list[float]:
    """Milliseconds from the control API's scan (the code leaves the scanner) to the
    answer on the station screen."""
    out = []
    # The station's screen through its terminal; the simulator's control API needs nothing.
    with httpx.Client(timeout=5, auth=keys) as screen, httpx.Client(timeout=5) as scanner:
        for i in range(n):
            before = screen.get(f"{base}/api/stations/{station}").json()["device_message"] or {}
            seq = before.get("seq", 0)
            code = f"NOT-A-CODE-{i:05d}"  # refused: nobody is logged in, nothing changes
            t0 = time.perf_counter()
            scanner.post(f"{control}/stations/{station}/scan", json={"code": code})
            while True:
                msg = screen.get(f"{base}/api/stations/{station}").json()["device_message"] or {}
                if msg.get("seq", 0) > seq:
                    break
                time.sleep(0.002)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], q: int) -> float:
    return round(percentile(values, q), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scans", type=int, default=300, help="scans per scanner")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    procs: list[subprocess.Popen[Any]] = []
    try:
        relocate_line(ROOT / "station_configs" / "reference-line", tmp / "line", tmp / "sim")
        sim, control = start_simulate(tmp / "line", tmp / "simulate.log")
        procs.append(sim)
        http_port = free_port()
        base = f"http://127.0.0.1:{http_port}"
        (tmp / "data").mkdir()
        # As an admin would, before the start: a terminal paired at every station and a token
        # per role (the gateway finds them in its database).
        keys = issue_keys_in(tmp / "data" / "linegate.db", load_line_config(tmp / "line"))
        t0 = time.monotonic()
        with (tmp / "gateway.log").open("wb") as log:
            gw = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    "run",
                    "--config",
                    str(tmp / "line"),
                    "--data-dir",
                    str(tmp / "data"),
                    "--http-port",
                    str(http_port),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        procs.append(gw)
        while True:
            try:
                rows = devices(base, keys)
                if rows and all(r["state"] == "ready" for r in rows):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError("the devices did not all become ready in 60 s")
            time.sleep(0.02)
        ready_s = time.monotonic() - t0
        time.sleep(5.0)  # let the subscriptions and polls settle
        rss_idle = rss_mib(gw.pid)
        serial = scan_latencies(base, control, "pack-1", args.scans, keys)
        hid = scan_latencies(base, control, "dtg-1", args.scans, keys)
        result = {
            "devices": len(rows),
            "all_ready_s": round(ready_s, 2),
            "gateway_rss_mib": round(rss_idle, 1),
            "gateway_rss_after_scans_mib": round(rss_mib(gw.pid), 1),
            "serial_scan_ms": {"p50": pct(serial, 50), "p99": pct(serial, 99), "n": len(serial)},
            "hid_scan_ms": {"p50": pct(hid, 50), "p99": pct(hid, 99), "n": len(hid)},
        }
        print(json.dumps(result))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
