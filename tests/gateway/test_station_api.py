"""The station API of a running gateway, over HTTP: traceability (a unit's genealogy, a
lot's forward trace) and logging out, which pauses a running task.

A real Gateway runs in this loop (its store on a SQLite file, uvicorn on a free loopback
port); the hub is the in-memory one the demo uses (cloud_sync/memory.py), so orders come in
on the hub topics and events go out to it. The line's clock is moved by the test, so every
time a trace shows is one the test chose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_sync.memory import MemoryHub, MemoryLink
from gateway.app.root import Gateway
from gateway.clock import iso
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from simulators.keys import LineKeys
from tests.gateway.conftest import DATA, REFERENCE_LINE, catalog_bytes, stock_doc
from tests.keys import issue_keys

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
LOT = "PEN-BRASS-L2611A"  # the reference stock's only lot of PEN-BRASS
CATALOG_VERSION = json.loads((DATA / "reference-catalog.json").read_text())["version"]


class ManualClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


def _config() -> LineConfig:
    config = load_line_config(REFERENCE_LINE)
    # No devices: everything is done through the API (the devices have their own tests),
    # so no station has a machine. No planner: queues follow the dispatch rule (ship-by).
    stations = {sid: st.model_copy(update={"devices": {}}) for sid, st in config.stations.items()}
    planner = config.planner.model_copy(update={"enabled": False})
    return config.model_copy(update={"stations": stations, "planner": planner})


@dataclass
class Line:
    api: httpx.AsyncClient
    hub: MemoryHub
    clock: ManualClock
    posts: int = 0
    badges: dict[str, str] = field(default_factory=dict)
    keys: LineKeys = field(default_factory=lambda: LineKeys({}))

    def at(self, seconds: float) -> str:
        """Set the line's clock to T0 + ``seconds``; returns that instant as the store has it."""
        self.clock.at = T0 + timedelta(seconds=seconds)
        return iso(self.clock.at)

    async def post(self, station: str, action: str, body: dict[str, Any] | None = None) -> Any:
        self.posts += 1
        r = await self.api.post(f"/api/stations/{station}/{action}", json=body)
        assert r.status_code == 200, f"{station} {action}: {r.status_code} {r.text}"
        return r.json()

    async def view(self, station: str) -> dict[str, Any]:
        r = await self.api.get(f"/api/stations/{station}")
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    async def events(self, type_: str, n: int = 1) -> list[dict[str, Any]]:
        """The hub's events of ``type_``, once it has at least ``n`` of them."""
        events = await self.hub.wait_for(
            lambda ev: sum(e["type"] == type_ for e in ev) >= n, timeout=10
        )
        return [e for e in events if e["type"] == type_]

    async def order(self, order_id: str, ship_by: str, **extra: Any) -> None:
        doc = {
            "order_id": order_id,
            "ship_by": ship_by,
            "lines": [{"sku": "PEN-ENG", "qty": 1, "personalization": {"text": order_id}}],
            **extra,
        }
        accepted = len([e for e in self.hub.events if e["type"] == "order.accepted"])
        self.hub.publish("in/orders", json.dumps(doc).encode())
        await self.events("order.accepted", accepted + 1)

    async def take(self, station: str) -> dict[str, Any]:
        """Log in (once) and take the next task; returns it as the screen shows it."""
        if (await self.view(station))["operator"] is None:
            await self.post(station, "login", {"badge": self.badges[station]})
        await self.post(station, "next")
        task: dict[str, Any] | None = (await self.view(station))["task"]
        assert task is not None, f"nothing to do at {station}"
        return task

    async def scan(self, station: str, code: str) -> Any:
        return await self.post(station, "scan", {"code": code})


