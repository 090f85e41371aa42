"""Late reasons on small hand-made cases: a bottleneck, a late material, a shift ending,
work that does not fit, and a ship-by that had passed before the work could start. The
expected texts are written by hand from the definitions in explain.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.planner.explain import delays, duration, explain_plan
from gateway.planner.rules import dispatch
from gateway.planning.line_plan import clock_text
from tests.planner.builders import problem, station, unit_order

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_bottleneck_station_is_named() -> None:
    # Five orders need the one embroiderer; packing is quick. The last one queues there.
    orders = [unit_order(f"O{i}", 400, [("emb", 100)]) for i in range(5)]
    prob = problem([station("emb-1", "emb"), station("pack-1", "pack")], *orders)
    plan = explain_plan(prob, dispatch(prob, "edd"))
    late = {o.order_id: o for o in plan.late}
    assert "O4" in late
    assert late["O4"].reasons[0] == "bottleneck: emb-1 (queued 400 s)"
    assert all(d.kind == "bottleneck" for d in delays(prob, plan, "O4"))


def test_a_material_arriving_late_is_named() -> None:
    prob = problem(
        [station("emb-1", "emb"), station("pack-1", "pack")],
        unit_order("A", 300, [("emb", 100)]),
    )
    tasks = [
        replace(t, earliest=500, material="BLANK-CAP-RED") if t.id == "A/emb" else t
        for t in prob.tasks
    ]
    prob = replace(prob, tasks=tuple(tasks))
    plan = explain_plan(prob, dispatch(prob, "atc"))
    (late,) = plan.late
    assert late.reasons == ("material: BLANK-CAP-RED arrives at +500 s (waited 500 s)",)


def test_a_shift_ending_is_named() -> None:
    # Packing closes at 200 until 1000: printed by 195, the 10 s pack no longer fits.
    prob = problem(
        [station("p1", "print"), station("pack-1", "pack", shifts=((0, 200), (1000, 2000)))],
        unit_order("A", 600, [("print", 195)]),
    )
    plan = explain_plan(prob, dispatch(prob, "fifo"))
    (late,) = plan.late
    assert late.completion == 1010
    # 805 s is 13 min 25 s: told to the nearest minute.
    assert late.reasons == ("shift: pack-1 closes at +200 s (waited 13 min)",)


def test_an_order_whose_own_work_does_not_fit_says_so() -> None:
    # Nothing in its way: 300 s of embroidery and a 10 s pack against a 120 s ship-by.
    prob = problem(
        [station("emb-1", "emb"), station("pack-1", "pack")],
        unit_order("A", 120, [("emb", 300)]),
    )
    plan = explain_plan(prob, dispatch(prob, "edd"))
    (late,) = plan.late
    assert late.reasons == (
        "work: its own work takes 310 s from +0 s, 190 s more than the time before its ship-by",
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (110, "110 s"),
        (599, "599 s"),
        (600, "10 min"),
        (629, "10 min"),
        (630, "11 min"),
        (3569, "59 min"),
        (3570, "1 h"),
        (5400, "1 h 30 min"),
        (146371, "40 h 40 min"),  # the 146371 s: 40 h 39 min 31 s
    ],
)
def test_durations_are_told_in_seconds_when_short_and_in_hours_and_minutes_when_long(
    seconds: int, text: str
) -> None:
    assert duration(seconds) == text


def test_long_work_is_told_in_hours_and_minutes() -> None:
    # 7190 s of embroidery and the 10 s pack: 2 h of work against a ship-by at +1800 s.
    prob = problem(
        [station("emb-1", "emb"), station("pack-1", "pack")],
        unit_order("A", 1800, [("emb", 7190)]),
    )
    plan = explain_plan(prob, dispatch(prob, "edd"))
    (late,) = plan.late
    assert late.reasons == (
        "work: its own work takes 2 h from +0 s, 1 h 30 min more than the time before its ship-by",
    )


@pytest.mark.parametrize(
    ("ship_by", "reason"),
    [
        (
            1,
            "work: its own work takes 110 s from +0 s, 109 s more than the time before its ship-by",
        ),
        (0, "work: ship-by +0 s already passed; its own work takes 110 s from +0 s"),
        (-600, "work: ship-by -600 s already passed; its own work takes 110 s from +0 s"),
    ],
)
def test_a_ship_by_gone_when_the_work_could_start_is_said_in_words(
    ship_by: int, reason: str
) -> None:
    # 100 s of embroidery and the 10 s pack, nothing in the way, from +0 s.
    prob = problem(
        [station("emb-1", "emb"), station("pack-1", "pack")],
        unit_order("A", ship_by, [("emb", 100)]),
    )
    plan = explain_plan(prob, dispatch(prob, "edd"))
    (late,) = plan.late
    assert late.reasons == (reason,)


@pytest.mark.parametrize(
    ("ship_by", "reason"),
    [
        # 10:00 the same morning, 37 min before the plan.
        (-37 * 60, "work: ship-by 10:00 already passed; its own work takes 110 s from 10:37"),
        # Friday 4 Dec 18:00, 1 d 16 h 37 min before: the SO-OK (Thu 26 Nov 10:00 + 200 h).
        (
            -(86400 + 16 * 3600 + 37 * 60),
            "work: ship-by Fri 18:00 already passed; its own work takes 110 s from 10:37",
        ),
        # Three weeks before: a weekday alone would read as this week's.
        (
            -(21 * 86400 + 37 * 60),
            "work: ship-by Sun 15 Nov 10:00 already passed; its own work takes 110 s from 10:37",
        ),
    ],
)
def test_the_gateway_tells_a_passed_ship_by_in_the_floors_clock_time(
    ship_by: int, reason: str
) -> None:
    now = datetime(2026, 12, 6, 10, 37, tzinfo=SHANGHAI)  # a Sunday
    prob = problem(
        [station("emb-1", "emb"), station("pack-1", "pack")],
        unit_order("A", ship_by, [("emb", 100)]),
    )
    plan = explain_plan(prob, dispatch(prob, "edd"), at=lambda t: clock_text(SHANGHAI, now, t))
    (late,) = plan.late
    assert late.reasons == (reason,)
