"""The whole line against a real Mosquitto: orders in, every step out, restarts survived."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import Mosquitto, mosquitto_binary
from tests.integration.gateway_process import ROOT, GatewayProcess
from tests.integration.hub_client import HubClient
from tests.integration.hub_line import hub_line
from tests.integration.line_driver import Driver

DATA = ROOT / "simulators" / "data"
EVENT_SCHEMA = json.loads((ROOT / "cloud_sync" / "schemas" / "event.schema.json").read_text())


def _order(order_id: str, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": "2030-01-01T17:00:00+08:00",
        "lines": [
            {"sku": s, "qty": q, "personalization": {"text": f"{order_id} 生日快乐"}}
            for s, q in lines
        ],
        **extra,
    }


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """The hub's broker, with persistence as in production: sessions survive a restart."""
    binary = mosquitto_binary()
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(binary, tmp_path / "broker", persistence=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def line(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[GatewayProcess, HubClient]]:
    with hub_line(tmp_path, mosquitto) as started:
        yield started


def check_stream(hub: HubClient) -> list[dict[str, Any]]:
    """Every event is valid, and seq runs 1..N without a gap."""
    events = hub.events()
    for e in events:
        jsonschema.validate(e, EVENT_SCHEMA)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


def trace(gw: GatewayProcess, *what: str) -> dict[str, Any]:
    """``linegate trace ... --json`` on the gateway's database, as a person would run it."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "trace", *what, "--db", str(gw.db), "--json"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_orders_good_and_bad_through_the_line(
    line: tuple[GatewayProcess, HubClient],
) -> None:
    gw, hub = line
    good = [
        _order("SO-1", ("TEE-WHT-M", 2)),
        _order("SO-2", ("CAP-EMB-NAVY", 1)),
        _order("SO-3", ("PEN-ENG", 1), ("KIT-XMAS-A", 1)),
    ]
    hub.publish("in/orders", good[0])
    hub.publish("in/orders", b"{this is not json")
    hub.publish("in/orders", {"order_id": "BAD-SCHEMA", "lines": []})
    hub.publish("in/orders", _order("BAD-SKU", ("NO-SUCH-SKU", 1)))
    hub.publish("in/orders", _order("BAD-QTY", ("TEE-WHT-M", 5000)))
    hub.publish("in/orders", good[0])  # a duplicate: nothing new
    hub.publish("in/orders", [good[1], _order("BAD-IN-ARRAY", ("NOPE", 1)), good[2]])
    hub.publish("in/orders", _order("SO-CANCEL", ("TEE-BLK-M", 1)))
    hub.publish("in/cancel", {"order_id": "SO-CANCEL", "reason": "customer cancelled"})
    hub.wait_for(lambda ev: sum(e["type"] == "order.cancelled" for e in ev) == 1)

    async def work() -> Driver:
        driver = Driver(gw.base)
        async with gw.async_client() as c:
            # Start SO-1's first unit, then try to revise the order: too late.
            for _ in range(5):  # log in, take the task, scan blank and ink, start
                await driver.step(c, "dtg-1")
            view = (await c.get(f"{gw.base}/api/stations/dtg-1")).json()
            assert view["task"]["status"] == "running"
            hub.publish("in/orders", {**_order("SO-1", ("TEE-WHT-M", 9)), "revision": 2})
            hub.wait_for(
                lambda ev: any(
                    e.get("order_id") == "SO-1" and e["type"] == "order.rejected" for e in ev
                )
            )
            await driver.run_until_idle(c)
        return driver

    driver = asyncio.run(work())
    hub.wait_for(lambda ev: sum(e["type"] == "order.completed" for e in ev) == 3)
    events = check_stream(hub)
    # Nothing failed in this run, so at-least-once delivered each event exactly once.
    assert sorted(e["seq"] for e in hub.received) == [e["seq"] for e in events]
    rejected = {
        e.get("order_id"): [x["code"] for x in e["data"]["errors"]]
        for e in events
        if e["type"] == "order.rejected"
    }
    assert rejected == {
        None: ["INVALID_JSON"],
        "BAD-SCHEMA": ["SCHEMA", "SCHEMA"],
        "BAD-SKU": ["UNKNOWN_SKU"],
        "BAD-QTY": ["QTY_OUT_OF_RANGE"],
        "BAD-IN-ARRAY": ["UNKNOWN_SKU"],
        "SO-1": ["IN_PROGRESS"],
    }
    assert Counter(e["type"] for e in events)["order.rejected"] == 6
    assert sorted(e["order_id"] for e in events if e["type"] == "order.accepted") == [
        "SO-1",
        "SO-2",
        "SO-3",
        "SO-CANCEL",
    ]
    completed = {e["order_id"]: e for e in events if e["type"] == "order.completed"}
    assert sorted(completed) == ["SO-1", "SO-2", "SO-3"]
    assert not any(
        e.get("order_id") == "SO-CANCEL" and e["type"].startswith("task.") for e in events
    )
    assert driver.refusals == []
    # Every unit's genealogy is complete: each operation with who, where, when and what.
    for done in completed.values():
        for serial in done["data"]["units"]:
            t = trace(gw, serial)
            assert t["order"]["status"] == "completed"
            assert t["operations"] and all(op["outcome"] == "completed" for op in t["operations"])
            assert t["operations"][-1]["op"] == "pack"
            for op in t["operations"]:
                assert op["station"] and op["operator"] and op["started_at"] and op["ended_at"]
            assert t["lots"], "materials consumed by the unit are traced"
            assert any(lb["kind"] == "shipping" for lb in t["labels"])
            completions = [
                e for e in events if e["type"] == "task.completed" and e["data"]["serial"] == serial
            ]
            assert len(completions) == len([o for o in t["operations"] if not o["order_level"]])
    # Forward: the ink lot reaches every printed tee's order.
    lot = trace(gw, "--lot", "INK-DTG-CMYK-L2611A")
    assert [o["order_id"] for o in lot["orders"]] == ["SO-1"]
    assert sorted(lot["units"]) == sorted(completed["SO-1"]["data"]["units"])


def test_shortage_waits_for_stock_then_completes(
    line: tuple[GatewayProcess, HubClient],
) -> None:
    gw, hub = line
    for n in range(4):  # 8 red caps ordered, 6 in stock
        hub.publish("in/orders", _order(f"CAP-{n}", ("CAP-EMB-RED", 2)))
    hub.wait_for(lambda ev: any(e["type"] == "material.shortage" for e in ev))

    async def work() -> None:
        async with gw.async_client() as c:
            await Driver(gw.base).run_until_idle(c)

    asyncio.run(work())
    assert sum(e["type"] == "order.completed" for e in hub.events()) == 3
    stock = json.loads((DATA / "reference-stock.json").read_text())
    for item in stock["items"]:
        if item["material"] == "BLANK-CAP-RED":
            item["qty"] = 20
    hub.publish("in/masterdata/stock", stock, retain=True)
    hub.wait_for(lambda ev: any(e["type"] == "alarm.cleared" for e in ev))
    asyncio.run(work())
    hub.wait_for(lambda ev: sum(e["type"] == "order.completed" for e in ev) == 4)
    events = check_stream(hub)
    [shortage] = [e for e in events if e["type"] == "material.shortage"]
    assert shortage["order_id"] == "CAP-3"
    assert [e["data"]["alarm_id"] for e in events if e["type"] == "alarm.raised"] == [
        "shortage:BLANK-CAP-RED"
    ]


def test_sigkill_mid_run_loses_nothing(
    line: tuple[GatewayProcess, HubClient],
) -> None:
    gw, hub = line
    orders = [_order(f"SO-{n}", ("TEE-WHT-S", 1), ("PEN-ENG", 1)) for n in range(6)]
    hub.publish("in/orders", orders)

    async def work(steps: int | None) -> Driver:
        driver = Driver(gw.base)
        async with gw.async_client() as c:
            if steps is None:
                await driver.run_until_idle(c)
                return driver
            done = 0
            while done < steps:
                for station in ("dtg-1", "laser-1", "qc-1", "kit-1", "pack-1"):
                    await driver.step(c, station)
                    done += 1
        return driver

    before = asyncio.run(work(60))
    gw.kill()
    # More orders arrive while the gateway is down: the broker keeps them for it.
    hub.publish("in/orders", _order("SO-LATE", ("TEE-WHT-L", 1)))
    gw.start()
    after = asyncio.run(work(None))
    hub.wait_for(lambda ev: sum(e["type"] == "order.completed" for e in ev) == 7, timeout=30)
    events = check_stream(hub)
    seen = {
        ("task.completed", e["data"]["task_id"]) for e in events if e["type"] == "task.completed"
    }
    seen |= {("order.completed", e["order_id"]) for e in events if e["type"] == "order.completed"}
    acknowledged = set(before.acknowledged) | set(after.acknowledged)
    assert acknowledged and acknowledged <= seen
    health = httpx.get(gw.base + "/api/health").json()
    assert health["gateway_id"] == "hz01/line3"


def test_a_broker_outage_keeps_the_line_working_and_loses_nothing(
    line: tuple[GatewayProcess, HubClient], mosquitto: Mosquitto
) -> None:
    gw, hub = line
    hub.publish("in/orders", [_order(f"SO-{n}", ("PEN-ENG", 1)) for n in range(3)])
    hub.wait_for(lambda ev: sum(e["type"] == "order.accepted" for e in ev) == 3)
    before = len(hub.events())
    mosquitto.stop()

    async def work() -> Driver:
        driver = Driver(gw.base)
        async with gw.async_client() as c:
            await driver.run_until_idle(c)
        return driver

    driver = asyncio.run(work())  # the operators go on while the hub is unreachable
    pending = httpx.get(gw.base + "/api/health").json()["outbox_pending"]
    assert pending > 0 and len(hub.events()) == before  # waiting on disk, not lost
    mosquitto.start()
    hub.wait_for(lambda ev: sum(e["type"] == "order.completed" for e in ev) == 3, timeout=30)
    events = check_stream(hub)
    assert {
        ("order.completed", e["order_id"]) for e in events if e["type"] == "order.completed"
    } == {a for a in driver.acknowledged if a[0] == "order.completed"}
    assert httpx.get(gw.base + "/api/health").json()["outbox_pending"] == 0
