"""``GET /metrics`` of a running gateway, scraped over HTTP as Prometheus does.

A real Gateway on the reference line (its store a SQLite file, its clock by hand, the
station API on a free loopback port) with an HTTP hub link to a port where no hub
answers: every event it commits stays in the outbox. Its devices: pack-1's label printer
(a simulated ZPL printer, so it comes up) and pack-1's scale on a serial port that does
not exist (so it does not). The test does what a line does (master data, orders, a task
done at a terminal, alarms) and reads the scrape with prometheus_client's own parser;
each expected value comes from what the test did, or from the store file read on its own.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from cloud_sync.ports import InboundMessage
from drivers.base import DriverState
from drivers.label_printer.config import LabelPrinterConfig
from gateway import __version__
from gateway.app.root import Gateway, http_link
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.floor.supervisor import SupervisorPolicy
from gateway.orderbook.alarms import clear_alarm, raise_alarm
from gateway.store.rows import Severity
from simulators.keys import LineKeys
from simulators.label_printer import SimulatedPrinter
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, order, stock_doc
from tests.keys import issue_keys

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Wednesday
LOT = "PEN-BRASS-L2611A"  # the reference stock's only lot of PEN-BRASS
# A device that fails waits a minute before its next try: its state holds for the test.
SLOW_RETRY = SupervisorPolicy(initial_s=60, max_s=60, budget=100, window_s=60)


class ManualClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(printer_url: str, *, planner: bool = False) -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    pack = config.stations["pack-1"]
    printer = LabelPrinterConfig.model_validate(
        pack.devices["printer"].model_dump(exclude_unset=True) | {"url": printer_url}
    )
    scale = pack.devices["scale"].model_copy(update={"port": "/nonexistent/linegate-test-rs485"})
    stations["pack-1"] = pack.model_copy(update={"devices": {"printer": printer, "scale": scale}})
    hub = config.hub.model_copy(
        update={"transport": "http", "url": f"http://127.0.0.1:{_free_port()}"}
    )
    # The planner's first plan comes within a second; a short limit ends its solve soon.
    plan = config.planner.model_copy(update={"enabled": planner, "time_limit_s": 2})
    return config.model_copy(update={"stations": stations, "hub": hub, "planner": plan})


@dataclass
class Rig:
    gateway: Gateway
    api: httpx.AsyncClient  # as the terminals and tokens of tests/keys.py
    keys: LineKeys
    clock: ManualClock
    db: Path

    def deliver(self, topic: str, payload: bytes) -> None:
        self.gateway.inbound.deliver([InboundMessage(topic, payload)])

    async def scrape(self, token: str | None) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=str(self.api.base_url), timeout=10) as raw:
            return await raw.get("/metrics", headers=headers)

    async def metrics(self) -> list[Sample]:
        answer = await self.scrape(self.keys.token("viewer"))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain; version=")
        return [s for family in text_string_to_metric_families(answer.text) for s in family.samples]

    def db_one(self, sql: str) -> int:
        """A number read from the gateway's store file by a connection of the test's own."""
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute(sql).fetchone()[0])


def named(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    """The samples ``name`` (as exposed: ``_total``, ``_bucket`` …) with ``labels``."""
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample ``name`` with ``labels``."""
    found = named(samples, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0].value


async def until(check: Callable[[], bool], timeout: float = 10) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - polling a state no event tells of
            await asyncio.sleep(0.02)


@asynccontextmanager
async def served(tmp_path: Path, *, planner: bool = False) -> AsyncIterator[Rig]:
    printer = SimulatedPrinter(
        "pack-1/printer",
        LabelPrinterConfig.model_validate({"kind": "label_printer", "url": "tcp://127.0.0.1:0"}),
    )
    await printer.start()
    config = _config(printer.url, planner=planner)
    clock = ManualClock()
    gw = Gateway(config, data_dir=tmp_path, clock=clock, http_port=0, device_policy=SLOW_RETRY)
    gw.link = http_link(config, gw.store, gw.core)
    task = asyncio.create_task(gw.run())
    try:
        async with asyncio.timeout(20):
            await gw.started.wait()
        keys = issue_keys(gw.store, config, clock.now())
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, auth=keys
        ) as api:
            yield Rig(gw, api, keys, clock, gw.store.path)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await printer.stop()


