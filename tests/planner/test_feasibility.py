"""The checker finds each kind of violation, and accepts a correct plan."""

from __future__ import annotations

from dataclasses import replace

from gateway.planner.feasibility import check_plan
from gateway.planner.problem import (
    Assignment,
    Frozen,
    Problem,
    make_plan,
)
from tests.planner.builders import problem, station, unit_order


def _two_orders() -> Problem:
    return problem(
        [station("p1", "print", shifts=((0, 1000),), breaks=((300, 400),)), station("k1", "pack")],
        unit_order("A", 500, [("print", 100)], keys={"print": ("red", 20)}),
        unit_order("B", 500, [("print", 100)], keys={"print": ("blue", 20)}),
    )


def _good() -> dict[str, Assignment]:
    return {
        "A/print": Assignment("p1", 0, 120, 20),
        "B/print": Assignment("p1", 120, 240, 20),
        "A/pack": Assignment("k1", 120, 130),
        "B/pack": Assignment("k1", 240, 250),
    }


def _check(prob: Problem, assignments: dict[str, Assignment]) -> list[str]:
    return check_plan(prob, make_plan(prob, assignments, "hand"))


def test_a_correct_plan_has_no_violation() -> None:
    assert _check(_two_orders(), _good()) == []


def test_each_violation_is_found() -> None:
    prob = _two_orders()
    cases = {
        "overlap": {"B/print": Assignment("p1", 100, 220, 20)},
        "before": {"A/pack": Assignment("k1", 110, 120)},  # before its unit is printed
        "cannot do": {"A/pack": Assignment("p1", 240, 250)},
        "outside": {"B/print": Assignment("p1", 250, 370, 20)},  # runs into the break
        "needs a setup": {"B/print": Assignment("p1", 120, 220, 0)},
        "not planned": {},
    }
    for expected, change in cases.items():
        assignments = _good() | change
        if expected == "not planned":
            del assignments["B/pack"]
        found = _check(prob, assignments)
        assert any(expected in v for v in found), (expected, found)


def test_material_and_frozen() -> None:
    prob = _two_orders()
    tasks = list(prob.tasks)
    tasks[0] = replace(tasks[0], earliest=50, material="INK")
    tasks[2] = replace(tasks[2], frozen=Frozen("p1", 0))  # B/print started at 0
    prob = replace(prob, tasks=tuple(tasks))
    found = _check(prob, _good())
    assert any("before material INK" in v for v in found)
    assert any("frozen B/print moved" in v for v in found)


def test_a_frozen_next_task_must_come_first() -> None:
    prob = _two_orders()
    tasks = [replace(t, frozen=Frozen("p1")) if t.id == "B/print" else t for t in prob.tasks]
    prob = replace(prob, tasks=tuple(tasks))
    found = _check(prob, _good())
    assert any("frozen next task B/print comes after A/print" in v for v in found)
