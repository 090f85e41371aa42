"""SD-card wear: what the gateway writes to its disk per packed order (issue 14).

    .venv/bin/python benchmarks/bench_wear.py                      # 29 orders, a table
    .venv/bin/python benchmarks/bench_wear.py --runs 3 --json      # one JSON line per run
    .venv/bin/python benchmarks/bench_wear.py --fsyncs             # and count fsyncs (strace)
    .venv/bin/python benchmarks/bench_wear.py --gateway-root /tmp/base   # another checkout
    .venv/bin/python benchmarks/bench_wear.py --idle-s 120         # and a quiet line's writes

A real gateway process (``python -m gateway run``, tests/integration/gateway_process.py) on
the reference line, its hub a local Mosquitto with the reference catalog and stock
retained (tests/integration/hub_client.py). N orders of mixed SKUs arrive one per message;
a careful operator at every station (tests/integration/line_driver.py) works them through
the station API until every one is packed, each station through its paired terminal. The
window runs from before the first order is published until the hub has every event and
the gateway's outbox is empty, so it holds intake, every operator action and the outbox's
churn. The gateway's start is left out (migrations, master data, and the alarms of its
devices: the window opens once every one of them is raised). Under systemd's watchdog
(``WatchdogSec=30`` in systemd/linegate.service; ``--watchdog-s``), emulated with a notify
socket of the benchmark's (tests/integration/test_systemd_notify.py), as on a real box.

Measured, from the gateway's ``/proc/PID/io``: ``write_bytes`` (what its writes made the
kernel send to the disk: whole 4 KiB file-system pages, what an SD card wears on) and
``wchar`` (the bytes its write calls passed); of them, what went to its log file (the
gateway's stdout, on a real box journald's). The database's size (main file + WAL)
and what its live pages hold (``page_count - freelist_count``), before and after.
``--fsyncs``: strace attached to the gateway counts its fsync and fdatasync calls (each a
flush the card must do). ``--idle-s``: then what the gateway writes with nothing to do
(the line's clock keeps running; the watchdog pings), per hour.

The run compresses time (29 orders in about 20 s; a real line makes about 35 an hour):
what the gateway writes periodically weighs far less per order here than on the floor,
hence ``--idle-s``.

The reference line's devices are not simulated (as in the integration tests): everything
goes through the station API, and the printers stay away (their jobs wait queued).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.load import load_line_config  # noqa: E402 - after the path
from simulators.keys import LineKeys  # noqa: E402 - after the path
from tests.conftest import Mosquitto, find_mosquitto, free_port  # noqa: E402 - after the path
from tests.integration.gateway_process import GatewayProcess  # noqa: E402 - after the path
from tests.integration.hub_client import HubClient  # noqa: E402 - after the path
from tests.integration.line_driver import Driver  # noqa: E402 - after the path
from tests.integration.test_systemd_notify import FakeSystemd  # noqa: E402 - after the path

DATA = ROOT / "simulators" / "data"
KIB = 1024
# The reference catalog's SKUs and how often each comes (its stock holds six red caps
# only: one in the mix, or a long run would wait for material).
MIX = (
    ("TEE-WHT-S", 3), ("TEE-WHT-M", 3), ("TEE-WHT-L", 2), ("TEE-BLK-M", 3), ("TEE-BLK-L", 2),
    ("CAP-EMB-NAVY", 3), ("CAP-EMB-RED", 1), ("TUMBLER-ENG", 2), ("PEN-ENG", 3),
    ("KIT-XMAS-A", 2),
)  # fmt: skip


@dataclass(frozen=True)
class Io:
    write_bytes: int
    wchar: int

    @classmethod
    def of(cls, pid: int) -> Io:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return cls(int(fields["write_bytes"]), int(fields["wchar"]))


@dataclass(frozen=True)
class Run:
    orders: int
    units: int
    actions: int  # POSTs to the station API (every one committed before its answer)
    events: int
    seconds: float
    write_bytes: int
    wchar: int
    log_bytes: int  # of wchar (and about as much of write_bytes): the gateway's log
    files_bytes_before: int  # main file + WAL
    files_bytes_after: int
    wal_bytes_after: int
    data_bytes_before: int  # the live pages: (page_count - freelist_count) * page_size
    data_bytes_after: int
    page_size: int
    fsyncs: int | None  # fsync + fdatasync (--fsyncs)
    watchdog_s: float
    idle_s: float
    idle_write_bytes: int | None

    def summary(self) -> dict[str, Any]:
        n = self.orders
        written = self.write_bytes - self.log_bytes
        return {
            **asdict(self),
            "write_kib_per_order": round(self.write_bytes / n / KIB, 1),
            "write_kib_per_order_without_log": round(written / n / KIB, 1),
            "wchar_kib_per_order": round(self.wchar / n / KIB, 1),
            "write_bytes_per_action": round(written / self.actions),
            "data_kib_per_order": round(
                (self.data_bytes_after - self.data_bytes_before) / n / KIB, 1
            ),
            "files_kib_per_order": round(
                (self.files_bytes_after - self.files_bytes_before) / n / KIB, 1
            ),
            "fsyncs_per_order": None if self.fsyncs is None else round(self.fsyncs / n, 1),
            "idle_kib_per_hour": None
            if self.idle_write_bytes is None
            else round(self.idle_write_bytes / self.idle_s * 3600 / KIB),
        }


def orders(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` orders of one or two lines of the mix, one to two pieces each."""
    rng = random.Random(seed)
    skus = [sku for sku, weight in MIX for _ in range(weight)]
    out = []
    for i in range(n):
        picked = rng.sample(skus, rng.choice((1, 1, 2)))
        lines = {sku: rng.choice((1, 1, 2)) for sku in picked}
        out.append(
            {
                "order_id": f"WEAR-{i:04d}",
                "ship_by": "2030-01-01T17:00:00+08:00",
                "lines": [
                    {"sku": sku, "qty": qty, "personalization": {"text": f"W{i} 生日快乐"}}
                    for sku, qty in lines.items()
                ],
            }
        )
    return out


