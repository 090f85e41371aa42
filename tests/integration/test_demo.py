"""The demo for real: gateway, simulated hub and operators, in process, over MQTT, as a command."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_sync.memory import MemoryHub, MemoryLink
from gateway.access import passwords
from gateway.access.accounts import find_user
from gateway.access.audit import read_trail
from gateway.app.root import Gateway
from gateway.cli import demo as demo_module
from gateway.cli.demo import REFERENCE_LINE, Demo, demo_start, run_demo
from gateway.cli.main import _parser
from gateway.config.load import load_line_config
from gateway.store.db import Store
from gateway.store.rows import AuditOutcome
from simulators.hub import MemoryTransport, SimulatedHub
from simulators.operators import Person, SimulatedOperator, assign_staff, station_loads
from simulators.orders import (
    BAD_KINDS,
    generate_orders,
    load_reference_catalog,
    load_reference_stock,
)
from tests.clocks import LINE_MORNING, ManualClock, line_clock
from tests.conftest import Mosquitto
from tests.keys import issue_keys

ROOT = Path(__file__).resolve().parents[2]
SPEED = "600"


# The demo's line clock starts here, not at today's date and hour.
START = ["--start", LINE_MORNING.isoformat()]
# A fixed run: its orders, then the verdict (by default the demo runs until Ctrl-C).
FIXED = "--exit-when-done"


def _demo(argv: list[str]) -> tuple[int, Demo]:
    args = _parser().parse_args(["demo", FIXED, *START, *argv])
    built: list[Demo] = []
    rc = run_demo(args, on_start=built.append)
    assert len(built) == 1
    return rc, built[0]


def _assert_clean_run(demo: Demo) -> None:
    hub, c = demo.hub, demo.hub.counters
    assert demo.problems == []
    assert c.released == len(demo.orders)
    assert c.released_good == sum(1 for o in demo.orders if o.good)
    # Every good order accepted and completed, each bad one rejected with its own code.
    assert c.accepted == c.released_good
    assert c.completed == c.released_good
    assert hub.outstanding == []
    assert hub.rejected_good == []
    assert c.rejected == c.released_bad
    assert hub.rejections_as_expected
    # The event stream is whole: seq 1..last, nothing missing, and it holds all there is.
    assert c.gaps == 0
    assert hub.missing_seqs() == []
    assert 0 < c.max_seq <= demo.gateway.outbox.last_seq  # the demo's drain checked "=="
    assert c.unique == c.max_seq
    # The operators made mistakes and the gateway refused every one of them.
    ops = [op.counters for op in demo.operators]
    assert sum(o.accepted_mistakes for o in ops) == 0
    assert sum(o.errors for o in ops) == 0
    assert sum(o.tasks_done for o in ops) >= c.completed
    # The line ran on the planner: plans made as orders came, none failed.
    planner = demo.gateway.planner
    assert planner is not None
    assert planner.replanner.stats.requests["orders arrived"] > 0
    assert planner.replanner.stats.replans >= 2
    assert planner.replanner.stats.failures == 0


def test_demo_in_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine fault that shows the alarm notifications comes early in this short run
    # and lasts past its escalation (10 min of line time: 1 s at ×600).
    monkeypatch.setattr(demo_module, "FAULT_AFTER_S", 1.0)
    monkeypatch.setattr(demo_module, "FAULT_HOLD_S", 3.0)
    rc, demo = _demo(
        [
            "--orders",
            "24",
            "--speed",
            SPEED,
            "--http-port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--error-rate",
            "0.15",
            "--seed",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    _assert_clean_run(demo)
    c = demo.hub.counters
    assert c.released == 24
    assert set(c.rejection_codes) >= set(BAD_KINDS)  # each kind of bad order came and went
    ops = [op.counters for op in demo.operators]
    assert sum(sum(o.mistakes.values()) for o in ops) > 0
    assert sum(o.expected_refusals for o in ops) > 0
    assert {op.station for op in demo.operators} == set(demo.config.stations)
    assert f"{demo.api_url}/api/stations" in out
    assert "RESULT: OK" in out
    assert (tmp_path / "linegate.db").exists()
    # Its end: the shift's report so far, in both languages, with the run's figures.
    shift = next(line for line in out.splitlines() if line.startswith("  shift report"))
    folder = Path(shift.split()[2])
    assert folder.parent == tmp_path / "reports", shift
    for name in ("report.zh-CN.html", "report.en.html", "report.json", "kpis.csv"):
        assert (folder / name).exists(), name
    made = json.loads((folder / "report.json").read_text())
    period = made["period"]
    with sqlite3.connect(tmp_path / "linegate.db") as db:
        (packed,) = db.execute(
            "SELECT count(*) FROM orders WHERE completed_at >= ? AND completed_at < ?",
            (period["start"], period["end"]),
        ).fetchone()
    assert made["kpis"]["line"]["orders_completed"] == packed
    _assert_enrolled(demo, out, tmp_path / "linegate.db")
    _assert_notices(demo, out, tmp_path / "linegate.db")


def _assert_notices(demo: Demo, out: str, db: Path) -> None:
    """What the demo printed of pick requests, parcels and alarm notifications is what the
    line did: each revision of each request a line, the parcels' containers as consumed,
    the machine fault told to its people, then (unacknowledged) to the admin."""
    catalog = load_reference_catalog()
    containers = {m["material"] for m in catalog["materials"] if "container" in m}
    with sqlite3.connect(db) as conn:
        (revisions,) = conn.execute(
            "SELECT coalesce(sum(revision), 0) FROM pick_requests"
        ).fetchone()
        (orders, units) = conn.execute(
            "SELECT count(DISTINCT o.order_id), count(u.serial) FROM orders o "
            "JOIN units u ON u.order_id = o.order_id AND u.status = 'done' "
            "WHERE o.status = 'completed'"
        ).fetchone()
        used = conn.execute(
            "SELECT c.material, c.qty FROM consumption c JOIN orders o USING (order_id) "
            "WHERE o.status = 'completed'"
        ).fetchall()
    printed = [line for line in out.splitlines() if re.match(r"  pick PR-\S+ r\d+:", line)]
    assert revisions > 0 and len(printed) == revisions, (revisions, printed)
    boxes = sum(qty for material, qty in used if material in containers)
    summary = re.search(r"parcels +(\d+) parcels, (\d+) units: (\d+) containers", out)
    assert summary is not None, out
    assert (int(summary[1]), int(summary[2]), int(summary[3])) == (orders, units, boxes)
    assert re.search(r"  parcel \S+: \d+ units? in ", out)
    robots = demo.notices.robots
    assert robots is not None
    told = [r for r in robots.received if r.ok and "emb-1" in r.text]
    assert told, out
    # The maintenance contact first (张敏's mobile), the admin (陈静's) on escalation.
    assert any("13800000003" in r.mentions for r in told)
    assert any("13800000005" in r.mentions for r in told)
    assert re.search(r"notify +wecom .*emb-1", out)


def _assert_enrolled(demo: Demo, out: str, db: Path) -> None:
    """The demo made its accounts with random passwords, printed once, paired each
    station's terminal through the API, and its operators never hit the gate."""
    printed = dict(
        re.findall(r"(\w+) \((?:line_lead|quality|maintenance|admin|viewer)\) (\S+)", out)
    )
    assert set(printed) == {"lead", "quality", "maintenance", "admin", "viewer"}, out
    store = Store(db)
    store.open_readonly()
    try:
        for username, password in printed.items():
            user = find_user(store, username)
            assert user is not None and passwords.verify(user.password_hash, password)
        assert len(set(printed.values())) == len(printed)  # none shared, none built in
        claims = read_trail(store, action="terminal_claim", outcome=AuditOutcome.OK)
        assert {c.station for c in claims} == set(demo.config.stations)
        assert read_trail(store, action="request") == []  # nothing refused at the gate
    finally:
        store.close()


