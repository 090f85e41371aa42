"""A line's core on a real SQLite file, with the reference master data applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.orderbook.inbound import Inbound
from tests.clocks import line_clock

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_LINE = ROOT / "station_configs" / "reference-line"
DATA = ROOT / "simulators" / "data"


def catalog_bytes() -> bytes:
    return (DATA / "reference-catalog.json").read_bytes()


def stock_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / "reference-stock.json").read_text())
    return doc


def order(order_id: str, *lines: tuple[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "ship_by": "2030-01-01T10:00:00+08:00",
        "lines": [{"sku": sku, "qty": qty} for sku, qty in lines],
        **extra,
    }


@dataclass
class Line:
    gateway: Gateway

    @property
    def inbound(self) -> Inbound:
        return self.gateway.inbound

    @property
    def svc(self) -> StationService:
        return self.gateway.stations

    def send(self, topic: str, payload: Any) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.inbound.deliver([InboundMessage(topic, raw)])

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(r.payload) for r in self.gateway.outbox.peek(0, 1_000_000)]
        return [e for e in out if type_ is None or e["type"] == type_]


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    config = load_line_config(REFERENCE_LINE)
    # Lot expiry, ship-bys and shifts are read on the gateway's clock: not today's date.
    gw = Gateway(config, data_dir=tmp_path, clock=line_clock())
    gw.open()
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    yield ln
    gw.store.close()


def do_unit_task(svc: StationService, station: str) -> dict[str, Any]:
    """Take the next task at ``station`` and do it right; returns the task view."""
    svc.next_task(station)
    view = svc.view(station)
    task = view["task"]
    assert task is not None, f"nothing to do at {station}"
    svc.scan(station, task["serial"])
    for m in task["materials"]:
        svc.scan(station, m["suggested_lot"] or m["material"])
    svc.start(station)
    for i, _ in enumerate(task["checklist"]):
        svc.checklist(station, i, True)
    svc.complete(station)
    return dict(task)


def pack(svc: StationService, station: str) -> str:
    """Pack the next order at ``station``; returns its order id."""
    svc.next_task(station)
    task = svc.view(station)["task"]
    assert task is not None and task["serial"] is None
    for u in task["units"]:
        svc.scan(station, u["serial"])
    for m in task["materials"]:
        svc.scan(station, m["suggested_lot"] or m["material"])
    reply = svc.weight(station, task["expected_weight_g"])
    assert reply.ok, reply.message
    svc.scan(station, reply.data["label_id"])
    return str(task["order_id"])
