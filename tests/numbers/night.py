"""The hand-worked night shift of tests/numbers (test_oee.py explains it): the hub, the
embroiderer emb-1 reporting its own PackML states and the operators, on a real gateway's
store with a clock the scenario moves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.ports import InboundMessage
from drivers.opcua_machine.events import MachineStatus
from gateway.app.root import Gateway
from gateway.config.calendar import Shift
from gateway.config.load import load_line_config
from tests.clocks import ManualClock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc

BERLIN = "Europe/Berlin"
# The shift's start: Saturday 24 October 2026, 22:00 CEST.
S = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
# Its end: 06:00 CET on Sunday, after the clocks went back: nine hours of real time.
SHIFT_S = 9 * 3600
# The break: 00:30-01:00 CEST, 2.5 h to 3 h into the shift.
BREAK = (9000, 10800)
PBT = SHIFT_S - (BREAK[1] - BREAK[0])  # 30600: planned busy time of every station
EMBROIDER_S = 150  # R-CAP-EMB embroider run_s (the reference catalog)
PACK_S = 20  # R-CAP-EMB pack run_s; one unit per parcel here


def at(seconds: float) -> datetime:
    return S + timedelta(seconds=seconds)


class Night:
    """The hub, the machine and the operators, on a real gateway's store."""

    def __init__(self, gw: Gateway, clock: ManualClock) -> None:
        self.gw = gw
        self.clock = clock
        self.svc = gw.stations

    def hub(self, t: float, topic: str, doc: dict[str, Any]) -> None:
        self.clock.at = at(t)
        self.gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])

    def order(self, t: float, order_id: str, thread: str, ship_by_s: float) -> None:
        line = {
            "sku": "CAP-EMB-NAVY",
            "qty": 1,
            "personalization": {"text": order_id, "thread_color": thread, "font": "serif"},
        }
        doc = {"order_id": order_id, "ship_by": at(ship_by_s).isoformat(), "lines": [line]}
        self.hub(t, "in/orders", doc)

    def machine(self, t: float, state: str, fault: str | None = None) -> None:
        self.clock.at = at(t)
        status = MachineStatus(state, None, 0, 0, fault, None)
        self.gw.floor.machines.on_event("emb-1", status)

    def take(self, t: float, station: str) -> dict[str, Any]:
        self.clock.at = at(t)
        self.svc.next_task(station)
        task: dict[str, Any] | None = self.svc.view(station)["task"]
        assert task is not None, f"nothing to do at {station}"
        return task

    def start(self, t: float, station: str) -> None:
        self.clock.at = at(t)
        task = self.svc.view(station)["task"]
        assert task is not None
        if not task["confirmed"]:
            self.svc.scan(station, task["serial"])
        for m in task["materials"]:
            if m["scanned"] is None:
                self.svc.scan(station, m["suggested_lot"] or m["material"])
        self.svc.start(station)

    def complete(self, t: float, station: str) -> None:
        self.clock.at = at(t)
        task = self.svc.view(station)["task"]
        assert task is not None
        for i, _ in enumerate(task["checklist"]):
            self.svc.checklist(station, i, True)
        reply = self.svc.complete(station)
        assert reply.ok, reply.message

    def fail(self, t: float, station: str, reason: str, disposition: str) -> None:
        self.clock.at = at(t)
        self.svc.fail(station, reason, disposition)

    def pack(
        self,
        t: float,
        weighings: list[tuple[float, float]],
        end: float,
        foreign: tuple[float, str] | None = None,
    ) -> None:
        task = self.take(t, "pack-1")
        for unit in task["units"]:
            self.svc.scan("pack-1", unit["serial"])
        for m in task["materials"]:
            self.svc.scan("pack-1", m["suggested_lot"] or m["material"])
        if foreign is not None:  # a unit of another order, refused
            self.clock.at = at(foreign[0])
            with pytest.raises(Exception, match="belongs to order"):
                self.svc.scan("pack-1", foreign[1])
        label = None
        for when, grams in weighings:
            self.clock.at = at(when)
            reply = self.svc.weight("pack-1", grams)
            if reply.ok:
                label = reply.data["label_id"]
        assert label is not None
        self.clock.at = at(end)
        self.svc.scan("pack-1", label)

    def serial_of(self, order_id: str) -> str:
        return self.gw.store.texts(
            "SELECT serial FROM units WHERE order_id = ? ORDER BY serial LIMIT 1", (order_id,)
        )[0]