async def test_a_scrape_tells_what_the_line_did(tmp_path: Path) -> None:
    async with served(tmp_path) as rig:
        gw = rig.gateway
        sups = gw.floor.devices.supervisors
        printer, scale = sups["pack-1/printer"], sups["pack-1/scale"]
        await until(
            lambda: printer.state is DriverState.READY and scale.state is DriverState.DEGRADED
        )

        # At T0: master data, two orders (pens engraved at laser-1).
        rig.deliver("in/masterdata/catalog", catalog_bytes())
        rig.deliver("in/masterdata/stock", json.dumps(stock_doc()).encode())
        for oid in ("SO-1", "SO-2"):
            doc = order(oid, ("PEN-ENG", 1))
            doc["lines"][0]["personalization"] = {"text": oid}
            rig.deliver("in/orders", json.dumps(doc).encode())

        # Ten minutes later, SO-1's pen engraved at laser-1's terminal: 6 actions done,
        # one refused by the desk (an unknown code), one refused at the gate (no terminal).
        rig.clock.at = T0 + timedelta(minutes=10)
        actions = [
            ("login", {"badge": "OP-1006"}),
            ("next", None),
        ]
        for action, body in actions:
            r = await rig.api.post(f"/api/stations/laser-1/{action}", json=body)
            assert r.status_code == 200, r.text
        task = (await rig.api.get("/api/stations/laser-1")).json()["task"]
        assert task["order_id"] == "SO-1"
        wrong = await rig.api.post("/api/stations/laser-1/scan", json={"code": "NOT-A-CODE-1"})
        assert wrong.status_code == 409, wrong.text
        for action, body in [
            ("scan", {"code": task["serial"]}),
            ("scan", {"code": LOT}),
            ("start", None),
            ("complete", None),
        ]:
            r = await rig.api.post(f"/api/stations/laser-1/{action}", json=body)
            assert r.status_code == 200, r.text
        async with httpx.AsyncClient(base_url=str(rig.api.base_url)) as nobody:
            r = await nobody.post("/api/stations/laser-1/next")
            assert r.status_code == 401

        # Three alarms raised, one of them cleared.
        with gw.store.transaction():
            raise_alarm(gw.core, "t:1", "material_short", "kit-1", Severity.MAJOR, "short")
            raise_alarm(gw.core, "t:2", "material_short", "kit-2", Severity.MAJOR, "short")
            raise_alarm(gw.core, "t:3", "scale_drift", "pack-1", Severity.WARNING, "drift")
        with gw.store.transaction():
            clear_alarm(gw.core, "t:2", "restocked")

        rig.clock.at = T0 + timedelta(minutes=15)
        m = await rig.metrics()

    info = named(m, "linegate_info")
    assert [s.labels for s in info] == [
        {"version": __version__, "gateway_id": "hz01/line3", "site": "hz01", "line": "line3"}
    ]

    # The hub never answered: every event committed waits, the first since T0.
    committed = rig.db_one("SELECT value FROM counters WHERE name = 'seq'")
    assert committed > 0
    assert value(m, "linegate_outbox_events") == rig.db_one("SELECT count(*) FROM outbox")
    assert value(m, "linegate_outbox_events") == committed
    assert value(m, "linegate_outbox_oldest_age_seconds") == 15 * 60
    assert value(m, "linegate_events_committed_total") == committed
    assert value(m, "linegate_link_up", transport="http") == 0
    assert value(m, "linegate_events_published_total", transport="http") == 0
    emitted = named(m, "linegate_events_emitted_total")
    assert sum(s.value for s in emitted) == committed  # every event since the start
    assert value(m, "linegate_events_emitted_total", type="order.accepted") == 2
    assert value(m, "linegate_events_emitted_total", type="task.completed") == 1
    assert value(m, "linegate_events_emitted_total", type="alarm.raised") == 3
    assert value(m, "linegate_events_emitted_total", type="alarm.cleared") == 1

    printer_labels = {"station": "pack-1", "device": "printer"}
    scale_labels = {"station": "pack-1", "device": "scale"}
    assert value(m, "linegate_device_up", kind="label_printer", **printer_labels) == 1
    assert value(m, "linegate_device_up", kind="modbus_scale", **scale_labels) == 0
    assert value(m, "linegate_device_state", state="ready", **printer_labels) == 1
    assert value(m, "linegate_device_state", state="degraded", **scale_labels) == 1
    states = named(m, "linegate_device_state", **scale_labels)
    assert sorted(s.labels["state"] for s in states) == sorted(s.value for s in DriverState)
    assert sum(s.value for s in states) == 1
    assert value(m, "linegate_device_restarts_total", **scale_labels) == 1
    assert value(m, "linegate_device_restarts_total", **printer_labels) == 0

    # The actions the desk answered: 6 done and 1 refused; the gate's 401 is not one.
    assert value(m, "linegate_action_seconds_count") == 7
    assert value(m, "linegate_action_seconds_bucket", le="+Inf") == 7
    assert 0 < value(m, "linegate_action_seconds_sum") < 7 * 5
    buckets = named(m, "linegate_action_seconds_bucket")
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)  # cumulative

    assert value(m, "linegate_alarms_open", kind="material_short", severity="major") == 1
    assert value(m, "linegate_alarms_open", kind="scale_drift", severity="warning") == 1
    assert len(named(m, "linegate_alarms_open")) == 2

    assert value(m, "linegate_orders", stage="open") == 2
    assert value(m, "linegate_orders", stage="waiting_material") == 0
    assert value(m, "linegate_orders", stage="completed_today") == 0
    # The planner is off on this line: no plan to tell of.
    assert not named(m, "linegate_plan_age_seconds") and not named(m, "linegate_replans_total")