@asynccontextmanager
async def served_line(
    tmp_path: Path, config: LineConfig | None = None
) -> AsyncIterator[tuple[Line, Gateway]]:
    """The reference line's gateway (or ``config``'s) serving on a free port, its hub in
    memory, its clock by hand, master data applied; the line's client (holding a paired
    terminal per station and a token per role) and the gateway itself."""
    config = config or _config()
    clock = ManualClock()
    hub = MemoryHub()
    link = MemoryLink(hub, config.line.site, config.line.line, clock.now)
    gw = Gateway(config, data_dir=tmp_path, clock=clock, link=link, http_port=0)
    task = asyncio.create_task(gw.run())
    async with asyncio.timeout(20):
        await gw.started.wait()
    hub.publish("in/masterdata/catalog", catalog_bytes())
    hub.publish("in/masterdata/stock", json.dumps(stock_doc()).encode())
    keys = issue_keys(gw.store, config, clock.now())
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gw.http_port}", timeout=10, auth=keys
    ) as api:
        ln = Line(api, hub, clock, keys=keys)
        ln.badges = {
            "laser-1": "OP-1006",
            "qc-1": "OP-1005",
            "kit-1": "OP-1004",
            "pack-1": "OP-1008",
        }
        try:
            yield ln, gw
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Line]:
    async with served_line(tmp_path) as (ln, _):
        yield ln