def make_night(tmp_path: Path) -> Iterator[Night]:
    config = load_line_config(REFERENCE_LINE)
    shift = Shift(
        name="night", start="22:00", end="06:00", breaks=[{"start": "00:30", "end": "01:00"}]
    )
    config = config.model_copy(
        update={
            "line": config.line.model_copy(update={"timezone": BERLIN}),
            "shifts": [shift],
            "planner": config.planner.model_copy(update={"enabled": False}),
        }
    )
    clock = ManualClock(at(-3600))
    gw = Gateway(config, data_dir=tmp_path, clock=clock)
    gw.open()
    n = Night(gw, clock)
    n.hub(-3600, "in/masterdata/catalog", json.loads(catalog_bytes()))
    n.hub(-3600, "in/masterdata/stock", stock_doc())
    yield n
    gw.store.close()


def run_the_night(n: Night) -> None:
    """The night, in seconds from 22:00 CEST (the timeline the expectations below sum)."""
    n.order(-600, "A", "gold", ship_by_s=7200)
    n.order(-600, "B", "gold", ship_by_s=10800)
    n.order(-600, "C", "silver", ship_by_s=12600)
    n.order(-600, "D", "gold", ship_by_s=28800)  # never made: late
    n.order(-600, "E", "gold", ship_by_s=SHIFT_S + 3600)  # due after the shift
    n.gw.core.live_machines.add("emb-1")  # the embroiderer is online: its own states
    n.machine(0, "IDLE")
    n.clock.at = at(0)
    n.svc.login("emb-1", "OP-1003")
    n.svc.login("pack-1", "OP-1008")
    # A: a changeover to gold (the station's first setup), a thread break on the machine.
    assert n.take(300, "emb-1")["order_id"] == "A"
    n.start(600, "emb-1")
    n.machine(700, "EXECUTE")
    n.machine(1000, "HELD", "thread break")
    n.machine(1600, "EXECUTE")
    n.machine(1800, "IDLE")
    n.complete(1800, "emb-1")
    # B: gold again (no changeover), reworked once.
    assert n.take(1800, "emb-1")["order_id"] == "B"
    n.pack(1900, [(1950, 102)], end=2000)  # A packed (CAP-EMB-NAVY weighs 102 g)
    n.start(1900, "emb-1")
    n.machine(1900, "EXECUTE")
    n.machine(2100, "IDLE")
    n.fail(2150, "emb-1", "loose stitches", "rework")
    assert n.take(2200, "emb-1")["order_id"] == "B"
    n.start(2250, "emb-1")
    n.machine(2250, "EXECUTE")
    n.machine(2400, "IDLE")
    n.complete(2450, "emb-1")
    # B packed with a foreign unit offered (C's, refused) and a weighing out of tolerance.
    n.pack(2500, [(2530, 102 + 60), (2540, 102)], end=2560, foreign=(2520, n.serial_of("C")))
    # After the break: C needs silver (a changeover) and is scrapped, then remade.
    assert n.take(12000, "emb-1")["order_id"] == "C"
    n.start(12300, "emb-1")
    n.machine(12300, "EXECUTE")
    n.machine(12500, "IDLE")
    n.fail(12600, "emb-1", "needle mark", "scrap")
    assert n.take(13000, "emb-1")["order_id"] == "C"
    n.start(13100, "emb-1")
    n.machine(13100, "EXECUTE")
    n.machine(13300, "IDLE")
    n.complete(13400, "emb-1")
    n.pack(13500, [(13550, 102)], end=13600)  # C packed, after its ship-by
    n.clock.at = at(SHIFT_S + 60)
