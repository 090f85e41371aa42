"""The office at scale: how many lines' events one office keeps up with, how several share
the work, what a killed instance costs, and how fast a shop's order is routed.

    .venv/bin/python benchmarks/bench_office.py --json            # all parts, < 5 min
    .venv/bin/python benchmarks/bench_office.py --quick --json    # a smoke run, < 60 s
    .venv/bin/python benchmarks/bench_office.py --parts sqlite --cpu-quota 1.2 --json

Every office is ``linegate-office run`` as a process of its own (in a cgroup of
``--cpu-quota`` cores when given), on its office.toml, against a real Mosquitto on a free
loopback port. The lines are the gateway's own MQTT link (cloud_sync.mqtt.MqttLink, arrays
of up to 100 events per message as the gateway sends them) over an outbox in memory that
events enter at the line's pace, stamped (``ts``) as they enter: the gateway's commit. The
latency is the office's ``received_at`` minus that ``ts`` (one clock: the same machine).

- **sqlite**: one office on its SQLite file; the 20 lines at their promotion-day rate, then
  at 2x, 5x, ... until the office no longer keeps up (it has not stored every event of a
  step within ``--grace-s`` after the step's last one was sent).
- **postgresql**: 2 and 3 offices on one PostgreSQL (Debian's server in a temporary folder)
  in one shared-subscription group; the same ramp, and the share each instance stored
  (its ``/metrics``). Then the kill: at ``--kill-multiple``, one instance is killed with
  SIGKILL mid-stream and started again after ``--down-s`` (as systemd's Restart= would);
  afterwards each line's events are counted in the store: every seq once, none missing,
  ``held_through`` = the last seq sent.
- **routing**: ``POST /v1/orders`` to one office (SQLite) knowing 20 lines' catalogs, one
  order per request and batches of 100: p50/p99 of the answer.

The promotion-day rate: a line's promotion day is 5,000 orders (README, BENCHMARKS: the
capacity check and the numbers); a packed order is ~37 events (the SD-card wear run: 29
orders, 1,070 events); over two shifts (16 h) that is 5,000 x 37 / 57,600 s = 3.2 events/s
a line, 64 events/s for 20 lines. ``--events-per-order`` and ``--day-hours`` change it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from bench_line import CpuQuota, cpu_quota  # noqa: E402 - after the path

from cloud_sync.mqtt import MqttLink, MqttSettings  # noqa: E402
from cloud_sync.ports import InboundMessage, OutboxRecord  # noqa: E402
from gateway.percentiles import percentile  # noqa: E402
from office.store import Store  # noqa: E402
from simulators.orders import load_reference_catalog  # noqa: E402
from tests.conftest import Mosquitto, find_mosquitto, free_port  # noqa: E402
from tests.office.conftest import PostgreSQL  # noqa: E402

OFFICE = ROOT / ".venv" / "bin" / "linegate-office"
READER_TOKEN = "bench-reader-token"
SHOP_TOKEN = "bench-shop-token"
SITE = "bench"
# Queued for an absent persistent session: Mosquitto's default (1,000) drops the rest of
# a killed instance's share; a site's broker sets it high (deploy/mosquitto). In flight
# per client: bounded, as deploy/mosquitto has it (the office's receiver stops reading its
# socket with 400 messages waiting; a session resumed with more in flight than that never
# gets its SUBACK read: the lead's report has it).
BROKER = "allow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 100\n"


def _utc() -> datetime:
    return datetime.now(UTC)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the lines -------------------------------------------------------------------------------


class PacedOutbox:
    """A line's outbox in memory (the port cloud_sync's links drain); events enter it at the
    line's pace, stamped as they enter."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.pending: dict[int, bytes] = {}
        self._last_seq = 0
        self._grew = asyncio.Event()

    def commit(self, count: int) -> None:
        ts = _utc().isoformat(timespec="microseconds")
        for _ in range(count):
            self._last_seq += 1
            seq = self._last_seq
            doc = {
                "v": 1, "gateway_id": self.gateway_id, "seq": seq,
                "event_id": f"{self.gateway_id}:{seq}", "ts": ts, "type": "task.completed",
                "order_id": f"SO-{seq // 37}",
                "data": {"task_id": seq, "station": "dtg-1", "operator": "OP-1001", "op": "print"},
            }  # fmt: skip
            self.pending[seq] = json.dumps(doc).encode()
        self._grew.set()
        self._grew = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def peek(self, after_seq: int, limit: int) -> list[OutboxRecord]:
        seqs = sorted(seq for seq in self.pending if seq > after_seq)[:limit]
        return [OutboxRecord(seq, self.pending[seq]) for seq in seqs]

    def ack(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            self.pending.pop(seq, None)

    async def wait_for_new(self, after_seq: int) -> None:
        while self._last_seq <= after_seq:
            await self._grew.wait()


class _NoSink:
    def deliver(self, messages: Sequence[InboundMessage]) -> None:
        return None


def line_ids(count: int) -> list[str]:
    return [f"{SITE}/line{i:02d}" for i in range(1, count + 1)]


@dataclass
class Lines:
    """``count`` lines' gateway links publishing into ``broker``."""

    broker: Mosquitto
    count: int
    outboxes: list[PacedOutbox] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        for gateway_id in line_ids(self.count):
            line = gateway_id.split("/")[1]
            outbox = PacedOutbox(gateway_id)
            settings = MqttSettings(
                host=self.broker.host, port=self.broker.port, site=SITE, line=line,
                client_id=f"linegate-{SITE}-{line}", events_per_message=100,
            )  # fmt: skip
            link = MqttLink(settings, _utc)
            self.outboxes.append(outbox)
            self._tasks.append(asyncio.create_task(link.run(_NoSink(), outbox)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def sent(self) -> int:
        return sum(o.last_seq for o in self.outboxes)

    @property
    def unacked(self) -> int:
        return sum(len(o.pending) for o in self.outboxes)

    async def pace(self, per_s: float, seconds: float) -> None:
        """``per_s`` events a second over all lines for ``seconds``."""
        per_line = per_s / len(self.outboxes)
        start = time.monotonic()
        done = [0] * len(self.outboxes)
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * per_line)
            for i, outbox in enumerate(self.outboxes):
                if due > done[i]:
                    outbox.commit(due - done[i])
                    done[i] = due
            await asyncio.sleep(0.02)
        due = int(seconds * per_line)
        for i, outbox in enumerate(self.outboxes):
            if due > done[i]:
                outbox.commit(due - done[i])


# -- the offices -----------------------------------------------------------------------------


class Office:
    """``linegate-office run`` as a child process."""

    def __init__(
        self, folder: Path, store_url: str, broker: Mosquitto, lines: list[str], name: str,
        quota: CpuQuota | None,
    ) -> None:  # fmt: skip
        self.name = name
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._quota = quota
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reader.token").write_text(READER_TOKEN + "\n")
        (folder / "shop.token").write_text(SHOP_TOKEN + "\n")
        text = [
            f'[store]\nurl = "{store_url}"\n',
            f'[mqtt]\nurl = "mqtt://{broker.host}:{broker.port}"\nclient_id = "{name}"\n',
            f'[http]\nhost = "127.0.0.1"\nport = {self.port}\n',
            '[[readers]]\nname = "bench"\ntoken_file = "reader.token"\n',
            '[[shops]]\nname = "shop"\ntoken_file = "shop.token"\n',
        ]
        for gateway_id in lines:
            token = folder / f"{gateway_id.replace('/', '-')}.token"
            token.write_text(f"token-of-{gateway_id}\n")
            text.append(f'[[lines]]\ngateway_id = "{gateway_id}"\ntoken_file = "{token.name}"\n')
        (folder / "office.toml").write_text("\n".join(text))
        self._log = folder / "office.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait for its MQTT link (CONNACK and SUBACK; its handshake gives up after
        10 s, so a ``timeout`` over that has seen it retry)."""
        offset = self._log.stat().st_size if self._log.exists() else 0
        command = [str(OFFICE), "run", "--config", str(self.folder / "office.toml"),
                   "--data-dir", str(self.folder / "data")]  # fmt: skip
        if self._quota is not None:
            command = self._quota.prefix() + command
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while "office MQTT link up" not in self._log.read_text(errors="replace")[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not come up:\n{self._log.read_text()}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        """CPU seconds the office process has used (user + system)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, as a power cut or the OOM killer."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def stored(self) -> dict[str, float]:
        """This instance's counters since it started (its /metrics)."""
        answer = httpx.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {READER_TOKEN}"}, timeout=30
        )
        answer.raise_for_status()
        found: dict[str, float] = {}
        for line in answer.text.splitlines():
            if line.startswith(("linegate_office_events_stored_total", "linegate_office_dupl")):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found


