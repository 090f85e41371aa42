"""KPI snapshots: every field of a period's ``kpi.snapshot`` from a hand-built scenario, the
periods' alignment, and their emission on the gateway's clock.

The expected numbers are worked out by hand below from the definitions (docs/architecture.md
"What the hub sees", gateway/orderbook/kpi.py's docstring): OTD = orders whose ship-by falls
in [start, end), not cancelled, packed by their ship-by ÷ those orders; FPY = units finished
in the period with no failed attempt ÷ units finished in the period; quality checks =
passed ÷ checks made in the period; lead time = packed − accepted, over the orders packed
in the period, p50/p90 by the inclusive percentile (gateway/percentiles.py); per station,
the attempts that ended in the period: completed, failed, busy = Σ(end − start), mean
cycle = busy ÷ attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.ports import InboundMessage
from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from gateway.desk.service import StationService
from gateway.numbers.elements import compute
from gateway.numbers.kpis import kpi_doc
from tests.clocks import line_clock
from tests.gateway.conftest import REFERENCE_LINE, catalog_bytes, stock_doc

# The period under test: one hour, aligned as the gateway aligns them (kpi_interval_s 3600).
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


class ManualClock:
    """The gateway's clock, moved by the test: every timestamp below is known exactly."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def at_s(self, seconds: float) -> None:
        """Set the clock to ``seconds`` after the period's start (negative: before it)."""
        self.at = T0 + timedelta(seconds=seconds)


class Floor:
    """The hub and the operators of the scenario, on a real gateway's store."""

    def __init__(self, gw: Gateway, clock: ManualClock) -> None:
        self.gw = gw
        self.clock = clock
        self.svc: StationService = gw.stations

    def hub(self, at: float, topic: str, doc: dict[str, Any]) -> None:
        self.clock.at_s(at)
        self.gw.inbound.deliver([InboundMessage(topic, json.dumps(doc).encode())])

    def order(self, at: float, order_id: str, qty: int, ship_by_s: float) -> None:
        ship_by = (T0 + timedelta(seconds=ship_by_s)).isoformat()
        lines = [{"sku": "TEE-WHT-S", "qty": qty, "personalization": {"text": order_id}}]
        self.hub(at, "in/orders", {"order_id": order_id, "ship_by": ship_by, "lines": lines})

    def take(self, at: float, station: str) -> dict[str, Any]:
        self.clock.at_s(at)
        self.svc.next_task(station)
        task: dict[str, Any] | None = self.svc.view(station)["task"]
        assert task is not None, f"nothing to do at {station}"
        return task

    def prepare(self, at: float, station: str) -> None:
        """Scan the traveller (if asked) and every material not scanned yet."""
        self.clock.at_s(at)
        task = self.svc.view(station)["task"]
        assert task is not None
        if not task["confirmed"]:
            self.svc.scan(station, task["serial"])
        for m in task["materials"]:
            if m["scanned"] is None:
                self.svc.scan(station, m["suggested_lot"] or m["material"])

    def start(self, at: float, station: str) -> None:
        self.prepare(at, station)
        self.svc.start(station)

    def complete(self, at: float, station: str) -> None:
        self.clock.at_s(at)
        task = self.svc.view(station)["task"]
        assert task is not None
        for i, _ in enumerate(task["checklist"]):
            self.svc.checklist(station, i, True)
        reply = self.svc.complete(station)
        assert reply.ok, reply.message

    def fail(self, at: float, station: str, disposition: str, *, answer_first: bool) -> None:
        self.clock.at_s(at)
        if answer_first:  # the operator found the defect on the checklist
            self.svc.checklist(station, 0, False)
        self.svc.fail(station, "smeared print", disposition)

    def pack(
        self, station: str, at: float, weighings: list[tuple[float, float]], end: float
    ) -> None:
        """Take the next parcel at ``at`` (its first unit scanned then: the attempt starts),
        weigh it at each (time, grams), scan its shipping label at ``end``."""
        task = self.take(at, station)
        assert task["serial"] is None
        for unit in task["units"]:
            self.svc.scan(station, unit["serial"])
        for m in task["materials"]:
            self.svc.scan(station, m["suggested_lot"] or m["material"])
        label = None
        for when, grams in weighings:
            self.clock.at_s(when)
            reply = self.svc.weight(station, grams)
            if reply.ok:
                label = reply.data["label_id"]
        assert label is not None, "no weighing was in tolerance"
        self.clock.at_s(end)
        self.svc.scan(station, label)