def files_bytes(db: Path) -> tuple[int, int]:
    """The database's main file and WAL, in bytes."""
    wal = db.with_name(db.name + "-wal")
    return (
        db.stat().st_size if db.exists() else 0,
        wal.stat().st_size if wal.exists() else 0,
    )


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)


def data_bytes(db: Path) -> tuple[int, int]:
    """What the database's live pages hold (the WAL's newest included), and its page size."""
    conn = read_only(db)
    try:
        size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    finally:
        conn.close()
    return (pages - free) * size, size


def devices_down(db: Path) -> int:
    """The devices whose alarm is raised (the benchmark's line has none of them running)."""
    conn = read_only(db)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM alarms WHERE kind = 'device_offline' AND cleared_at IS NULL"
            ).fetchone()[0]
        )
    finally:
        conn.close()


class Watchdog:
    """systemd's side of the notify protocol, drained by a thread (the gateway sends a
    WATCHDOG=1 every half period, after its health check)."""

    def __init__(self, period_s: float) -> None:
        self.systemd = FakeSystemd()
        self.env = {"NOTIFY_SOCKET": str(self.systemd.path)}
        if period_s > 0:
            self.env["WATCHDOG_USEC"] = str(int(period_s * 1e6))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            self.systemd.listen(0.5)

    def pings(self) -> int:
        return sum(line == "WATCHDOG=1" for _, line in self.systemd.heard)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.systemd.close()


def settle(pid: int, quiet_s: float = 1.0, within_s: float = 15.0) -> None:
    """Until the gateway has written nothing for ``quiet_s`` (its start's last writes)."""
    deadline = time.monotonic() + within_s
    last = Io.of(pid)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = Io.of(pid)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return


