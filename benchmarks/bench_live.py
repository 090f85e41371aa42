"""The screens' live push under load, against a real gateway process and a real Mosquitto.

    .venv/bin/python benchmarks/bench_live.py --boards 10 --terminals 30 --rate 200 --seconds 30
    .venv/bin/python benchmarks/bench_live.py --boards 10 --terminals 30 --cpu-quota 1.2

30 stations work orders through the station API at a total of ``--rate`` actions a second
(benchmarks/bench_line.py's load: paired terminals, every action committed before it is
answered) while ``--boards`` line boards (``GET /api/board/live``, a viewer's token) and
``--terminals`` station screens (``GET /api/stations/{id}/live``, each station's own
terminal) are connected.

Measured:
- **commit → board**: for every event the gateway commits, from its timestamp (taken in
  its transaction: the event's ``ts``, read off the broker) to the arrival at each board of
  the first snapshot whose ``seq`` includes it. p50/p99/max over every (event, board).
- **resident memory**: the gateway's RSS with the screens connected and idle, against the
  same gateway before they connected.
- **idle CPU**: the gateway's CPU time over ``--idle-s`` seconds with nothing happening,
  with the screens connected and without, per connected board.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_line import (  # noqa: E402 - after the path
    CATALOG,
    PREFIX,
    _cpu_s,
    _station,
    _tee_order,
    cpu_quota,
    free_port,
    hub_with_master_data,
    rss_mib,
    start_broker,
    start_gateway,
    write_line,
)

from gateway.config.load import load_line_config  # noqa: E402 - after the path
from gateway.percentiles import percentile  # noqa: E402 - after the path
from tests.keys import issue_keys_in  # noqa: E402 - after the path


class Committed:
    """seq → the instant its event was committed (its ``ts``), as the broker carries it."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self._lock = threading.Lock()

    def on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        with self._lock:
            for env in doc if isinstance(doc, list) else [doc]:
                self.at[int(env["seq"])] = datetime.fromisoformat(env["ts"]).timestamp()

    def get(self, seq: int) -> float | None:
        with self._lock:
            return self.at.get(seq)


