"""The execution simulation: it keeps a plan's order, shifts, breaks, materials and
frozen tasks, and measures what the benchmark compares."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.planner.execution import PlanningError, execute_plan
from gateway.planner.feasibility import check_plan
from gateway.planner.problem import (
    Assignment,
    Frozen,
    make_plan,
    metrics,
)
from gateway.planner.rules import dispatch
from tests.planner.builders import problem, small_generated, station, unit_order


def test_executing_a_rule_plan_gives_it_back() -> None:
    prob = small_generated(orders=20)
    plan = dispatch(prob, "edd")
    executed = execute_plan(prob, plan)
    assert executed.assignments == plan.assignments
    assert metrics(prob, executed) == metrics(prob, plan)


def test_the_plans_order_is_kept_and_idle_time_removed() -> None:
    prob = problem(
        [station("p1", "print"), station("k1", "pack")],
        unit_order("A", 1000, [("print", 60)]),
        unit_order("B", 1000, [("print", 60)]),
    )
    # B first, with a gap the floor would not wait for.
    plan = make_plan(
        prob,
        {
            "B/print": Assignment("p1", 0, 60),
            "A/print": Assignment("p1", 500, 560),
            "B/pack": Assignment("k1", 60, 70),
            "A/pack": Assignment("k1", 560, 570),
        },
        "hand",
    )
    executed = execute_plan(prob, plan).assignments
    assert executed["B/print"].start == 0
    assert executed["A/print"].start == 60
    assert executed["A/pack"].end == 130


def test_shifts_breaks_and_materials_are_respected() -> None:
    prob = problem(
        [
            station("p1", "print", shifts=((100, 400), (500, 900)), breaks=((200, 250),)),
            station("k1", "pack"),
        ],
        unit_order("A", 10_000, [("print", 80)]),
        unit_order("B", 10_000, [("print", 80)]),
        unit_order("C", 10_000, [("print", 80)]),
    )
    tasks = [
        replace(t, earliest=520, material="INK") if t.id == "C/print" else t for t in prob.tasks
    ]
    prob = replace(prob, tasks=tuple(tasks))
    plan = dispatch(prob, "fifo")
    assert check_plan(prob, plan) == []
    starts = sorted(a.start for t, a in plan.assignments.items() if t.endswith("/print"))
    # 100-180 fits before the break; the next one would run into it: 250-330; C waits for ink.
    assert starts == [100, 250, 520]


def test_frozen_tasks_stay_where_they_are() -> None:
    prob = problem(
        [station("p1", "print"), station("p2", "print"), station("k1", "pack")],
        unit_order("A", 1000, [("print", 60)]),
        unit_order("B", 1000, [("print", 60)]),
        unit_order("C", 1, [("print", 60)]),
    )
    frozen = {"A/print": Frozen("p2", -30), "B/print": Frozen("p1")}
    prob = replace(prob, tasks=tuple(replace(t, frozen=frozen.get(t.id)) for t in prob.tasks))
    plan = dispatch(prob, "edd")
    assert check_plan(prob, plan) == []
    a = plan.assignments
    assert (a["A/print"].station, a["A/print"].start) == ("p2", -30)
    assert a["B/print"].station == "p1" and a["B/print"].start == 0
    # C is the most urgent but p1's next task is B: it goes to p2 once A is done.
    assert (a["C/print"].station, a["C/print"].start) == ("p2", 30)


def test_a_task_that_never_fits_a_shift_is_an_error() -> None:
    prob = problem(
        [station("p1", "print", shifts=((0, 50),)), station("k1", "pack")],
        unit_order("A", 1000, [("print", 60)]),
    )
    with pytest.raises(PlanningError):
        dispatch(prob, "fifo")