class Db:
    """The office's store read directly (SQLite file or PostgreSQL), as a check would."""

    def __init__(self, url: str) -> None:
        self._url = url

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._url.startswith("sqlite"):
            with contextlib.closing(sqlite3.connect(self._url.split("///", 1)[1])) as conn:
                return conn.execute(sql, params).fetchall()
        dsn = self._url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def count(self) -> int:
        found: int = self.rows("SELECT count(*) FROM events")[0][0]
        return found


async def prepare(url: str, lines: list[str]) -> None:
    """Migrate the store once (not by instances racing) and give each line its catalog:
    the reference catalog without one of its SKUs, so routing has a choice to make."""
    store = await Store.open(url, _utc)
    try:
        for gateway_id, catalog in zip(lines, catalogs(len(lines)), strict=True):
            await store.put_masterdata(gateway_id, "catalog", catalog)
    finally:
        await store.close()


def catalogs(count: int) -> list[dict[str, Any]]:
    reference = load_reference_catalog()
    skus = reference["skus"]
    return [
        {**reference, "skus": [s for j, s in enumerate(skus) if j != i % len(skus)]}
        for i in range(count)
    ]


# -- the parts -------------------------------------------------------------------------------


@dataclass
class Step:
    multiple: float
    offered_per_s: float
    sent: int
    stored: int  # in the end
    stored_within_grace: int
    held_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    kept_up: bool
    loadavg: list[float]
    per_instance: dict[str, float] = field(default_factory=dict)
    lines_unacked_at_end: int = 0
    lines_cpu_s: float = 0.0  # the 20 lines' links (this process)
    offices_cpu_s: float = 0.0
    wall_s: float = 0.0  # the pace and the drain within the grace