async def test_a_scrape_needs_an_account_or_token_and_a_refusal_is_audited(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as rig:
        anonymous = await rig.scrape(None)
        terminal = await rig.scrape(rig.keys.terminal("pack-1"))
        forged = await rig.scrape("lgt_00000000_" + "A" * 43)
        viewer = await rig.scrape(rig.keys.token("viewer"))
        lead = await rig.scrape(rig.keys.token("line_lead"))
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "NOT_SIGNED_IN"
    assert terminal.status_code == 403 and terminal.json()["code"] == "FORBIDDEN_ROLE"
    assert forged.status_code == 401 and forged.json()["code"] == "UNKNOWN_CREDENTIAL"
    assert (viewer.status_code, lead.status_code) == (200, 200)
    with sqlite3.connect(rig.db) as conn:
        denied = conn.execute(
            "SELECT actor, detail FROM audit WHERE target = 'GET /metrics' "
            "AND outcome = 'denied' ORDER BY id"
        ).fetchall()
    terminal_id = rig.keys.terminal("pack-1").split("_")[1]
    assert denied == [
        (None, "NOT_SIGNED_IN"),
        (f"terminal:{terminal_id}", "FORBIDDEN_ROLE"),
        (None, "UNKNOWN_CREDENTIAL"),
    ]


async def test_a_scrape_tells_the_plans_age_and_size(tmp_path: Path) -> None:
    async with served(tmp_path, planner=True) as rig:
        gw = rig.gateway
        planner = gw.planner
        assert planner is not None
        rig.deliver("in/masterdata/catalog", catalog_bytes())
        rig.deliver("in/masterdata/stock", json.dumps(stock_doc()).encode())
        for oid in ("SO-1", "SO-2", "SO-3"):
            doc = order(oid, ("PEN-ENG", 1))
            doc["lines"][0]["personalization"] = {"text": oid}
            rig.deliver("in/orders", json.dumps(doc).encode())
        stats = planner.replanner.stats
        await until(lambda: stats.replans >= 1 and not planner.worker.running, timeout=60)
        # The plan was made on the line's clock, still at T0; a minute and a half later:
        rig.clock.at = T0 + timedelta(seconds=90)
        m = await rig.metrics()
        # Every task of the three pens still to do: none was started.
        tasks = rig.db_one("SELECT count(*) FROM tasks WHERE status IN ('ready', 'blocked')")
        replans, failures = stats.replans, stats.failures
    assert tasks == 3 * 4  # engrave, inspect, kit, pack
    assert value(m, "linegate_plan_age_seconds") == 90
    assert value(m, "linegate_plan_tasks") == tasks
    assert value(m, "linegate_plan_in_use") == 1
    assert value(m, "linegate_replans_total") == replans >= 1
    assert value(m, "linegate_replan_failures_total") == failures == 0