async def test_a_units_genealogy_and_its_lots_forward_trace(line: Line) -> None:
    ln = line
    accepted_at = ln.at(0)
    await ln.order("SO-1", "2030-01-01T10:00:00+08:00", priority=7, channel="tmall")
    await ln.order("SO-2", "2030-01-02T10:00:00+08:00")

    # Engrave both pens from the same lot; SO-1's first (earlier ship-by).
    ln.at(10)
    unit = await ln.take("laser-1")
    assert unit["order_id"] == "SO-1"
    serial = unit["serial"]
    assert [m["suggested_lot"] for m in unit["materials"]] == [LOT]
    await ln.scan("laser-1", serial)
    await ln.scan("laser-1", LOT)
    engrave_start = ln.at(20)
    await ln.post("laser-1", "start")
    engrave_end = ln.at(55)
    await ln.post("laser-1", "complete")
    ln.at(60)
    other = await ln.take("laser-1")
    assert other["order_id"] == "SO-2"
    await ln.scan("laser-1", other["serial"])
    await ln.scan("laser-1", LOT)
    ln.at(61)
    await ln.post("laser-1", "start")
    other_end = ln.at(90)
    await ln.post("laser-1", "complete")

    # Inspect SO-1's pen: a failed check, reworked, then passed.
    ln.at(100)
    assert (await ln.take("qc-1"))["serial"] == serial
    await ln.scan("qc-1", serial)
    inspect1_start = ln.at(105)
    await ln.post("qc-1", "start")
    ln.at(110)
    await ln.post("qc-1", "checklist", {"item": 0, "passed": False})
    inspect1_end = ln.at(112)
    await ln.post("qc-1", "fail", {"reason": "engraving off centre", "disposition": "rework"})
    inspect2_start = ln.at(120)
    await ln.post("qc-1", "start")
    await ln.post("qc-1", "checklist", {"item": 0, "passed": True})
    await ln.post("qc-1", "checklist", {"item": 1, "passed": True})
    inspect2_end = ln.at(130)
    await ln.post("qc-1", "complete")

    # Box it.
    ln.at(140)
    assert (await ln.take("kit-1"))["serial"] == serial
    await ln.scan("kit-1", serial)
    await ln.scan("kit-1", "GIFTBOX-S")
    box_start = ln.at(145)
    await ln.post("kit-1", "start")
    box_end = ln.at(165)
    await ln.post("kit-1", "complete")

    # Pack it: the first unit scan starts the parcel, the label scan completes the order.
    parcel = await ln.take("pack-1")
    assert parcel["order_id"] == "SO-1" and parcel["serial"] is None
    pack_start = ln.at(170)
    await ln.scan("pack-1", serial)
    await ln.scan("pack-1", "CARTON-S")
    weighed = ln.at(180)
    label_id = (await ln.post("pack-1", "weight", {"grams": 150.0}))["label_id"]
    pack_end = ln.at(190)
    await ln.scan("pack-1", label_id)
    await ln.events("order.completed")

    r = await ln.api.get(f"/api/trace/unit/{serial}")
    assert r.status_code == 200, r.text
    t = r.json()
    assert (t["serial"], t["status"], t["replaces"], t["replaced_by"]) == (
        serial, "done", None, None,
    )  # fmt: skip
    assert t["order"] == {
        "order_id": "SO-1",
        "revision": 1,
        "status": "completed",
        "ship_by": "2030-01-01T02:00:00.000+00:00",  # 10:00 +08:00, as the store keeps it
        "priority": 7,
        "channel": "tmall",
        "catalog_version": CATALOG_VERSION,
        "accepted_at": accepted_at,
        "completed_at": pack_end,
        "weight_g": 150.0,
        "label_id": label_id,
    }
    assert t["work_order"] == {
        "line_no": 1,
        "sku": "PEN-ENG",
        "qty": 1,
        "routing": "R-ENGRAVE",
        "status": "done",  # its one unit is made
        "personalization": {"text": "SO-1"},
    }
    ops = [
        (
            o["op"], o["attempt"], o["station"], o["operator"], o["machine"], o["started_at"],
            o["ended_at"], o["outcome"], o["reason"],
            [(x["material"], x["lot"] or None, x["qty"]) for x in o["lots"]], o["order_level"],
        )
        for o in t["operations"]
    ]  # fmt: skip
    assert ops == [
        ("engrave", 1, "laser-1", "OP-1006", None, engrave_start, engrave_end, "completed", None,
         [("PEN-BRASS", LOT, 1)], False),
        ("inspect", 1, "qc-1", "OP-1005", None, inspect1_start, inspect1_end, "failed",
         "engraving off centre", [], False),
        ("inspect", 2, "qc-1", "OP-1005", None, inspect2_start, inspect2_end, "completed", None,
         [], False),
        ("box", 1, "kit-1", "OP-1004", None, box_start, box_end, "completed", None,
         [("GIFTBOX-S", None, 1)], False),
        ("pack", 1, "pack-1", "OP-1008", None, pack_start, pack_end, "completed", None,
         [("CARTON-S", None, 1)], True),
    ]  # fmt: skip
    # What went into this unit: the lot consumed at engraving, the box at boxing.
    assert [(x["material"], x["lot"] or None, x["qty"], x["ts"]) for x in t["lots"]] == [
        ("PEN-BRASS", LOT, 1, engrave_end),
        ("GIFTBOX-S", None, 1, box_end),
    ]
    quality = [
        (q["check"], q["passed"], q["measured"], q["station"], q["operator"], q["ts"])
        for q in t["quality"]
    ]
    assert quality == [
        ("checklist", False, {"Text matches the order": False}, "qc-1", "OP-1005", inspect1_end),
        (
            "checklist",
            True,
            {"Text matches the order": True, "No burn marks": True},
            "qc-1",
            "OP-1005",
            inspect2_end,
        ),
        ("weight", True, 150.0, "pack-1", "OP-1008", weighed),
    ]
    assert t["defects"] == [
        {
            "ts": inspect1_end,
            "op": "inspect",
            "reason": "engraving off centre",
            "disposition": "rework",
            "station": "qc-1",
            "operator": "OP-1005",
        }
    ]
    labels = [(lb["kind"], lb["station"]) for lb in t["labels"]]
    assert labels == [("traveller", "laser-1"), ("shipping", "pack-1")]
    assert t["labels"][1]["label_id"] == label_id

    # Forward: the lot went into both pens, of both orders, at engraving.
    r = await ln.api.get(f"/api/trace/lot/{LOT}")
    assert r.status_code == 200, r.text
    f = r.json()
    assert (f["lot"], f["material"], f["expires"]) == (LOT, "PEN-BRASS", None)
    uses = [
        (u["ts"], u["material"], u["qty"], u["serial"], u["order_id"], u["op"], u["station"])
        for u in f["uses"]
    ]
    assert uses == [
        (engrave_end, "PEN-BRASS", 1, serial, "SO-1", "engrave", "laser-1"),
        (other_end, "PEN-BRASS", 1, other["serial"], "SO-2", "engrave", "laser-1"),
    ]
    assert f["units"] == sorted([serial, other["serial"]])
    assert f["orders"] == [
        {
            "order_id": "SO-1",
            "status": "completed",
            "ship_by": "2030-01-01T02:00:00.000+00:00",
            "completed_at": pack_end,
            "label_id": label_id,
        },
        {
            "order_id": "SO-2",
            "status": "released",
            "ship_by": "2030-01-02T02:00:00.000+00:00",
            "completed_at": None,
            "label_id": None,
        },
    ]


