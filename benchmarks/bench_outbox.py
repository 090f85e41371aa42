"""Store-and-forward: how fast the outbox drains to Mosquitto, and how late a live event is
while a backlog drains.

    .venv/bin/python benchmarks/bench_outbox.py --backlog 1000000
    .venv/bin/python benchmarks/bench_outbox.py --backlog 200000 --live-rate 20
    .venv/bin/python benchmarks/bench_outbox.py --backlog 200000 --transport http

A backlog of ``--backlog`` events (a task.completed-sized envelope each, ~420 bytes) is
written to a real SQLite outbox, as the gateway writes them (Outbox.append inside store
transactions, 1,000 per transaction). Then the gateway's MQTT link (cloud_sync/mqtt.py)
starts against a Mosquitto on loopback and drains it; a subscriber in another process
counts every event (arrays of envelopes, as the contract allows) and reports when the last
one arrived. With ``--live-rate``, this process commits that many live events per second
from the moment the link is up, while the backlog drains, each stamped with its commit
time; the subscriber measures
commit-to-broker-delivery latency for them. The gateway's resident memory is sampled
while it drains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.cli.main import _without_pandas  # noqa: E402

_without_pandas()

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from cloud_sync.http import HttpLink, HttpSettings, MemoryLinkState  # noqa: E402
from cloud_sync.mqtt import MqttLink, MqttSettings  # noqa: E402
from cloud_sync.ports import InboundMessage  # noqa: E402
from gateway.percentiles import percentile  # noqa: E402
from gateway.store.db import Store  # noqa: E402
from gateway.store.outbox import Outbox  # noqa: E402

SITE, LINE = "bench", "outbox"
PREFIX = f"linegate/v1/{SITE}/{LINE}/"


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
        "max_queued_messages 1000000\nmax_inflight_messages 0\n"
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


def rss_mib() -> float:
    with Path("/proc/self/status").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def event_data(n: int) -> dict[str, Any]:
    """A task.completed's data, as the line writes it."""
    return {
        "task_id": n,
        "order_id": f"TM26111108{n:08d}",
        "serial": f"LINE3-{n:08d}",
        "op": "print",
        "station": "dtg-1",
        "operator": "OP-1001",
        "machine": "dtg-1/machine",
        "lots": [{"material": "INK-DTG-CMYK", "lot": "INK-DTG-CMYK-L2611A", "qty": 6}],
        "started_at": "2026-11-11T08:00:00.000+00:00",
        "completed_at": "2026-11-11T08:00:45.000+00:00",
        "attempt": 1,
    }


def fill(outbox: Outbox, store: Store, count: int) -> None:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    for start in range(0, count, 1000):
        with store.transaction():
            for n in range(start, min(count, start + 1000)):
                outbox.append("task.completed", event_data(n), ts, f"TM26111108{n:08d}")


# -- the subscriber (its own process) ------------------------------------------------------


def subscriber(port: int, expect: int) -> None:
    """Count events until ``expect`` arrived; print one JSON line with the times."""
    got = 0
    first: float | None = None
    live: list[float] = []
    done = False
    last_seq = 0
    out_of_order = 0

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got, first, done, last_seq, out_of_order
        now = time.time()
        if first is None:
            first = now
        events = json.loads(msg.payload)
        for e in events if isinstance(events, list) else [events]:
            got += 1
            seq = int(e["seq"])
            if seq <= last_seq:
                out_of_order += 1
            last_seq = max(last_seq, seq)
            committed = e["data"].get("committed_at")
            if committed is not None:
                live.append((now - committed) * 1000)
        if got >= expect:
            done = True

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub")
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.subscribe(PREFIX + "out/events", qos=1)
    client.loop_start()
    print("ready", flush=True)
    while not done:
        time.sleep(0.01)
    client.loop_stop()
    print(
        json.dumps(
            {
                "received": got,
                "first_at": first,
                "last_at": time.time(),
                "out_of_order": out_of_order,
                "live_ms": live,
            }
        ),
        flush=True,
    )


# -- the gateway side ------------------------------------------------------------------------


class _NoInbound:
    def deliver(self, messages: Sequence[InboundMessage]) -> None:
        del messages


