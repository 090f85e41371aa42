"""Pick requests against plans that move a little and plans that move a lot: the
tolerance, need_by's step, a plan with nothing in it, the store side (arrival, consumption,
pruning), and [picking] in a line's config folder.

The plans are the planner's own kind (``LinePlan``, made with ``compact`` as the worker
makes it) over the line's real tasks, handed to the planner as a replan hands them, so the
changes between two are exactly those the test makes. The gateway is not running: each
plan is looked at as it is adopted.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.app.root import Gateway
from gateway.config.load import ConfigError, load_line_config
from gateway.orderbook import picking
from gateway.orderbook.picking import PickKey
from gateway.planner.problem import Assignment, Plan
from gateway.planning.line_plan import LinePlan, compact
from gateway.planning.line_problem import task_key
from gateway.planning.picks import print_requests
from tests.clocks import LINE_MORNING, ManualClock
from tests.gateway.conftest import REFERENCE_LINE, Line, catalog_bytes, stock_doc
from tests.gateway.test_picks import (
    INK,
    INK_LOT,
    LEAD,
    STANDARD,
    config,
    latest,
    open_requests,
    order,
    requested,
)

MORNING = LINE_MORNING
BLANK = "BLANK-TEE-WHT-M"


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    gw = Gateway(config(), data_dir=tmp_path, clock=ManualClock(MORNING))
    gw.open()
    ln = Line(gw)
    ln.send("in/masterdata/catalog", catalog_bytes())
    ln.send("in/masterdata/stock", stock_doc())
    yield ln
    gw.store.close()


def prints(line: Line, n: int) -> list[int]:
    """``n`` one-tee orders, their print tasks' ids in order."""
    for k in range(n):
        line.send("in/orders", order(f"SO-{k:02d}", "TEE-WHT-M", 1, hours=4, **STANDARD))
    return [
        int(r["task_id"])
        for r in line.gateway.store.all(
            "SELECT task_id FROM tasks WHERE op = 'print' ORDER BY task_id"
        )
    ]


def adopt(
    line: Line, sequences: dict[str, list[int]], offset_s: dict[str, int] | None = None
) -> LinePlan:
    """A plan of ``sequences`` (45 s a print, one after the other from ``offset_s``, 0 by
    default), made now and adopted as a replan's."""
    offsets = offset_s or {}
    assignments = {
        task_key(t): Assignment(
            station, offsets.get(station, 0) + 45 * i, offsets.get(station, 0) + 45 * i + 45
        )
        for station, ids in sequences.items()
        for i, t in enumerate(ids)
    }
    plan = compact(
        Plan(assignments, {}), MORNING, waiting={}, down=frozenset(), reasons=("test",), solve_s=0.0
    )
    plan = replace(plan, received=time.monotonic())
    assert line.gateway.planner is not None
    line.gateway.planner.replanner.offer(plan)
    return plan


def qty(line: Line, station: str, material: str) -> float:
    lot = INK_LOT if material == INK else None
    value: float = open_requests(line)[(station, material, lot)]["qty"]
    return value


def test_small_moves_say_nothing_large_ones_revise(line: Line) -> None:
    ids = prints(line, 40)
    one, two = ids[:20], ids[20:]
    adopt(line, {"dtg-1": one, "dtg-2": two})
    assert [qty(line, s, m) for s in ("dtg-1", "dtg-2") for m in (BLANK, INK)] == [20, 120, 20, 120]
    made = len(requested(line))
    assert made == 4
    # One print moved from dtg-1 to dtg-2: 19 and 21, within a tenth of the need. Back and
    # forth fifty times, as replans may: not one event.
    for _ in range(50):
        adopt(line, {"dtg-1": one[:-1], "dtg-2": [*two, one[-1]]})
        adopt(line, {"dtg-1": one, "dtg-2": two})
    assert len(requested(line)) == made
    # Three moved: 17 and 23, beyond it (2 of 20, 2.3 of 23): revised, the same requests.
    adopt(line, {"dtg-1": one[:-3], "dtg-2": [*two, *one[-3:]]})
    assert len(requested(line)) == made + 4
    assert [qty(line, s, m) for s in ("dtg-1", "dtg-2") for m in (BLANK, INK)] == [17, 102, 23, 138]
    assert {d["revision"] for d in latest(line).values()} == {2}
    moved = open_requests(line)[("dtg-2", BLANK, None)]
    assert set(moved["orders"]) == {f"SO-{k:02d}" for k in range(17, 40)}


def test_need_by_is_revised_when_it_comes_earlier_by_more_than_the_step(line: Line) -> None:
    ids = prints(line, 4)
    adopt(line, {"dtg-1": ids}, {"dtg-1": 1800})  # half an hour from now
    first = open_requests(line)[("dtg-1", BLANK, None)]
    assert datetime.fromisoformat(first["need_by"]) == MORNING + timedelta(minutes=30) - LEAD
    made = len(requested(line))
    # Ten minutes earlier: within the 15-minute step. Later: no hurry either.
    adopt(line, {"dtg-1": ids}, {"dtg-1": 1200})
    adopt(line, {"dtg-1": ids}, {"dtg-1": 2400})
    assert len(requested(line)) == made
    # Thirty minutes earlier than requested: revised, both materials.
    adopt(line, {"dtg-1": ids}, {"dtg-1": 0})
    assert len(requested(line)) == made + 2
    now = open_requests(line)[("dtg-1", BLANK, None)]
    assert (now["revision"], now["qty"]) == (2, 4)
    assert datetime.fromisoformat(now["need_by"]) == MORNING - LEAD