async def _drained(db: Db, target: int, within: float) -> float | None:
    """Seconds until the store holds ``target`` events, or None after ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await asyncio.to_thread(db.count) >= target:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    return None


def _latencies(db: Db, since_iso: str) -> list[float]:
    rows = db.rows("SELECT ts, received_at FROM events WHERE ts >= ?", (since_iso,))
    return sorted(
        (datetime.fromisoformat(r).timestamp() - datetime.fromisoformat(t).timestamp()) * 1000
        for t, r in rows
    )


async def ramp(
    lines: Lines, db: Db, offices: list[Office], base_per_s: float, multiples: list[float],
    seconds: float, grace_s: float,
) -> list[Step]:  # fmt: skip
    steps: list[Step] = []
    for multiple in multiples:
        before_sent, before_stored = lines.sent, await asyncio.to_thread(db.count)
        since = _utc().isoformat(timespec="microseconds")
        counters = [await asyncio.to_thread(o.stored) for o in offices]
        start = time.monotonic()
        cpu_before = (time.process_time(), sum(o.cpu_s() for o in offices))
        await lines.pace(base_per_s * multiple, seconds)
        # Not yet taken by the broker when the pace ends: the lines' side falling behind.
        unacked = lines.unacked
        sent = lines.sent - before_sent
        late = await _drained(db, before_stored + sent, grace_s)
        took = time.monotonic() - start
        within_grace = await asyncio.to_thread(db.count) - before_stored
        cpu = (time.process_time() - cpu_before[0], sum(o.cpu_s() for o in offices) - cpu_before[1])
        if late is None:  # let it finish before the next step (or give up on it)
            await _drained(db, before_stored + sent, 60.0)
        stored = await asyncio.to_thread(db.count) - before_stored
        ms = await asyncio.to_thread(_latencies, db, since)
        share = {}
        for office, was in zip(offices, counters, strict=True):
            now_ = await asyncio.to_thread(office.stored)
            key = 'linegate_office_events_stored_total{via="mqtt"}'
            share[office.name] = now_.get(key, 0.0) - was.get(key, 0.0)
        step = Step(
            multiple=multiple, offered_per_s=round(base_per_s * multiple, 1), sent=sent,
            stored=stored, stored_within_grace=within_grace,
            held_per_s=round(within_grace / took, 1),
            p50_ms=round(percentile(ms, 50), 1) if ms else -1.0,
            p99_ms=round(percentile(ms, 99), 1) if ms else -1.0,
            max_ms=round(ms[-1], 1) if ms else -1.0, kept_up=late is not None,
            loadavg=_loadavg(), per_instance=share, lines_unacked_at_end=unacked,
            lines_cpu_s=round(cpu[0], 1), offices_cpu_s=round(cpu[1], 1),
            wall_s=round(took, 1),
        )  # fmt: skip
        steps.append(step)
        print(f"  {step}", file=sys.stderr)
        if not step.kept_up:
            break
    return steps


@contextlib.contextmanager
def broker(folder: Path) -> Iterator[Mosquitto]:
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    folder.mkdir(parents=True, exist_ok=True)
    started = Mosquitto(binary, folder, listener=BROKER)
    started.start()
    try:
        yield started
    finally:
        started.stop()


@contextlib.asynccontextmanager
async def offices_running(offices: list[Office]) -> AsyncIterator[list[Office]]:
    try:
        await asyncio.gather(*(asyncio.to_thread(o.start) for o in offices))
        yield offices
    finally:
        for office in offices:
            await asyncio.to_thread(office.stop)


@contextlib.asynccontextmanager
async def lines_running(mosq: Mosquitto, count: int) -> AsyncIterator[Lines]:
    lines = Lines(mosq, count)
    await lines.start()
    try:
        await asyncio.sleep(0.5)  # connected
        yield lines
    finally:
        await lines.stop()


async def part_sqlite(args: argparse.Namespace, tmp: Path, quota: CpuQuota | None) -> Any:
    ids = line_ids(args.lines)
    url = f"sqlite+aiosqlite:///{tmp / 'sqlite' / 'office' / 'data' / 'office.sqlite3'}"
    (tmp / "sqlite" / "office" / "data").mkdir(parents=True)
    await prepare(url, ids)
    with broker(tmp / "sqlite" / "broker") as mosq:
        office = Office(tmp / "sqlite" / "office", "sqlite:///" + url.split("///", 1)[1],
                        mosq, ids, "office-1", quota)  # fmt: skip
        async with offices_running([office]), lines_running(mosq, args.lines) as lines:
            steps = await ramp(lines, Db(url), [office], args.base_per_s, args.multiples,
                               args.step_s, args.grace_s)  # fmt: skip
    return [vars(s) for s in steps]


async def part_postgresql(args: argparse.Namespace, tmp: Path, pg: PostgreSQL) -> Any:
    ids = line_ids(args.lines)
    out: dict[str, Any] = {}
    for n in args.instances:
        db_name = pg.create_database()
        url = pg.url(db_name)
        await prepare(url, ids)
        folder = tmp / f"pg{n}"
        with broker(folder / "broker") as mosq:
            offices = [Office(folder / f"office-{i}", pg.dsn(db_name), mosq, ids,
                              f"office-{i}", None) for i in range(1, n + 1)]  # fmt: skip
            async with offices_running(offices), lines_running(mosq, args.lines) as lines:
                steps = await ramp(lines, Db(url), offices, args.base_per_s, args.pg_multiples,
                                   args.step_s, args.grace_s)  # fmt: skip
        out[f"{n} instances"] = [vars(s) for s in steps]
    if args.kill:
        out["kill"] = await kill_run(args, tmp, pg, ids)
    return out


async def kill_run(args: argparse.Namespace, tmp: Path, pg: PostgreSQL, ids: list[str]) -> Any:
    """Offices in one group; one SIGKILLed a third into the stream, started again after
    ``down_s``; then every line's seqs counted in the store."""
    db_name = pg.create_database()
    url = pg.url(db_name)
    await prepare(url, ids)
    db = Db(url)
    folder = tmp / "kill"
    n = args.kill_instances
    with broker(folder / "broker") as mosq:
        offices = [Office(folder / f"office-{i}", pg.dsn(db_name), mosq, ids, f"office-{i}",
                          None) for i in range(1, n + 1)]  # fmt: skip
        victim = offices[0]
        async with offices_running(offices), lines_running(mosq, args.lines) as lines:
            rate = args.base_per_s * args.kill_multiple
            stream = asyncio.create_task(lines.pace(rate, args.kill_s))
            await asyncio.sleep(args.kill_s / 3)
            before_kill = await asyncio.to_thread(victim.stored)
            await asyncio.to_thread(victim.kill)
            killed_at = lines.sent
            await asyncio.sleep(args.down_s)
            sent_while_down = lines.sent - killed_at
            stored_at_restart = await asyncio.to_thread(db.count)
            sent_at_restart = lines.sent
            try:
                await asyncio.to_thread(victim.start, args.restart_timeout_s)
                restarted = True
            except RuntimeError as exc:
                print(f"  the killed instance did not come back: {exc}", file=sys.stderr)
                restarted = False
            await stream
            settled = await _drained(db, lines.sent, args.settle_s)
            after = {
                o.name: await asyncio.to_thread(o.stored) for o in offices if o.proc is not None
            }
            sent_per_line = {o.gateway_id: o.last_seq for o in lines.outboxes}
            unacked = lines.unacked
    per_line = {
        g: {"count": c, "min": lo, "max": hi}
        for g, c, lo, hi in db.rows(
            "SELECT gateway_id, count(*), min(seq), max(seq) FROM events GROUP BY gateway_id"
        )
    }
    held = dict(db.rows("SELECT gateway_id, held_through FROM lines"))
    stored = sum(v["count"] for v in per_line.values())
    return {
        "instances": n, "rate_per_s": rate, "seconds": args.kill_s, "down_s": args.down_s,
        "sent": lines.sent, "stored": stored, "settled_after_s": settled,
        "victim_restarted": restarted,
        "gateway_unacked_at_end": unacked,
        "sent_while_down": sent_while_down,
        "missing_at_restart": sent_at_restart - stored_at_restart,
        "victim_before_kill": before_kill, "after": after,
        "lines": {
            g: {"sent": sent_per_line[g], **per_line.get(g, {"count": 0, "min": None,
                "max": None}), "held_through": held.get(g)}
            for g in ids
        },
        "exactly_once": all(
            per_line.get(g, {}).get("count") == sent_per_line[g] == held.get(g)
            and per_line[g]["min"] == 1 and per_line[g]["max"] == sent_per_line[g]
            for g in ids
        ),
    }  # fmt: skip


