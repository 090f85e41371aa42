"""Two early shifts on the reference line, driven through the desk on a clock the scenario
moves, each closed as the gateway closes its periods (``Closing.close``), its report made
(gateway/numbers/reports): the material of tests/numbers/test_reports.py.

Wednesday 25 November 2026, early shift (08:00-16:00 Asia/Shanghai, a break 12:00-12:30),
times in seconds from its start:

- 300 order A (2 × TEE-WHT-S, ship-by +3 h), 310 order B (1 tee, ship-by +10 min), 320
  order C (1 embroidered cap, ship-by +2 h: nobody works emb-1, so it is late and open);
- dtg-1 prints B: a smeared print at its checklist, reworked, done at 730;
- dtg-2 prints A's first unit (done 690), scraps the second (740), prints its replacement
  with 600 s paused for an ink refill (done 1500);
- pack-1 packs B at 1600-1660 (after its ship-by: late) and A at 4000-4060 (on time).

The day before, the same shift made one order (Y, on time), so the report compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.line import LineConfig
from gateway.config.load import load_line_config
from gateway.numbers.periods import Period, parse_period
from tests.clocks import ManualClock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc

# The shift's start, 08:00 in Shanghai; the day before's.
S0 = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
S_BEFORE = S0 - timedelta(days=1)
SHIFT = "shift:2026-11-25:early"
SHIFT_BEFORE = "shift:2026-11-24:early"
SHIFT_S = 8 * 3600


def line_folder(folder: Path) -> Path:
    """The reference line's config in ``folder`` without devices (every station manual) and
    without the planner (queues by ship-by), as tests/gateway/test_station_api.py serves it:
    a folder, so that ``linegate report --config`` reads the very same line."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in REFERENCE_LINE.glob("*.toml"):
        text = source.read_text()
        if source.name == "line.toml":
            planner = "[planner]\nenabled = true\n"
            assert planner in text
            text = text.replace(planner, "[planner]\nenabled = false\n")
            # A machine rate for a station is refused once it has no machine.
            rate = "[costs.stations.emb-1]\nmachine_per_hour = 30.0"
            assert rate in text
            text = text.replace(rate, "")
        else:  # a station file: its [devices.*] tables come after [station]
            text = text.split("\n[devices.", 1)[0] + "\n"
        (folder / source.name).write_text(text)
    return folder


class Desk:
    """The hub and the operators, at ``base`` + seconds."""

    def __init__(self, gw: Gateway, clock: ManualClock, base: datetime) -> None:
        self.gw = gw
        self.clock = clock
        self.base = base
        self.svc = gw.stations

    def at(self, seconds: float) -> None:
        self.clock.at = self.base + timedelta(seconds=seconds)

    def hub(self, t: float, topic: str, doc: dict[str, Any]) -> None:
        self.at(t)
        self.gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])

    def order(self, t: float, order_id: str, sku: str, qty: int, ship_by_s: float) -> None:
        personal = {"text": order_id}
        if sku.startswith("CAP"):
            personal |= {"thread_color": "gold", "font": "serif"}
        line = {"sku": sku, "qty": qty, "personalization": personal}
        ship_by = (self.base + timedelta(seconds=ship_by_s)).isoformat()
        self.hub(t, "in/orders", {"order_id": order_id, "ship_by": ship_by, "lines": [line]})

    def take(self, t: float, station: str, order_id: str) -> None:
        self.at(t)
        self.svc.next_task(station)
        task = self.svc.view(station)["task"]
        assert task is not None and task["order_id"] == order_id, task

    def start(self, t: float, station: str) -> None:
        self.at(t)
        task = self.svc.view(station)["task"]
        assert task is not None
        if not task["confirmed"]:
            self.svc.scan(station, task["serial"])
        for m in task["materials"]:
            if m["scanned"] is None:
                self.svc.scan(station, m["suggested_lot"] or m["material"])
        reply = self.svc.start(station)
        assert reply.ok, reply.message

    def complete(self, t: float, station: str) -> None:
        self.at(t)
        task = self.svc.view(station)["task"]
        assert task is not None
        for i, _ in enumerate(task["checklist"]):
            self.svc.checklist(station, i, True)
        reply = self.svc.complete(station)
        assert reply.ok, reply.message

    def fail(self, t: float, station: str, reason: str, disposition: str) -> None:
        self.at(t)
        if disposition == "rework":  # found on the checklist
            self.svc.checklist(station, 1, False)
        self.svc.fail(station, reason, disposition)

    def pause(self, t: float, station: str, reason: str) -> None:
        self.at(t)
        assert self.svc.pause(station, reason).ok

    def resume(self, t: float, station: str) -> None:
        self.at(t)
        assert self.svc.resume(station).ok

    def pack(self, t: float, order_id: str, grams: float, end: float) -> None:
        self.take(t, "pack-1", order_id)
        task = self.svc.view("pack-1")["task"]
        for unit in task["units"]:
            self.svc.scan("pack-1", unit["serial"])
        for m in task["materials"]:
            self.svc.scan("pack-1", m["suggested_lot"] or m["material"])
        self.at(end - 10)
        reply = self.svc.weight("pack-1", grams)
        assert reply.ok, reply.message
        self.at(end)
        self.svc.scan("pack-1", reply.data["label_id"])