def test_a_plan_with_nothing_in_it_withdraws_every_request(line: Line) -> None:
    ids = prints(line, 3)
    adopt(line, {"dtg-1": ids})
    assert len(open_requests(line)) == 2
    adopt(line, {})
    assert open_requests(line) == {}
    assert all(d["qty"] == 0 and d["revision"] == 2 for d in latest(line).values())


def test_arrival_and_consumption_at_the_order_book(line: Line) -> None:
    ids = prints(line, 2)
    adopt(line, {"dtg-1": ids})
    core = line.gateway.core
    key = PickKey("dtg-1", BLANK, "")
    with core.store.transaction():
        # Another station scanning the material: nothing arrives at dtg-1.
        assert picking.arrive(core, "dtg-2", BLANK, None, 1) is None
        arrived = picking.arrive(core, "dtg-1", BLANK, None, 1)
    assert arrived is not None and arrived.state is picking.RequestState.ARRIVED
    assert picking.stock(core) == {key: 2}
    with core.store.transaction():
        # The station holds two: a scan now is of what is there.
        assert picking.arrive(core, "dtg-1", BLANK, None, 1) is None
        picking.consume(core, "dtg-1", BLANK, None, 1.5)
        picking.consume(core, "dtg-1", BLANK, None, 1.5)  # never below nothing
    assert picking.stock(core) == {}
    row = core.store.one("SELECT qty FROM station_stock WHERE station = 'dtg-1'")
    assert row is not None and row["qty"] == 0
    # Closed long ago, and nothing of it left at the station: forgotten. The open ink
    # request stays.
    with core.store.transaction():
        assert picking.prune(core, "2000-01-01T00:00:00.000+00:00") == 0
        assert picking.prune(core, "2100-01-01T00:00:00.000+00:00") == 1
    assert core.store.one("SELECT * FROM station_stock") is None
    assert [r.key for r in picking.open_requests(core)] == [PickKey("dtg-1", INK, INK_LOT)]


def test_picking_in_the_line_config(tmp_path: Path) -> None:
    folder = tmp_path / "line"
    shutil.copytree(REFERENCE_LINE, folder)
    line_toml = folder / "line.toml"
    # The reference line has a [picking] of its own: this test's stands in for it.
    text = re.sub(r"(?ms)^\[picking\]\n.*?(?=^\[|^#)", "", line_toml.read_text())
    assert "[picking]" not in text
    line_toml.write_text(text + "\n[picking]\nhorizon_min = 60\nlead_min = 10\ntolerance_abs = 2\n")
    loaded = load_line_config(folder).picking
    assert (loaded.horizon_min, loaded.lead_min, loaded.tolerance_abs) == (60, 10, 2)
    assert (loaded.tolerance_rel, loaded.need_by_step_min, loaded.enabled) == (0.1, 15, True)
    line_toml.write_text(text + "\n[picking]\nhorizon = 60\nlead_min = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_line_config(folder)
    where = {p.path for p in caught.value.problems}
    assert where == {"picking.horizon", "picking.lead_min"}


def test_without_the_planner_or_with_picking_off_there_are_no_requests(tmp_path: Path) -> None:
    cfg = config(enabled=False)
    assert Gateway(cfg, data_dir=tmp_path, clock=ManualClock(MORNING)).picks is None
    off = cfg.model_copy(
        update={
            "planner": cfg.planner.model_copy(update={"enabled": False}),
            "picking": cfg.picking.model_copy(update={"enabled": True}),
        }
    )
    assert Gateway(off, data_dir=tmp_path, clock=ManualClock(MORNING)).picks is None


def test_the_demo_prints_each_request_as_it_is_committed(line: Line) -> None:
    said: list[str] = []
    print_requests(line.gateway.core, said.append)
    ids = prints(line, 2)
    adopt(line, {"dtg-1": ids}, {"dtg-1": 1800})
    # need_by: half an hour from 10:00 on the line's clock (Asia/Shanghai), less the lead.
    assert said == [
        "pick PR-LINE3-00000001 r1: 2 pcs BLANK-TEE-WHT-M to dtg-1 by 10:15, for 2 order(s)",
        "pick PR-LINE3-00000002 r1: 12 ml INK-DTG-CMYK lot INK-DTG-CMYK-L2611A to dtg-1 "
        "by 10:15, for 2 order(s)",
    ]
    adopt(line, {})
    assert said[2:] == [
        "pick PR-LINE3-00000001 r2: withdrawn (BLANK-TEE-WHT-M at dtg-1)",
        "pick PR-LINE3-00000002 r2: withdrawn (INK-DTG-CMYK lot INK-DTG-CMYK-L2611A at dtg-1)",
    ]