async def test_tracing_what_is_not_there(line: Line) -> None:
    await line.order("SO-1", "2030-01-01T10:00:00+08:00")
    r = await line.api.get("/api/trace/unit/LINE3-00000404")
    assert r.status_code == 404
    assert r.json()["ok"] is False and r.json()["code"] == "NOT_FOUND"
    assert "LINE3-00000404" in r.json()["message"]
    # A lot in stock that nothing consumed yet: known, unused.
    r = await line.api.get("/api/trace/lot/INK-DTG-CMYK-L2611A")
    assert r.status_code == 200
    assert {k: v for k, v in r.json().items() if k != "expires"} == {
        "lot": "INK-DTG-CMYK-L2611A",
        "material": "INK-DTG-CMYK",
        "uses": [],
        "units": [],
        "orders": [],
    }


async def test_logging_out_pauses_the_running_task(line: Line) -> None:
    ln = line
    await ln.order("SO-1", "2030-01-01T10:00:00+08:00")
    ln.at(10)
    task = await ln.take("laser-1")
    await ln.scan("laser-1", task["serial"])
    await ln.scan("laser-1", LOT)
    await ln.post("laser-1", "start")
    assert (await ln.view("laser-1"))["task"]["status"] == "running"

    ln.at(20)
    reply = await ln.post("laser-1", "logout")
    assert reply["ok"] and "paused" in reply["message"]
    [paused] = await ln.events("task.paused")
    assert paused["order_id"] == "SO-1"
    assert paused["data"]["reason"] == "operator logged out"
    assert (paused["data"]["task_id"], paused["data"]["serial"], paused["data"]["station"]) == (
        task["task_id"], task["serial"], "laser-1",
    )  # fmt: skip
    screen = await ln.view("laser-1")
    assert screen["operator"] is None
    assert screen["task"]["status"] == "paused"
    assert screen["task"]["pause_reason"] == "operator logged out"
    # Nobody is signed in: the screen asks for a badge first (Resume would be refused).
    assert screen["next"] == reply["next"] == "Scan your badge to log in."
    # Nothing can be done on it without an operator.
    r = await ln.api.post("/api/stations/laser-1/resume")
    # Refused at the gate (the station's terminal with no operator signed in), not by the
    # desk: not counted in the actions' answer time.
    assert r.status_code == 403 and r.json()["code"] == "NO_OPERATOR"

    # The next operator resumes it, and the hub hears why it was paused.
    ln.at(30)
    back = await ln.post("laser-1", "login", {"badge": "OP-1002"})
    assert back["next"] == "Paused (operator logged out). Press Resume to continue."
    await ln.post("laser-1", "resume")
    [resumed] = await ln.events("task.resumed")
    assert resumed["data"]["paused_for"] == "operator logged out"
    assert resumed["data"]["operator"] == "OP-1002"
    assert (await ln.view("laser-1"))["task"]["status"] == "running"

    # Logging out with nothing running pauses nothing.
    await ln.post("laser-1", "complete")
    reply = await ln.post("laser-1", "logout")
    assert reply["message"] == "Logged out."
    await asyncio.sleep(0.2)  # time for any event to reach the hub
    assert len([e for e in ln.hub.events if e["type"] == "task.paused"]) == 1

    # The station API timed every POST it answered, refusals included.
    health = (await ln.api.get("/api/health")).json()
    assert health["action_ms"]["n"] == ln.posts
    assert 0 < health["action_ms"]["p50"] <= health["action_ms"]["p99"]