def wait(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {within_s} s")
        time.sleep(0.05)


class FsyncCount:
    """strace attached to every thread of a running process, counting fsync and fdatasync
    (and its children's, so a solve's worker would show; it reads only)."""

    def __init__(self, pid: int, out: Path) -> None:
        binary = shutil.which("strace")
        assert binary is not None  # see main()
        self._out = out
        self._proc = subprocess.Popen(
            [binary, "-c", "-f", "-e", "trace=fsync,fdatasync", "-o", str(out), "-p", str(pid)],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached before the window opens

    def stop(self) -> int:
        self._proc.send_signal(signal.SIGINT)  # detaches and writes its summary
        self._proc.wait(10)
        calls = 0
        for line in self._out.read_text().splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)$", line)
            if m:
                calls += int(m.group(1))
        return calls


def run_once(args: argparse.Namespace, seed: int) -> Run:
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    tmp = Path(tempfile.mkdtemp(prefix="lg-wear-"))
    (tmp / "broker").mkdir()
    data = tmp / "data"
    data.mkdir()
    broker = Mosquitto(binary, tmp / "broker")
    broker.start()
    hub = HubClient("127.0.0.1", broker.port)
    # The reference line as that checkout has it (its config keys are that version's).
    line = args.gateway_root / "station_configs" / "reference-line"
    gw = GatewayProcess(data, broker.port, free_port(), config=line)
    if args.gateway_root != ROOT:
        # Another checkout's gateway: its process (same pid: exec) starts in that folder,
        # so `python -m gateway` and its solver workers are that checkout's.
        gw.args = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(args.gateway_root), *gw.args]
    watchdog = Watchdog(args.watchdog_s)
    devices = sum(len(st.devices) for st in load_line_config(gw.config).stations.values())
    try:
        hub.publish("in/masterdata/catalog", (DATA / "reference-catalog.json").read_bytes(), True)
        hub.publish("in/masterdata/stock", (DATA / "reference-stock.json").read_bytes(), True)
        # Terminals paired and tokens made before the start, as an admin would; by the
        # gateway's own checkout (its schema) when it is another one.
        if args.gateway_root == ROOT:
            _ = gw.keys
        else:
            gw._keys = keys_of(args.gateway_root, gw)  # the cache .keys reads
        with environment(watchdog.env):  # GatewayProcess passes os.environ on
            gw.start()
        assert gw.proc is not None
        pid = gw.proc.pid
        wait(lambda: any(s["state"] == "online" for s in hub.status), 20, "the gateway online")
        wait(lambda: devices_down(gw.db) >= devices, 120, f"{devices} device alarms raised")
        settle(pid)
        fsyncs = FsyncCount(pid, tmp / "strace.txt") if args.fsyncs else None
        files0 = sum(files_bytes(gw.db))
        data0, _ = data_bytes(gw.db)
        log0 = gw.log.stat().st_size
        io0 = Io.of(pid)
        t0 = time.monotonic()
        batch = orders(args.orders, seed)
        for doc in batch:
            hub.publish("in/orders", doc)
        units = sum(line["qty"] for doc in batch for line in doc["lines"])
        accepted = lambda: len(hub.events("order.accepted")) >= args.orders  # noqa: E731
        wait(accepted, 60, f"{args.orders} orders accepted")
        actions = asyncio.run(work(gw, hub, args.orders))
        wait(lambda: pending(gw) == 0, 60, "the outbox empty")
        last = int(hub.events()[-1]["seq"])
        settle(pid)
        io1 = Io.of(pid)
        seconds = time.monotonic() - t0
        counted = fsyncs.stop() if fsyncs is not None else None
        main, wal = files_bytes(gw.db)
        data1, size = data_bytes(gw.db)
        log1 = gw.log.stat().st_size
        idle = None
        if args.idle_s > 0:
            time.sleep(args.idle_s)
            idle = Io.of(pid).write_bytes - io1.write_bytes - (gw.log.stat().st_size - log1)
        if args.watchdog_s > 0 and watchdog.pings() == 0:
            raise RuntimeError("the gateway never pinged the watchdog")
        return Run(
            orders=args.orders,
            units=units,
            actions=actions,
            events=last,
            seconds=round(seconds, 1),
            write_bytes=io1.write_bytes - io0.write_bytes,
            wchar=io1.wchar - io0.wchar,
            log_bytes=log1 - log0,
            files_bytes_before=files0,
            files_bytes_after=main + wal,
            wal_bytes_after=wal,
            data_bytes_before=data0,
            data_bytes_after=data1,
            page_size=size,
            fsyncs=counted,
            watchdog_s=args.watchdog_s,
            idle_s=args.idle_s,
            idle_write_bytes=idle,
        )
    finally:
        gw.stop()
        hub.close()
        broker.stop()
        watchdog.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def keys_of(root: Path, gw: GatewayProcess) -> LineKeys:
    """The line's credentials made in ``gw``'s database by the checkout at ``root``."""
    script = (
        "import json, sys; from datetime import UTC, datetime, timedelta; "
        "from pathlib import Path; from gateway.config.load import load_line_config; "
        "from tests.keys import issue_keys_in; "
        "now = datetime.now(UTC) + timedelta(seconds=float(sys.argv[3])); "
        "k = issue_keys_in(Path(sys.argv[1]), load_line_config(Path(sys.argv[2])), now); "
        "print(json.dumps([dict(k.terminals), dict(k.tokens)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(gw.db), str(gw.config), str(gw.clock_offset_s)],
        cwd=root,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    terminals, tokens = json.loads(out)
    return LineKeys(terminals, tokens)


def pending(gw: GatewayProcess) -> int:
    doc = httpx.get(gw.base + "/api/health", timeout=5).json()
    return int(doc["outbox_pending"])


async def work(gw: GatewayProcess, hub: HubClient, n: int) -> int:
    """Every station worked until the hub has ``n`` orders completed; the actions done."""
    posts = 0

    async def count(request: httpx.Request) -> None:
        nonlocal posts
        posts += request.method == "POST"

    driver = Driver(gw.base)
    async with gw.async_client(timeout=30) as c:
        c.event_hooks["request"].append(count)
        await driver.run_until_idle(c)
    done = len(hub.events("order.completed"))
    if done < n:
        raise RuntimeError(f"only {done} of {n} orders packed; refusals {driver.refusals[:3]}")
    return posts


def table(runs: list[Run]) -> str:
    rows = [r.summary() for r in runs]

    def spread(key: str) -> str:
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            return "-"
        lo, hi = min(values), max(values)
        return f"{lo}" if lo == hi else f"{lo}–{hi} (median {statistics.median(values)})"

    first = rows[0]
    watchdog = f"watchdog {first['watchdog_s']} s" if first["watchdog_s"] else "no watchdog"
    lines = [
        f"{first['orders']} orders, {first['units']} units, {first['actions']} station "
        f"actions, {first['events']} events; page size {first['page_size']}; {watchdog}; "
        f"{len(rows)} run(s)",
        f"  written to disk per packed order   {spread('write_kib_per_order')} KiB"
        f"   (without the log: {spread('write_kib_per_order_without_log')} KiB)",
        f"  write calls' bytes per order       {spread('wchar_kib_per_order')} KiB",
        f"  written per station action         {spread('write_bytes_per_action')} bytes",
        f"  fsync + fdatasync per order        {spread('fsyncs_per_order')}",
        f"  database: live data per order      {spread('data_kib_per_order')} KiB",
        f"  database: files after (main + WAL) {spread('files_bytes_after')} bytes"
        f" (WAL {spread('wal_bytes_after')})",
        f"  idle: written per hour             {spread('idle_kib_per_hour')} KiB",
        f"  run time                           {spread('seconds')} s",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--orders", type=int, default=29)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--fsyncs", action="store_true", help="count fsync/fdatasync with strace")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.add_argument("--keep", action="store_true", help="keep the run's folder (its database)")
    p.add_argument(
        "--watchdog-s",
        type=float,
        default=30.0,
        help="systemd's WatchdogSec for the gateway (0: none; the unit's is 30)",
    )
    p.add_argument(
        "--idle-s", type=float, default=0.0, help="then measure the idle gateway this long"
    )
    p.add_argument(
        "--gateway-root",
        type=Path,
        default=ROOT,
        help="run the gateway of another checkout (git archive COMMIT | tar -x -C DIR)",
    )
    args = p.parse_args()
    if args.fsyncs and shutil.which("strace") is None:
        print("--fsyncs needs strace (apt-get install strace): not counted", file=sys.stderr)
        args.fsyncs = False
    runs = []
    for _ in range(args.runs):
        run = run_once(args, args.seed)
        runs.append(run)
        if args.json:
            print(json.dumps(run.summary()), flush=True)
    if not args.json:
        print(table(runs))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