@dataclass
class Closed:
    """The data folder of a gateway whose two shifts were closed, and what it said."""

    data_dir: Path
    config_dir: Path
    config: LineConfig
    period: Period
    events: list[dict[str, Any]]

    def event(self, type_: str, **data: Any) -> dict[str, Any]:
        found = [
            e
            for e in self.events
            if e["type"] == type_ and all(e["data"].get(k) == v for k, v in data.items())
        ]
        assert len(found) == 1, (type_, data, len(found))
        return found[0]


def _the_day_before(desk: Desk) -> None:
    desk.order(600, "Y", "TEE-WHT-S", 1, ship_by_s=4 * 3600)
    desk.take(700, "dtg-1", "Y")
    desk.start(710, "dtg-1")
    desk.complete(800, "dtg-1")
    desk.pack(900, "Y", 172, end=960)


def _the_shift(desk: Desk) -> None:
    desk.order(300, "A", "TEE-WHT-S", 2, ship_by_s=3 * 3600)
    desk.order(310, "B", "TEE-WHT-S", 1, ship_by_s=600)
    desk.order(320, "C", "CAP-EMB-NAVY", 1, ship_by_s=2 * 3600)
    desk.take(600, "dtg-1", "B")
    desk.start(620, "dtg-1")
    desk.fail(660, "dtg-1", "smeared print", "rework")
    desk.start(670, "dtg-1")
    desk.complete(730, "dtg-1")
    desk.take(600, "dtg-2", "A")
    desk.start(610, "dtg-2")
    desk.complete(690, "dtg-2")
    desk.take(700, "dtg-2", "A")
    desk.start(710, "dtg-2")
    desk.fail(740, "dtg-2", "hole in the blank", "scrap")
    desk.take(800, "dtg-2", "A")
    desk.start(810, "dtg-2")
    desk.pause(830, "dtg-2", "ink refill")
    desk.resume(1430, "dtg-2")
    desk.complete(1500, "dtg-2")
    desk.pack(1600, "B", 172, end=1660)
    desk.pack(4000, "A", 2 * 172, end=4060)


async def close_two_shifts(data_dir: Path, config_dir: Path) -> Closed:
    """Drive both shifts, close each after its end on the gateway's clock, and return
    the outbox's events (the gateway's store is closed again)."""
    config = load_line_config(line_folder(config_dir))
    clock = ManualClock(S_BEFORE - timedelta(hours=1))
    gw = Gateway(config, data_dir=data_dir, clock=clock)
    gw.open()
    try:
        desk = Desk(gw, clock, S_BEFORE)
        desk.hub(-3600, "in/masterdata/catalog", json.loads(catalog_bytes()))
        desk.hub(-3600, "in/masterdata/stock", stock_doc())
        desk.at(-600)
        for station, badge in (("dtg-1", "OP-1001"), ("dtg-2", "OP-1002"), ("pack-1", "OP-1008")):
            gw.stations.login(station, badge)
        _the_day_before(desk)
        tz = config.line.tzinfo
        desk.at(SHIFT_S + 1)
        await gw.closing.close(parse_period(SHIFT_BEFORE, config.shifts, tz))
        _the_shift(Desk(gw, clock, S0))
        period = parse_period(SHIFT, config.shifts, tz)
        clock.at = period.end + timedelta(seconds=1)
        await gw.closing.close(period)
        events = [json.loads(r.payload) for r in gw.outbox.peek(0, 1_000_000)]
    finally:
        gw.store.close()
    return Closed(data_dir, config_dir, config, period, events)