def _order(i: int, rng: random.Random, skus: list[str]) -> dict[str, Any]:
    return {
        "order_id": f"BENCH-{i:07d}", "revision": 1, "ship_by": "2026-11-12T10:00:00+00:00",
        "lines": [{"sku": s, "qty": rng.randint(1, 3)}
                  for s in rng.sample(skus, rng.randint(1, 2))],
    }  # fmt: skip


async def part_routing(args: argparse.Namespace, tmp: Path) -> Any:
    ids = line_ids(args.lines)
    url = f"sqlite+aiosqlite:///{tmp / 'routing' / 'office' / 'data' / 'office.sqlite3'}"
    (tmp / "routing" / "office" / "data").mkdir(parents=True)
    await prepare(url, ids)
    skus = [s["sku"] for s in load_reference_catalog()["skus"]]
    rng = random.Random(7)
    result: dict[str, Any] = {}
    with broker(tmp / "routing" / "broker") as mosq:
        office = Office(tmp / "routing" / "office", "sqlite:///" + url.split("///", 1)[1],
                        mosq, ids, "office-1", None)  # fmt: skip
        async with (
            offices_running([office]),
            httpx.AsyncClient(
                base_url=office.url,
                headers={"Authorization": f"Bearer {SHOP_TOKEN}"},
                timeout=60,
            ) as client,
        ):
            n = 0
            for size, count in ((1, args.single_orders), (100, args.batches)):
                ms: list[float] = []
                for _ in range(count):
                    body = [_order(n + k, rng, skus) for k in range(size)]
                    n += size
                    start = time.perf_counter()
                    answer = await client.post("/v1/orders", json=body[0] if size == 1 else body)
                    ms.append((time.perf_counter() - start) * 1000)
                    if answer.status_code != 200:
                        raise RuntimeError(f"order refused: {answer.status_code} {answer.text}")
                ms.sort()
                result[f"batch of {size}"] = {
                    "requests": count, "p50_ms": round(percentile(ms, 50), 1),
                    "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(ms[-1], 1),
                    "orders_per_s": round(size * count / (sum(ms) / 1000), 1),
                }  # fmt: skip
                print(f"  routing {size}: {result[f'batch of {size}']}", file=sys.stderr)
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--parts", default="sqlite,postgresql,routing")
    p.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    p.add_argument("--lines", type=int, default=20)
    p.add_argument("--orders-per-day", type=int, default=5000)
    p.add_argument("--events-per-order", type=float, default=37.0)
    p.add_argument("--day-hours", type=float, default=16.0)
    p.add_argument("--multiples", default="1,2,5,10,20,50,100")
    p.add_argument("--pg-multiples", default="5,20,50,100")
    p.add_argument("--step-s", type=float, default=8.0)
    p.add_argument("--grace-s", type=float, default=3.0)
    p.add_argument("--instances", default="2,3")
    p.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--kill-instances", type=int, default=2)
    p.add_argument("--kill-multiple", type=float, default=20.0)
    p.add_argument("--kill-s", type=float, default=15.0)
    p.add_argument("--down-s", type=float, default=3.0)
    p.add_argument("--restart-timeout-s", type=float, default=25.0)
    p.add_argument("--settle-s", type=float, default=30.0)
    p.add_argument("--single-orders", type=int, default=400)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--cpu-quota", type=float, default=None, help="cores for the SQLite office")
    p.add_argument("--json", action="store_true")
    p.add_argument("--workdir", type=Path, default=None, help="kept: the offices' logs")
    return p


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    parts = args.parts.split(",")
    out: dict[str, Any] = {
        "lines": args.lines, "promotion_day_per_s": round(args.base_per_s, 2),
        "loadavg_before": _loadavg(), "cpu_quota": args.cpu_quota,
    }  # fmt: skip
    with (
        contextlib.nullcontext(str(args.workdir))
        if args.workdir is not None
        else tempfile.TemporaryDirectory(prefix="bench-office-")
    ) as name:
        tmp = Path(name)
        if "sqlite" in parts:
            print("sqlite: one office", file=sys.stderr)
            with cpu_quota(args.cpu_quota) as quota:
                out["sqlite"] = await part_sqlite(args, tmp, quota)
        if "postgresql" in parts:
            print("postgresql: instances sharing a group", file=sys.stderr)
            pg = PostgreSQL(args.pg_bindir)
            try:
                pg.start()
                out["postgresql"] = await part_postgresql(args, tmp, pg)
            finally:
                pg.remove()
        if "routing" in parts:
            print("routing: POST /v1/orders", file=sys.stderr)
            out["routing"] = await part_routing(args, tmp)
    out["loadavg_after"] = _loadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.multiples, args.pg_multiples, args.instances = "1,10", "10", "2"
        args.step_s, args.kill_s, args.down_s = 2.0, 5.0, 2.5
        args.restart_timeout_s, args.settle_s = 12.0, 10.0
        args.single_orders, args.batches = 30, 2
    args.multiples = [float(m) for m in str(args.multiples).split(",")]
    args.pg_multiples = [float(m) for m in str(args.pg_multiples).split(",")]
    args.instances = [int(n) for n in str(args.instances).split(",")]
    args.base_per_s = (
        args.lines * args.orders_per_day * args.events_per_order / (args.day_hours * 3600)
    )
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if "postgresql" in args.parts and not found:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    args.pg_bindir = found[-1].parent if found else None
    started = time.monotonic()
    out = asyncio.run(main_async(args))
    out["wall_s"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