@pytest.fixture
def floor(tmp_path: Path) -> Iterator[Floor]:
    clock = ManualClock(T0 - timedelta(hours=1))
    gw = Gateway(load_line_config(REFERENCE_LINE), data_dir=tmp_path, clock=clock)
    gw.open()
    f = Floor(gw, clock)
    f.hub(-3600, "in/masterdata/catalog", json.loads(catalog_bytes()))
    f.hub(-3600, "in/masterdata/stock", stock_doc())
    for station, badge in (
        ("dtg-1", "OP-1001"),
        ("dtg-2", "OP-1002"),
        ("pack-1", "OP-1008"),
        ("pack-2", "OP-1009"),
    ):
        gw.stations.login(station, badge)
    yield f
    gw.store.close()


def test_a_period_snapshot_has_every_field_right(floor: Floor) -> None:
    """Times are seconds from the period's start T0; the period is [0, 3600).
    Every order is one TEE-WHT-S (print at a DTG station, then pack; 172 ± 10 g) unless
    said otherwise. Stations take tasks by ship-by (the dispatch rule: no plan yet)."""
    f = floor
    # A: accepted before the period, printed before it, packed in it.
    f.order(-600, "A", 1, ship_by_s=3000)
    f.take(-500, "dtg-1")
    f.start(-500, "dtg-1")
    f.complete(-440, "dtg-1")  # unit A done before the period: not counted
    # B: due early, printed with one rework, packed late.
    f.order(0, "B", 1, ship_by_s=400)
    # G: ship-by exactly at the period's end: due in the next period, not this one.
    f.order(0, "G", 1, ship_by_s=3600)
    # C: two units, one scrapped and replaced.
    f.order(10, "C", 2, ship_by_s=2000)
    # D: due in the period, never worked: late.
    f.order(20, "D", 1, ship_by_s=3500)
    # E: due in the period but cancelled: not counted as due.
    f.order(30, "E", 1, ship_by_s=1000)
    f.hub(40, "in/cancel", {"order_id": "E", "reason": "customer cancelled"})

    f.pack("pack-1", 200, [(220, 172)], end=230)  # A packed at 230
    assert f.take(300, "dtg-1")["order_id"] == "B"  # earliest ship-by
    f.start(300, "dtg-1")
    f.fail(340, "dtg-1", "rework", answer_first=True)  # a failed checklist, then rework
    f.start(350, "dtg-1")  # materials scanned again for the second attempt
    f.complete(400, "dtg-1")  # unit B done at 400, not first pass
    f.pack("pack-1", 500, [(515, 172 + 50), (520, 175)], end=530)  # B packed at 530
    assert f.take(600, "dtg-2")["order_id"] == "C"
    f.start(600, "dtg-2")
    f.complete(690, "dtg-2")  # unit C1 done at 690
    assert f.take(700, "dtg-2")["order_id"] == "C"
    f.start(700, "dtg-2")
    f.fail(720, "dtg-2", "scrap", answer_first=False)  # C2 scrapped: a replacement C3
    assert f.take(800, "dtg-2")["order_id"] == "C"
    f.start(800, "dtg-2")
    f.complete(880, "dtg-2")  # unit C3 done at 880
    f.pack("pack-2", 900, [(990, 2 * 172)], end=1000)  # C packed at 1000

    core = f.gw.core
    f.clock.at = T1 + timedelta(seconds=1)
    doc = kpi_doc(compute(core, T0, T1))
    kept = (
        *("orders_completed", "otd", "units_completed", "fpy", "units_scrapped"),
        *("quality_checks", "lead_time_p50_s", "lead_time_p90_s"),
    )
    station_kept = ("tasks_completed", "tasks_failed", "busy_s", "mean_cycle_s")
    snapshot = {
        "period_start": doc["period_start"],
        "period_end": doc["period_end"],
        "line": {k: doc["line"][k] for k in kept},
        "stations": {
            name: {k: st[k] for k in station_kept}
            for name, st in doc["stations"].items()
            if st["tasks_completed"] or st["tasks_failed"]
        },
    }
    assert snapshot == {
        "period_start": "2026-11-25T02:00:00.000+00:00",
        "period_end": "2026-11-25T03:00:00.000+00:00",
        "line": {
            # A (230), B (530), C (1000).
            "orders_completed": 3,
            # Due: A, B, C, D (G's ship-by is the period's end, E is cancelled). On time:
            # A (230 <= 3000) and C (1000 <= 2000); B packed at 530 > 400; D is open.
            "otd": {"numerator": 2, "denominator": 4, "ratio": 0.5},
            # B (400), C1 (690), C3 (880); A's unit finished before the period.
            "units_completed": 3,
            # C1 and C3 never failed; B failed once.
            "fpy": {"numerator": 2, "denominator": 3, "ratio": 0.6667},
            "units_scrapped": 1,  # C2
            # A weight 220 ok; B checklist failed at 340; B checklist 400 ok; B weight 515
            # out of tolerance, 520 ok; C1 690 ok; C3 880 ok; C weight 990 ok (C2 was
            # scrapped with its checklist unanswered). A's checklist at -440 is outside.
            "quality_checks": {"numerator": 6, "denominator": 8, "ratio": 0.75},
            # Lead times: A 230 - (-600) = 830, B 530 - 0 = 530, C 1000 - 10 = 990.
            # Sorted 530, 830, 990: p50 = 830; p90: h = (3 - 1) * 0.9 = 1.8, so
            # 830 + 0.8 * (990 - 830) = 958 (not the maximum, 990).
            "lead_time_p50_s": 830.0,
            "lead_time_p90_s": 958.0,
        },
        "stations": {
            # B: 300..340 failed (40 s), 350..400 completed (50 s); A's print ended
            # before the period. 90 / 2 attempts = 45.
            "dtg-1": {
                "tasks_completed": 1,
                "tasks_failed": 1,
                "busy_s": 90.0,
                "mean_cycle_s": 45.0,
            },
            # C1 600..690 (90 s), C2 700..720 scrapped (20 s), C3 800..880 (80 s):
            # 190 / 3 = 63.33.
            "dtg-2": {
                "tasks_completed": 2,
                "tasks_failed": 1,
                "busy_s": 190.0,
                "mean_cycle_s": 63.3,
            },
            # A 200..230, B 500..530: 30 s each.
            "pack-1": {
                "tasks_completed": 2,
                "tasks_failed": 0,
                "busy_s": 60.0,
                "mean_cycle_s": 30.0,
            },
            # C 900..1000.
            "pack-2": {
                "tasks_completed": 1,
                "tasks_failed": 0,
                "busy_s": 100.0,
                "mean_cycle_s": 100.0,
            },
        },
    }