class _Link(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def published(self) -> int: ...

    def run(self, sink: Any, outbox: Outbox) -> Coroutine[Any, Any, None]: ...


async def run_link(
    link: _Link, outbox: Outbox, store: Store, args: argparse.Namespace, live_total: int
) -> tuple[float, float, float, int]:
    """Run ``link`` until it published the backlog and ``live_total`` live events, the live
    ones committed at ``args.live_rate`` from the moment it is up (earlier ones would be
    backlog). (drain seconds, RSS before, RSS peak, live events sent)."""
    rss_before = peak = rss_mib()
    t0 = time.perf_counter()
    running = asyncio.create_task(link.run(_NoInbound(), outbox))
    live_sent = 0
    try:
        next_live = time.perf_counter()
        # Polled by the link's own count of acknowledged events: a count(*) of a
        # million-row outbox every few milliseconds would be the benchmark's own load.
        while link.published < args.backlog + live_total:
            now = time.perf_counter()
            if not link.connected:
                next_live = now
            elif live_sent < live_total and now >= next_live:
                with store.transaction():
                    # Stamped within microseconds of the commit that follows.
                    outbox.append(
                        "task.completed",
                        {**event_data(10**9 + live_sent), "committed_at": time.time()},
                        datetime.now(UTC).isoformat(timespec="milliseconds"),
                    )
                live_sent += 1
                next_live += 1.0 / args.live_rate
            peak = max(peak, rss_mib())
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0, rss_before, peak, live_sent
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def drain_http(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    store = Store(tmp / "gateway.db")
    store.open()
    outbox = Outbox(store, f"{SITE}/{LINE}")
    outbox.load()
    fill(outbox, store, args.backlog)
    port = free_port()
    hub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.http_hub", "--site", SITE, "--line", LINE,
        "--port", str(port), cwd=ROOT,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    settings = HttpSettings(
        base_url=f"http://127.0.0.1:{port}", site=SITE, line=LINE,
        batch_max=args.per_message, poll_s=60, masterdata_poll_s=3600,
    )  # fmt: skip
    link = HttpLink(settings, MemoryLinkState())
    live_total = int(args.live_rate * args.live_seconds)
    try:
        drain_s, rss_before, peak, live_sent = await run_link(link, outbox, store, args, live_total)
        async with httpx.AsyncClient() as c:
            stats: dict[str, Any] = (await c.get(f"{settings.root}/stats")).json()
    finally:
        hub.terminate()
        await hub.wait()
        store.close()
    live = stats.get("live_ms", [])
    extra: dict[str, Any] = {}
    if live:
        extra = {
            "live_events": len(live),
            "live_ms_p50": round(percentile(live, 50), 1),
            "live_ms_p99": round(percentile(live, 99), 1),
            "live_ms_max": round(max(live), 1),
        }
    return extra | {
        "transport": "http",
        "backlog": args.backlog,
        "events_per_post": args.per_message,
        "drain_s": round(drain_s, 2),
        "events_per_s": round((args.backlog + live_sent) / drain_s),
        "retries": link.retries,
        "hub_held": stats.get("held"),
        "hub_duplicates": stats.get("duplicates"),
        "rss_before_mib": round(rss_before, 1),
        "rss_peak_mib": round(peak, 1),
    }


async def drain(args: argparse.Namespace, tmp: Path, port: int) -> dict[str, Any]:
    store = Store(tmp / "gateway.db")
    store.open()
    outbox = Outbox(store, f"{SITE}/{LINE}")
    outbox.load()
    t0 = time.perf_counter()
    fill(outbox, store, args.backlog)
    fill_s = time.perf_counter() - t0
    db_mib = (tmp / "gateway.db").stat().st_size / 2**20
    live_total = int(args.live_rate * args.live_seconds)
    sub = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--subscriber",
        str(port),
        str(args.backlog + live_total),
        stdout=asyncio.subprocess.PIPE,
    )
    assert sub.stdout is not None
    assert (await sub.stdout.readline()).strip() == b"ready"
    settings = MqttSettings(
        host="127.0.0.1",
        port=port,
        site=SITE,
        line=LINE,
        client_id="bench-gateway",
        keepalive_s=30,
        version="bench",
        events_per_message=args.per_message,
        **({"backlog_window": args.backlog_window} if args.backlog_window else {}),
    )
    link = MqttLink(settings, lambda: datetime.now(UTC))
    drain_s, rss_before, peak, live_sent = await run_link(link, outbox, store, args, live_total)
    async with asyncio.timeout(120):
        out, _ = await sub.communicate()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    store.close()
    live = seen.pop("live_ms")
    result: dict[str, Any] = {
        "backlog": args.backlog,
        "events_per_message": args.per_message,
        "fill_s": round(fill_s, 1),
        "db_mib": round(db_mib, 1),
        "drain_s": round(drain_s, 2),
        "events_per_s": round((args.backlog + live_sent) / drain_s),
        "received": seen["received"],
        "out_of_order": seen["out_of_order"],
        "rss_before_mib": round(rss_before, 1),
        "rss_peak_mib": round(peak, 1),
    }
    if live:
        result |= {
            "live_events": len(live),
            "live_ms_p50": round(percentile(live, 50), 1),
            "live_ms_p99": round(percentile(live, 99), 1),
            "live_ms_max": round(max(live), 1),
        }
    return result


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--subscriber":
        subscriber(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--backlog-window", type=int, default=None, help="messages")
    parser.add_argument("--live-rate", type=float, default=0.0, help="live events per second")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--transport", choices=["mqtt", "http"], default="mqtt")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-outbox-"))
    if args.transport == "http":
        try:
            print(json.dumps(asyncio.run(drain_http(args, tmp))))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    broker, port = start_broker(tmp)
    try:
        result = asyncio.run(drain(args, tmp, port))
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