def test_demo_over_mqtt(tmp_path: Path, mosquitto: Mosquitto) -> None:
    rc, demo = _demo(
        [
            "--broker",
            f"mqtt://{mosquitto.host}:{mosquitto.port}",
            "--orders",
            "12",
            "--speed",
            SPEED,
            "--http-port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--seed",
            "5",
            "--site",
            "sz02",
            "--line",
            "line1",
        ]
    )
    assert rc == 0, demo.problems
    assert demo.config.gateway_id == "sz02/line1"
    assert demo.transport.startswith("MQTT")
    _assert_clean_run(demo)


def test_demo_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "demo",
            FIXED,
            "--orders",
            "12",
            "--speed",
            SPEED,
            "--http-port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--seed",
            "11",
            *START,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "RESULT: OK" in out
    assert re.search(r"station API +http://127\.0\.0\.1:\d+/api/stations", out)
    done = re.search(r"orders completed +(\d+) of (\d+)", out)
    assert done is not None and done.group(1) == done.group(2) and int(done.group(1)) > 0
    assert re.search(r"orders rejected +[1-9]", out)
    assert re.search(r"seq gaps 0\b", out)


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_demo(_parser().parse_args(["demo", "--speed", "0"]))
    assert rc == 2
    assert "--speed" in capsys.readouterr().err
    rc = run_demo(_parser().parse_args(["demo", "--start", "2026-11-26T10:00:00"]))
    assert rc == 2
    assert "--start needs a UTC offset" in capsys.readouterr().err


