"""Benchmarks of issue 2's targets, against a real gateway process and a real Mosquitto.

    .venv/bin/python benchmarks/bench_line.py intake --orders 100000
    .venv/bin/python benchmarks/bench_line.py scans --stations 30 --rate 200 --seconds 30
    .venv/bin/python benchmarks/bench_line.py scans --compare-planner --rounds 3
    .venv/bin/python benchmarks/bench_line.py scans --compare-planner --rounds 3 --cpu-quota 1.2

``intake``: a promotion burst published to the broker (one order per message, QoS 1);
measures how fast the gateway accepts them (validated, exploded, kitting checked, events
in the outbox: counted in its database) and its resident memory with all of them open.
``scans``: 30 stations work orders through the station API at a fixed total rate; every
action is durably committed before it is answered; measures latency percentiles. Each
station talks through its own paired terminal (``Authorization: Bearer lgc_…``), the plan
is read with a line lead's API token, as on a real line: the gate's check is measured. Orders
keep arriving during the run (``--order-every``), so a planner that is on keeps replanning
while it is measured; each run says how many replans ended inside its window.
``--compare-planner`` runs the planner on and off alternately in one session;
``--cpu-quota`` puts the gateway (and so its solver worker) in a cgroup with that many
cores' worth of CPU time, about what a Raspberry Pi 5 offers; the load generator stays
outside it. ``--gateway-root`` runs the gateway of another checkout (before and after a
change, run after run).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.load import load_line_config  # noqa: E402 - after the path
from gateway.percentiles import percentile  # noqa: E402 - after the path
from simulators.keys import LineKeys  # noqa: E402 - after the path
from tests.keys import issue_keys_in  # noqa: E402 - after the path

CATALOG = json.loads((ROOT / "simulators" / "data" / "reference-catalog.json").read_text())
PREFIX = "linegate/v1/bench/line1/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("mosquitto did not start")


def write_line(tmp: Path, stations: int, capability: str, planner: bool = True) -> Path:
    cfg = tmp / "line"
    cfg.mkdir()
    ops = "\n".join(
        f'[[operators]]\nbadge = "OP-{n:04d}"\nname = "op {n}"\n' for n in range(stations + 2)
    )
    # The planner's defaults unless it is off: the line as it ships.
    section = "" if planner else "[planner]\nenabled = false\n\n"
    (cfg / "line.toml").write_text(
        f'[line]\nsite = "bench"\nline = "line1"\n\n[hub]\nurl = "mqtt://127.0.0.1:1883"\n\n'
        f"{section}{ops}"
    )
    caps = ["dtg_print", "embroider", "laser_engrave", "qc_inspect", "kit_assemble"]
    for n in range(stations):
        cap = capability if capability else caps[n % len(caps)]
        (cfg / f"st-{n:02d}.toml").write_text(
            f'[station]\nid = "st-{n:02d}"\ncapabilities = ["{cap}"]\n'
        )
    (cfg / "pack.toml").write_text('[station]\nid = "pack"\ncapabilities = ["pack"]\n')
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


def publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-hub-{random.random()}")
    c.max_inflight_messages_set(200)
    c.on_disconnect = lambda *a: print("bench hub disconnected", a[3:], file=sys.stderr)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def hub_with_master_data(port: int) -> mqtt.Client:
    """The office: a publisher that has put the retained catalog and stock in place."""
    hub = publisher(port)
    for suffix, doc in (("catalog", CATALOG), ("stock", big_stock())):
        info = hub.publish(PREFIX + f"in/masterdata/{suffix}", json.dumps(doc), qos=1, retain=True)
        info.wait_for_publish(5)
    return hub


def start_gateway(
    cfg: Path,
    data: Path,
    port: int,
    http_port: int,
    prefix: list[str] | None = None,
    root: Path = ROOT,
) -> subprocess.Popen[bytes]:
    log = (data / "gateway.log").open("wb")
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
            "--broker",
            f"mqtt://127.0.0.1:{port}",
            "--http-port",
            str(http_port),
        ],
        cwd=root,  # `python -m gateway` runs the gateway of this checkout
        stdout=log,
        stderr=log,
    )
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/api/health", timeout=1).is_success:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("gateway did not start")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def count_orders(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])


def make_orders(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    skus = [s["sku"] for s in CATALOG["skus"]]
    out = []
    for i in range(n):
        lines = [
            {
                "sku": rng.choice(skus),
                "qty": rng.choice((1, 1, 1, 2, 3)),
                "personalization": {"text": f"Happy birthday {i} 生日快乐", "font": "Serif"},
            }
            for _ in range(rng.choice((1, 1, 1, 2)))
        ]
        out.append(
            json.dumps(
                {
                    "order_id": f"PROMO-{i:07d}",
                    "ship_by": "2026-11-12T18:00:00+08:00",
                    "priority": rng.choice((5, 5, 5, 7, 9)),
                    "channel": "tmall",
                    "carrier": "SF",
                    "lines": lines,
                },
                ensure_ascii=False,
            ).encode()
        )
    return out


def order_messages(args: argparse.Namespace) -> list[bytes]:
    """The burst's payloads: ``--per-message`` orders each (the contract allows a JSON
    array of orders per message)."""
    orders = make_orders(args.orders, args.seed)
    per = args.per_message
    if per == 1:
        return orders
    return [b"[" + b",".join(orders[k : k + per]) + b"]" for k in range(0, len(orders), per)]


def bench_intake_in_process(args: argparse.Namespace) -> dict[str, Any]:
    """The gateway's own intake, without broker or MQTT: ``Inbound.deliver`` in batches of
    500 orders, as the hub link hands them over. ``--profile N``: cProfile's N costliest
    functions by own time, on stderr."""
    from cloud_sync.ports import InboundMessage
    from gateway.app.root import Gateway
    from gateway.config.load import load_line_config

    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    try:
        gw = Gateway(load_line_config(write_line(tmp, 9, "")), data_dir=tmp / "data")
        gw.open()
        gw.inbound.deliver(
            [
                InboundMessage("in/masterdata/catalog", json.dumps(CATALOG).encode()),
                InboundMessage("in/masterdata/stock", json.dumps(big_stock()).encode()),
            ]
        )
        messages = [InboundMessage("in/orders", o) for o in order_messages(args)]
        batch = max(1, 500 // args.per_message)
        profile = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        if profile is not None:
            profile.enable()
        for k in range(0, len(messages), batch):
            gw.inbound.deliver(messages[k : k + batch])
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - t0
        if profile is not None:
            stats = pstats.Stats(profile, stream=sys.stderr)
            stats.sort_stats("tottime").print_stats(args.profile)
        accepted = gw.inbound.accepted
        gw.store.close()
        return {
            "orders": args.orders,
            "mode": "in-process",
            "orders_per_message": args.per_message,
            "profiled": bool(args.profile),
            "accepted": accepted,
            "accepted_s": round(elapsed, 2),
            "orders_per_s": round(args.orders / elapsed),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_intake(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    broker, port = start_broker(tmp)
    cfg = write_line(tmp, 9, "")
    data = tmp / "data"
    data.mkdir()
    gw = None
    try:
        hub = hub_with_master_data(port)
        http_port = free_port()
        gw = start_gateway(cfg, data, port, http_port)
        time.sleep(1.0)  # the link subscribes and applies master data
        rss_idle = rss_mib(gw.pid)
        if args.backlog:
            # The burst arrives while the gateway is away; the broker keeps it for the
            # gateway's session. Timing starts when the gateway comes back.
            gw.terminate()
            gw.wait(10)
        orders = order_messages(args)
        per = args.per_message
        db = data / "linegate.db"
        t0 = time.perf_counter()
        for n, payload in enumerate(orders, start=1):
            info = hub.publish(PREFIX + "in/orders", payload, qos=1)
            if n % 1000 == 0:  # keep the publisher's own queue bounded
                info.wait_for_publish(30)
        published = time.perf_counter() - t0
        if args.backlog:
            t0 = time.perf_counter()
            gw = start_gateway(cfg, data, port, http_port)
        peak = rss_idle
        while (n := count_orders(db)) < args.orders:
            peak = max(peak, rss_mib(gw.pid))
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"only {n} orders accepted after 600 s")
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        time.sleep(1.0)
        peak = max(peak, rss_mib(gw.pid))
        hub.loop_stop()
        return {
            "orders": args.orders,
            "orders_per_message": per,
            "mode": "backlog" if args.backlog else "live",
            "publish_s": round(published, 2),
            "accepted_s": round(elapsed, 2),
            "orders_per_s": round(args.orders / elapsed),
            "rss_idle_mib": round(rss_idle, 1),
            "rss_peak_mib": round(peak, 1),
            "rss_after_mib": round(rss_mib(gw.pid), 1),
        }
    finally:
        if gw is not None:
            gw.terminate()
            gw.wait(10)
        broker.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


class _Terminal:
    """One station terminal: a kept-alive HTTP/1.1 connection, spoken by hand.

    httpx's pool, shared by 30 busy coroutines in one process, adds tens of milliseconds of
    its own; a terminal per station on its own socket measures the gateway, not the client.
    """

    def __init__(self, host: str, port: int, credential: str, ids: bool = False) -> None:
        self.host, self.port = host, port
        self.credential = credential  # the station's paired terminal (lgc_…)
        self.ids = ids  # an Idempotency-Key on every POST, as a station screen sends it
        self.sent = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        self.sent += 1
        once = f"Idempotency-Key: {id(self):x}-{self.sent}\r\n" if self.ids else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.credential}\r\n{once}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), json.loads(payload)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _station(
    host: str,
    port: int,
    station: str,
    badge: str,
    credential: str,
    interval: float,
    until: float,
    lat: list[float],
    refusals: list[str],
    ids: bool = False,
) -> None:
    term = _Terminal(host, port, credential, ids)
    base = f"/api/stations/{station}"

    async def post(action: str, body: dict[str, Any] | None = None) -> None:
        t = time.perf_counter()
        status, doc = await term.request("POST", f"{base}/{action}", body)
        lat.append((time.perf_counter() - t) * 1000)
        if status == 409:
            refusals.append(doc["code"])
        elif status != 200:
            raise RuntimeError(f"{station} {action}: HTTP {status} {doc}")

    try:
        await post("login", {"badge": badge})
        next_at = time.perf_counter() + random.random() * interval
        while time.perf_counter() < until:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            _, view = await term.request("GET", base)
            task = view["task"]
            if task is None:
                await post("next")
            elif task["status"] == "dispatched":
                todo = [m for m in task["materials"] if m["scanned"] is None]
                if todo:
                    await post("scan", {"code": todo[0]["suggested_lot"] or todo[0]["material"]})
                else:
                    await post("start")
            else:
                items = [i for i, it in enumerate(task["checklist"]) if it["passed"] is None]
                if items:
                    await post("checklist", {"item": items[0], "passed": True})
                else:
                    await post("complete")
    finally:
        term.close()


class CpuQuota:
    """A cgroup with ``cores`` cores' worth of CPU time per 100 ms period, for the gateway.

    cgroup v1's cpu controller (``cpu.cfs_quota_us``) or cgroup v2's ``cpu.max``; the
    gateway's command is wrapped so that it enters the group before it execs (its solver
    workers, its children, inherit the group). The group is removed afterwards.
    """

    PERIOD_US = 100_000

    def __init__(self, cores: float) -> None:
        self.cores = cores
        name = f"linegate-bench-{os.getpid()}"
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(round(cores * self.PERIOD_US)))
        elif Path("/sys/fs/cgroup/cgroup.controllers").exists():
            self.path = Path("/sys/fs/cgroup") / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{round(cores * self.PERIOD_US)} {self.PERIOD_US}")
        else:
            raise RuntimeError("no cgroup cpu controller: --cpu-quota needs cgroup v1 or v2")

    def prefix(self) -> list[str]:
        """A command prefix that runs the rest of the command inside the group."""
        procs = self.path / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]

    def stat(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in (self.path / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            out[key] = int(value)
        return out

    def remove(self) -> None:
        # Whatever the gateway left behind in the group (a worker it did not reap): ours.
        for pid in (self.path / "cgroup.procs").read_text().split():
            with suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)
        print(f"could not remove {self.path}", file=sys.stderr)


@contextmanager
def cpu_quota(cores: float | None) -> Iterator[CpuQuota | None]:
    if cores is None:
        yield None
        return
    group = CpuQuota(cores)
    try:
        yield group
    finally:
        group.remove()


def _loadavg() -> float:
    return os.getloadavg()[0]


def _cpu_s(pid: int) -> tuple[float, float]:
    """The process's own CPU seconds and those of its children it has reaped (the solver
    workers that ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    children = (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
    return own, children


def _runqueue_wait_s(pid: int) -> float:
    """How long the process's threads have waited, runnable, for a CPU (the kernel's
    schedstat): the time an answer waits for the CPU rather than for the gateway's code."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def _plan_stats(base: str, keys: LineKeys) -> dict[str, Any]:
    # per_station=1 and before or after the window only: the kanban's snapshot is not free.
    r = httpx.get(f"{base}/api/plan?per_station=1", timeout=30, auth=keys)
    doc: dict[str, Any] = r.raise_for_status().json()
    return doc


def _tee_order(i: int, tees: list[str]) -> dict[str, Any]:
    return {
        "order_id": f"S-{i}",
        "ship_by": "2026-11-12T18:00:00+08:00",
        "lines": [{"sku": tees[i % len(tees)], "qty": 1}],
    }


def bench_scans(
    args: argparse.Namespace, planner: bool = True, quota: CpuQuota | None = None
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    broker, port = start_broker(tmp)
    cfg = write_line(tmp, args.stations, "dtg_print", planner=planner)
    data = tmp / "data"
    data.mkdir()
    gw = None
    try:
        hub = hub_with_master_data(port)
        http_port = free_port()
        prefix = quota.prefix() if quota else None
        gw = start_gateway(cfg, data, port, http_port, prefix, args.gateway_root)
        # As an admin would: a terminal paired at every station and a token per role, in
        # the database the gateway has made.
        keys = issue_keys_in(data / "linegate.db", load_line_config(cfg))
        time.sleep(1.0)
        tees = [s["sku"] for s in CATALOG["skus"] if s["routing"] == "R-TEE-DTG"]
        n_orders = int(args.rate * args.seconds / 5) + args.stations * 2
        for i in range(n_orders):
            hub.publish(PREFIX + "in/orders", json.dumps(_tee_order(i, tees)), qos=1)
        time.sleep(3.0)
        base = f"http://127.0.0.1:{http_port}"
        lat: list[float] = []
        refusals: list[str] = []
        interval = args.stations / args.rate
        arrived = [0]

        async def orders_keep_coming(until: float) -> None:
            # A trickle of orders during the run: each batch asks the planner for a replan,
            # so a planner that is on solves through the whole window.
            if args.order_every <= 0:
                return
            k = n_orders
            while time.perf_counter() + args.order_every < until:
                await asyncio.sleep(args.order_every)
                for _ in range(args.order_batch):
                    hub.publish(PREFIX + "in/orders", json.dumps(_tee_order(k, tees)), qos=1)
                    k += 1
                    arrived[0] += 1

        async def run() -> None:
            until = time.perf_counter() + args.seconds
            await asyncio.gather(
                orders_keep_coming(until),
                *(
                    _station(
                        "127.0.0.1",
                        http_port,
                        f"st-{n:02d}",
                        f"OP-{n:04d}",
                        keys.terminal(f"st-{n:02d}"),
                        interval,
                        until,
                        lat,
                        refusals,
                        args.idempotency_keys,
                    )
                    for n in range(args.stations)
                ),
            )

        before = _plan_stats(base, keys) if planner else {}
        throttled = quota.stat() if quota else {}
        load = _loadavg()
        cpu0 = _cpu_s(gw.pid)
        waited0 = _runqueue_wait_s(gw.pid), _runqueue_wait_s(os.getpid())
        asyncio.run(run())
        cpu1 = _cpu_s(gw.pid)
        waited = _runqueue_wait_s(gw.pid) - waited0[0], _runqueue_wait_s(os.getpid()) - waited0[1]
        throttled = {k: v - throttled[k] for k, v in quota.stat().items()} if quota else {}
        server = httpx.get(f"{base}/api/health").json()["action_ms"]
        after = _plan_stats(base, keys) if planner else {}
        hub.loop_stop()
        lat.sort()
        out: dict[str, Any] = {
            "planner": "on" if planner else "off",
            "gateway_root": str(args.gateway_root),
            "idempotency_keys": args.idempotency_keys,
            "cpu_quota": quota.cores if quota else None,
            "loadavg_1min_at_start": round(load, 2),
            "stations": args.stations,
            "server_p50_ms": server.get("p50"),
            "server_p99_ms": server.get("p99"),
            "target_rate": args.rate,
            "actions": len(lat),
            "achieved_rate": round(len(lat) / args.seconds, 1),
            "p50_ms": round(percentile(lat, 50), 2),
            "p90_ms": round(percentile(lat, 90), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(lat[-1], 2),
            "refusals": len(refusals),
            "orders_during": arrived[0],
            "gateway_cpu_s": round(cpu1[0] - cpu0[0], 1),
            # Runnable but not running, over the window: the gateway's threads, the client's.
            "gateway_cpu_wait_s": round(waited[0], 2),
            "client_cpu_wait_s": round(waited[1], 2),
        }
        if planner:
            requests = {
                k: v - before["requests"].get(k, 0)
                for k, v in after["requests"].items()
                if v != before["requests"].get(k, 0)
            }
            out |= {
                # Replans that ended inside the window (and first plans offered in it).
                "replans": after["replans"] - before["replans"],
                "first_plans": after["first_plans"] - before["first_plans"],
                "replan_failures": after["failures"] - before["failures"],
                "replan_requests": requests,
                "solving_at_start": before["solving"],
                # The workers' CPU time: those that ended inside the window.
                "worker_cpu_s": round(cpu1[1] - cpu0[1], 1),
            }
        if quota:
            out["throttled"] = {
                "periods": throttled.get("nr_periods"),
                "throttled_periods": throttled.get("nr_throttled"),
                "throttled_ms": round(throttled.get("throttled_time", 0) / 1e6),
            }
        return out
    finally:
        if gw is not None:
            gw.terminate()
            gw.wait(10)
        broker.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def compare_planner(args: argparse.Namespace, quota: CpuQuota | None) -> dict[str, Any]:
    """The planner on and off alternately (on first in odd rounds, off first in even ones),
    so both see the same machine over the session."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for r in range(args.rounds):
        for planner in (True, False) if r % 2 == 0 else (False, True):
            result = bench_scans(args, planner, quota)
            print(json.dumps(result), flush=True)
            runs[result["planner"]].append(result)

    def figures(rows: list[dict[str, Any]]) -> list[str]:
        return [f"{r['p50_ms']}/{r['p90_ms']}/{r['p99_ms']}" for r in rows]

    return {
        "summary": True,
        "cpu_quota": quota.cores if quota else None,
        "rounds": args.rounds,
        "client_p50_p90_p99_ms": {k: figures(v) for k, v in runs.items()},
        "worst_p99_ms": {k: max(r["p99_ms"] for r in v) for k, v in runs.items()},
        "server_p99_ms": {k: [r["server_p99_ms"] for r in v] for k, v in runs.items()},
        "replans": [r["replans"] for r in runs["on"]],
        "loadavg_1min_at_start": {
            k: [r["loadavg_1min_at_start"] for r in v] for k, v in runs.items()
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("intake")
    i.add_argument("--orders", type=int, default=100_000)
    i.add_argument("--seed", type=int, default=1)
    i.add_argument("--per-message", type=int, default=1, help="orders per MQTT message")
    i.add_argument(
        "--in-process",
        action="store_true",
        help="no broker: hand the orders to the gateway's inbound handler directly",
    )
    i.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="with --in-process: print cProfile's N costliest functions (own time) to stderr",
    )
    i.add_argument(
        "--backlog",
        action="store_true",
        help="publish the burst while the gateway is stopped, then time its catching up",
    )
    s = sub.add_parser("scans")
    s.add_argument("--stations", type=int, default=30)
    s.add_argument("--rate", type=float, default=200.0)
    s.add_argument("--seconds", type=float, default=30.0)
    s.add_argument(
        "--planner",
        choices=("on", "off"),
        default="on",
        help="the line's planner (on: its defaults, as the line ships)",
    )
    s.add_argument(
        "--order-every",
        type=float,
        default=2.0,
        help="seconds between batches of new orders during the run (0: none)",
    )
    s.add_argument("--order-batch", type=int, default=5, help="orders per batch")
    s.add_argument(
        "--compare-planner",
        action="store_true",
        help="run with the planner on and off alternately, --rounds times each",
    )
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument(
        "--cpu-quota",
        type=float,
        default=None,
        metavar="CORES",
        help="run the gateway and its solver worker in a cgroup with this many cores of CPU "
        "time (root; the load generator stays outside)",
    )
    s.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="every action carries an Idempotency-Key (its answer kept), as a station screen's",
    )
    s.add_argument(
        "--gateway-root",
        type=Path,
        default=ROOT,
        help="run the gateway of another checkout (git archive COMMIT | tar -x -C DIR), "
        "to compare two versions run after run in one session",
    )
    args = p.parse_args()
    if args.what == "scans":
        with cpu_quota(args.cpu_quota) as quota:
            if args.compare_planner:
                result = compare_planner(args, quota)
            else:
                result = bench_scans(args, args.planner == "on", quota)
    elif args.in_process:
        result = bench_intake_in_process(args)
    else:
        result = bench_intake(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