def test_a_period_with_no_work_has_no_ratios_and_no_lead_times(floor: Floor) -> None:
    doc = kpi_doc(compute(floor.gw.core, T0, T1))
    none = {"numerator": 0, "denominator": 0, "ratio": None}  # never a division by zero
    line = doc["line"]
    assert (doc["period_start"], doc["period_end"]) == (
        "2026-11-25T02:00:00.000+00:00",
        "2026-11-25T03:00:00.000+00:00",
    )
    assert line["orders_completed"] == line["units_completed"] == line["units_scrapped"] == 0
    for name in ("otd", "fpy", "quality_checks", "performance", "quality"):
        assert line[name] == none, name
    assert line["lead_time_p50_s"] is line["lead_time_p90_s"] is None
    assert line["oee"] is None
    # 10:00-11:00 Shanghai is inside the early shift: every station was planned busy and
    # idle the whole hour (four operators signed in, nothing to do).
    for name, st in doc["stations"].items():
        assert st["elements"]["pbt_s"] == st["elements"]["adot_s"] == 3600.0, name
        assert st["availability"] == {"numerator": 0, "denominator": 3600.0, "ratio": 0.0}


async def test_the_gateway_emits_a_snapshot_as_each_period_ends(tmp_path: Path) -> None:
    config = load_line_config(REFERENCE_LINE)
    config = config.model_copy(
        update={"policies": config.policies.model_copy(update={"kpi_interval_s": 60})}
    )
    # One real second is an hour of line time: sixty periods end each second.
    gw = Gateway(config, data_dir=tmp_path, clock=line_clock(speed=3600), http_port=0)
    task = asyncio.create_task(gw.run())
    await gw.started.wait()
    await asyncio.sleep(2.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    gw.store.open()
    gw.outbox.load()
    events = [json.loads(r.payload) for r in gw.outbox.peek(0, 100_000)]
    gw.store.close()
    snaps = [e["data"] for e in events if e["type"] == "kpi.snapshot"]
    # 10:00 to about 12:30 of line time: intraday periods only (no shift ended yet).
    assert {s["period"]["kind"] for s in snaps} == {"interval"}
    assert len(snaps) >= 30
    assert all(s["line"]["orders_completed"] == 0 for s in snaps)
    for a, b in itertools.pairwise(snaps):
        assert a["period_end"] == b["period_start"]  # contiguous, none twice
