"""KPI snapshots: the elements of a period, and their emission on the gateway's clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.app.root import Gateway
from gateway.config.load import load_line_config
from gateway.orderbook.kpi import period_kpis, period_of
from tests.clocks import line_clock
from tests.gateway.conftest import REFERENCE_LINE, Line, do_unit_task, order, pack


def test_a_period_counts_orders_units_quality_and_station_time(line: Line) -> None:
    core = line.gateway.core
    start = core.now() - timedelta(seconds=1)
    soon = (core.now() + timedelta(hours=1)).isoformat()
    line.send(
        "in/orders",
        [
            order("SO-1", ("PEN-ENG", 2)),
            {**order("SO-LATE", ("TEE-WHT-M", 1)), "ship_by": soon},
        ],
    )
    svc = line.svc
    for station, badge in (
        ("laser-1", "OP-1006"),
        ("qc-1", "OP-1005"),
        ("kit-1", "OP-1001"),
        ("pack-1", "OP-1003"),
    ):
        svc.login(station, badge)
    do_unit_task(svc, "laser-1")
    # The second pen fails its engraving once (rework): it is not first-pass.
    svc.next_task("laser-1")
    svc.scan("laser-1", "PEN-BRASS-L2611A")
    svc.start("laser-1")
    svc.fail("laser-1", "off centre", "rework")
    svc.scan("laser-1", "PEN-BRASS-L2611A")
    svc.start("laser-1")
    svc.complete("laser-1")
    for _ in range(2):
        do_unit_task(svc, "qc-1")
        do_unit_task(svc, "kit-1")
    assert pack(svc, "pack-1") == "SO-1"
    k = period_kpis(core, start, core.now() + timedelta(hours=2))
    assert k["line"]["orders_completed"] == 1
    assert k["line"]["units_completed"] == 2
    assert k["line"]["fpy"] == {"numerator": 1, "denominator": 2, "ratio": 0.5}
    # SO-LATE's ship-by falls in the period and it is not packed: it counts as late.
    assert k["line"]["otd"] == {"numerator": 0, "denominator": 1, "ratio": 0.0}
    laser = k["stations"]["laser-1"]
    assert laser["tasks_completed"] == 2 and laser["tasks_failed"] == 1
    assert k["stations"]["pack-1"]["tasks_completed"] == 1
    assert k["line"]["lead_time_p50_s"] is not None
    assert json.dumps(k)  # travels as JSON


def test_periods_align_to_the_interval() -> None:
    now = datetime(2026, 11, 25, 10, 17, 3, tzinfo=UTC)
    assert period_of(now, 3600) == (
        datetime(2026, 11, 25, 9, tzinfo=UTC),
        datetime(2026, 11, 25, 10, tzinfo=UTC),
    )


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
    snaps = [json.loads(r.payload)["data"] for r in gw.outbox.peek(0, 1000)]
    gw.store.close()
    assert len(snaps) >= 30
    assert all(s["line"]["orders_completed"] == 0 for s in snaps)
    for a, b in itertools.pairwise(snaps):
        assert a["period_end"] == b["period_start"]  # contiguous, none twice