async def _watch(
    client: httpx.AsyncClient, path: str, token: str, frames: list[tuple[float, int]]
) -> None:
    """Read an event stream until cancelled: (arrival wall time, seq) of each snapshot."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with client.stream("GET", path, headers=headers, timeout=None) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                # The board's seq is its second field: read without parsing the whole
                # board (the client must not be what is measured).
                at = time.time()
                i = line.find('"seq":') + 6
                frames.append((at, int(line[i : line.find(",", i)])))


def _latencies(frames: list[tuple[float, int]], committed: Committed) -> list[float]:
    out: list[float] = []
    shown = None
    for at, seq in frames:
        if shown is None:
            shown = seq  # the first snapshot: what was there before the stream
            continue
        for s in range(shown + 1, seq + 1):
            ts = committed.get(s)
            if ts is not None:
                out.append((at - ts) * 1000)
        shown = max(shown, seq)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    with cpu_quota(args.cpu_quota) as quota:
        return _run(args, quota.prefix() if quota else None)


def _run(args: argparse.Namespace, prefix: list[str] | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lg-live-"))
    broker, port = start_broker(tmp)
    cfg = write_line(tmp, args.stations, "dtg_print", planner=args.planner)
    data = tmp / "data"
    data.mkdir()
    gw = None
    try:
        hub = hub_with_master_data(port)
        committed = Committed()
        hub.on_message = committed.on_message
        hub.subscribe(PREFIX + "out/events", qos=1)
        http_port = free_port()
        gw = start_gateway(cfg, data, port, http_port, prefix)
        keys = issue_keys_in(data / "linegate.db", load_line_config(cfg))
        tees = [s["sku"] for s in CATALOG["skus"] if s["routing"] == "R-TEE-DTG"]
        n_orders = int(args.rate * args.seconds / 5) + args.stations * 2
        for i in range(n_orders):
            hub.publish(PREFIX + "in/orders", json.dumps(_tee_order(i, tees)), qos=1)
        time.sleep(3.0)
        base = f"http://127.0.0.1:{http_port}"
        viewer = keys.token("viewer")
        stations = [f"st-{n:02d}" for n in range(args.stations)]

        idle0 = _idle(gw.pid, args.idle_s)
        rss0 = rss_mib(gw.pid)
        boards: list[list[tuple[float, int]]] = [[] for _ in range(args.boards)]
        screens: list[list[tuple[float, int]]] = [[] for _ in range(args.terminals)]
        lat: list[float] = []
        refusals: list[str] = []
        result: dict[str, Any] = {}

        async def main() -> None:
            limits = httpx.Limits(max_connections=args.boards + args.terminals + 10)
            async with httpx.AsyncClient(base_url=base, limits=limits) as client:
                watchers = [
                    asyncio.create_task(_watch(client, "/api/board/live", viewer, f))
                    for f in boards
                ] + [
                    asyncio.create_task(
                        _watch(
                            client,
                            f"/api/stations/{stations[i % len(stations)]}/live",
                            keys.terminal(stations[i % len(stations)]),
                            f,
                        )
                    )
                    for i, f in enumerate(screens)
                ]
                await asyncio.sleep(3.0)  # every stream connected, its first snapshot in
                result["rss_connected_mib"] = rss_mib(gw.pid)
                result["idle_connected"] = await asyncio.to_thread(_idle, gw.pid, args.idle_s)
                until = time.perf_counter() + args.seconds
                interval = args.stations / args.rate
                cpu0 = _cpu_s(gw.pid)
                await asyncio.gather(
                    *(
                        _station(
                            "127.0.0.1",
                            http_port,
                            st,
                            f"OP-{n:04d}",
                            keys.terminal(st),
                            interval,
                            until,
                            lat,
                            refusals,
                        )
                        for n, st in enumerate(stations)
                    )
                )
                result["gateway_cpu_s"] = round(_cpu_s(gw.pid)[0] - cpu0[0], 1)
                await asyncio.sleep(2.0)  # the last changes reach the boards
                for w in watchers:
                    w.cancel()
                for ended in await asyncio.gather(*watchers, return_exceptions=True):
                    if isinstance(ended, Exception):  # CancelledError is no Exception
                        print(f"a stream failed: {ended!r}", file=sys.stderr)

        asyncio.run(main())
        hub.loop_stop()
        board_lat = sorted(x for f in boards for x in _latencies(f, committed))
        per_board_idle = (result["idle_connected"] - idle0) / max(1, args.boards)
        return {
            "stations": args.stations,
            "boards": args.boards,
            "terminals": args.terminals,
            "planner": "on" if args.planner else "off",
            "cpu_quota": args.cpu_quota,
            "actions": len(lat),
            "achieved_rate": round(len(lat) / args.seconds, 1),
            "action_p99_ms": round(percentile(sorted(lat), 99), 1),
            "refusals": len(refusals),
            "commit_to_board_samples": len(board_lat),
            "commit_to_board_p50_ms": round(percentile(board_lat, 50), 1) if board_lat else None,
            "commit_to_board_p99_ms": round(percentile(board_lat, 99), 1) if board_lat else None,
            "commit_to_board_max_ms": round(board_lat[-1], 1) if board_lat else None,
            "board_frames": sum(len(f) for f in boards),
            "terminal_frames": sum(len(f) for f in screens),
            "gateway_cpu_s_under_load": result["gateway_cpu_s"],
            "rss_before_mib": round(rss0, 1),
            "rss_connected_mib": round(result["rss_connected_mib"], 1),
            "rss_added_mib": round(result["rss_connected_mib"] - rss0, 1),
            "idle_cpu_pct_without": round(idle0 * 100, 2),
            "idle_cpu_pct_connected": round(result["idle_connected"] * 100, 2),
            "idle_cpu_pct_per_board": round(per_board_idle * 100, 3),
        }
    finally:
        if gw is not None:
            gw.terminate()
            gw.wait(10)
        broker.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def _idle(pid: int, seconds: float) -> float:
    """The gateway's share of one core over ``seconds`` of nothing happening."""
    c0 = _cpu_s(pid)[0]
    time.sleep(seconds)
    return (_cpu_s(pid)[0] - c0) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stations", type=int, default=30)
    parser.add_argument("--boards", type=int, default=10)
    parser.add_argument("--terminals", type=int, default=30)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--planner", action="store_true", help="with the planner on")
    parser.add_argument(
        "--cpu-quota",
        type=float,
        help="the gateway in a cgroup with this many cores' worth of CPU (1.2: a Pi 5)",
    )
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