async def test_hub_replenishes_a_shortage(tmp_path: Path) -> None:
    """Orders for more red caps than the WMS holds: shortage, refill, all shipped."""
    speed = 600.0
    catalog, stock = load_reference_catalog(), load_reference_stock()
    for item in stock["items"]:
        if item["material"] == "BLANK-CAP-RED":
            item["qty"] = 2
    # The line's clock from a fixed morning: the lots' expiry and the shifts are read on it.
    clock = line_clock(speed=speed)
    orders = generate_orders(
        catalog,
        stock,
        count=4,
        now=clock.now(),
        seed=1,
        bad_rate=0.0,
        respect_stock=False,
        sku_weights={"CAP-EMB-RED": 1.0},
    )
    assert sum(o.units for o in orders) > 2
    config = load_line_config(REFERENCE_LINE)
    memory = MemoryHub()
    link = MemoryLink(memory, config.line.site, config.line.line, clock.now)
    gateway = Gateway(config, data_dir=tmp_path, clock=clock, link=link, http_port=0)
    hub = SimulatedHub(
        MemoryTransport(memory),
        catalog=catalog,
        stock=stock,
        orders=orders,
        clock_now=clock.now,
        speed=speed,
        waves=1,
    )
    gw_task = asyncio.create_task(gateway.run())
    await gateway.started.wait()
    hub_task = asyncio.create_task(hub.run())
    keys = issue_keys(gateway.store, config, clock.now())
    stations = {"emb-1": ["OP-1003", "OP-1004", "OP-1007"], "pack-1": None}
    staff = assign_staff(stations, ["OP-1004", "OP-1001"], {})
    ops = [
        SimulatedOperator(
            f"http://127.0.0.1:{gateway.http_port}",
            sid,
            Person(badge),
            catalog=catalog,
            speed=speed,
            seed=2,
            auth=keys,
        )
        for sid, badge in staff.items()
    ]
    op_tasks = [asyncio.create_task(op.run()) for op in ops]
    try:
        async with asyncio.timeout(40):
            await hub.done.wait()
    finally:
        for op in ops:
            op.stop()
        await asyncio.gather(*op_tasks)
        for task in (hub_task, gw_task):
            task.cancel()
        await asyncio.gather(hub_task, gw_task, return_exceptions=True)
    c = hub.counters
    assert c.shortages >= 1
    assert c.replenishments >= 1
    assert c.completed == len(orders)
    assert c.gaps == 0
    assert all(op.counters.errors == 0 for op in ops)


def test_orders_are_reproducible_and_fit_the_stock() -> None:
    catalog, stock = load_reference_catalog(), load_reference_stock()
    now = datetime(2026, 11, 11, 1, 0, tzinfo=UTC)
    first = generate_orders(catalog, stock, count=300, now=now, seed=9)
    assert first == generate_orders(catalog, stock, count=300, now=now, seed=9)
    assert first != generate_orders(catalog, stock, count=300, now=now, seed=10)
    kinds = Counter(o.expected_error for o in first if not o.good)
    assert set(kinds) == set(BAD_KINDS)
    held: Counter[str] = Counter()
    for item in stock["items"]:
        held[item["material"]] += item["qty"]
    boms = {s["sku"]: s["bom"] for s in catalog["skus"]}
    used: Counter[str] = Counter()
    for order in first:
        if order.good:
            assert order.doc is not None
            assert 1 <= len(order.doc["lines"]) <= 3
            for line in order.doc["lines"]:
                assert 1 <= line["qty"] <= 3
                for b in boms[line["sku"]]:
                    used[b["material"]] += b["qty"] * line["qty"]
    assert all(used[m] <= held[m] for m in used), used
    assert used["BLANK-CAP-RED"] <= 6


def test_staffing_respects_the_station_lists() -> None:
    config = load_line_config(REFERENCE_LINE)
    catalog = load_reference_catalog()
    caps = {sid: list(st.capabilities) for sid, st in config.stations.items()}
    allowed = {sid: st.operators for sid, st in config.stations.items()}
    # Fewer people than stations: somebody works two stations, each one that accepts them.
    badges = [o.badge for o in config.operators][: len(config.stations) - 1]
    staff = assign_staff(allowed, badges, station_loads(catalog, caps))
    assert set(staff) == set(config.stations)
    for sid, badge in staff.items():
        assert allowed[sid] is None or badge in (allowed[sid] or [])
    assert len(set(staff.values())) == len(badges)


def test_the_hub_counts_duplicates_and_gaps() -> None:
    hub = SimulatedHub(
        MemoryTransport(MemoryHub()),
        catalog=load_reference_catalog(),
        stock=load_reference_stock(),
        orders=[],
        clock_now=ManualClock(LINE_MORNING).now,
    )

    def env(seq: int) -> dict[str, object]:
        return {"seq": seq, "type": "task.started", "data": {}}

    hub.on_events([env(1), env(2), env(2), env(4)])
    assert hub.counters.duplicates == 1
    assert hub.counters.gaps == 1
    assert hub.missing_seqs() == [3]
    hub.on_events([env(3)])
    assert hub.counters.gaps == 0
    assert hub.counters.events_received == 5


def test_the_demo_clock_starts_in_working_time() -> None:
    config = load_line_config(REFERENCE_LINE)  # shifts 08:00-24:00, Asia/Shanghai
    morning = datetime.fromisoformat("2026-11-26T10:00:00+08:00")
    assert demo_start(config, morning) == morning
    night = datetime.fromisoformat("2026-11-26T02:00:00+08:00")
    assert demo_start(config, night) == datetime.fromisoformat("2026-11-25T16:00:00+08:00")
