"""The CP-SAT planner: optimal on a tiny instance (checked by enumeration), feasible on
hand-made and generated cases, frozen tasks, shifts and materials kept. Solves ≤ 2 s."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from gateway.planner import model
from gateway.planner.execution import SequencePolicy, simulate
from gateway.planner.feasibility import check_plan
from gateway.planner.problem import Frozen, Order, Problem, Task, metrics
from gateway.planner.rules import dispatch
from tests.planner.builders import problem, small_generated, station, unit_order


def _single_machine() -> Problem:
    """Five embroidery jobs on one machine: colours, weights and due dates that conflict."""
    jobs = [("a", "gold", 100, 3, 150), ("b", "red", 80, 1, 200), ("c", "gold", 60, 2, 250),
            ("d", "red", 120, 5, 300), ("e", "gold", 90, 1, 320)]  # fmt: skip
    tasks = tuple(Task(j, j, f"{j}-1", "emb", "emb", p, c, 40) for j, c, p, _, _ in jobs)
    orders = tuple(Order(j, d, w) for j, _, _, w, d in jobs)
    return Problem((station("e1", "emb"),), tasks, orders)


def test_cp_sat_finds_the_optimum_of_a_tiny_instance() -> None:
    prob = _single_machine()
    tasks = prob.task_map()
    best = min(
        metrics(prob, simulate(prob, SequencePolicy({"e1": list(p)}, tasks), "enum")).cost()
        for p in itertools.permutations(tasks)
    )
    result = model.solve(prob, time_limit_s=2.0)
    assert result.mode == "full" and result.lexicographic
    assert check_plan(prob, result.plan) == []
    assert metrics(prob, result.plan).cost() == best
    assert result.status == "OPTIMAL"


def test_a_generated_scenario_is_planned_feasibly_and_no_worse_than_its_first_plan() -> None:
    prob = small_generated(orders=10)
    result = model.solve(prob, time_limit_s=1.5)
    assert result.mode == "full"
    assert check_plan(prob, result.plan) == []
    assert metrics(prob, result.plan).cost() <= metrics(prob, result.first_plan).cost()


def test_large_neighbourhood_search_keeps_plans_feasible(monkeypatch: pytest.MonkeyPatch) -> None:
    prob = small_generated(orders=40)
    monkeypatch.setattr(model, "FULL_MODEL_MAX_TASKS", 0)  # force the two-phase path
    monkeypatch.setattr(model, "WINDOW_TIME_S", 0.2)
    result = model.solve(prob, time_limit_s=1.5)
    assert result.mode == "lns" and result.windows >= 1
    assert check_plan(prob, result.plan) == []
    assert metrics(prob, result.plan).cost() <= metrics(prob, result.first_plan).cost()
    again = model.solve(prob, time_limit_s=0.5, hint=result.plan)
    assert metrics(prob, again.plan).cost() <= metrics(prob, result.plan).cost()


def test_frozen_tasks_shifts_and_materials_are_kept() -> None:
    prob = problem(
        [
            station("p1", "print", shifts=((0, 600), (900, 3000)), breaks=((200, 260),)),
            station("p2", "print", shifts=((0, 3000),)),
            station("k1", "pack", shifts=((0, 3000),)),
        ],
        unit_order("A", 400, [("print", 100)], keys={"print": ("std", 30)}),
        unit_order("B", 400, [("print", 100)], keys={"print": ("dark", 30)}),
        unit_order("C", 300, [("print", 100)], keys={"print": ("std", 30)}),
        unit_order("D", 2000, [("print", 100)], keys={"print": ("dark", 30)}, weight=5),
    )
    changes = {
        "A/print": {"frozen": Frozen("p1", -50)},  # started 50 s ago on p1
        "B/print": {"frozen": Frozen("p2")},  # p2's next task
        "D/print": {"earliest": 1000, "material": "BLANK-BLK"},
    }
    prob = replace(prob, tasks=tuple(replace(t, **changes.get(t.id, {})) for t in prob.tasks))  # type: ignore[arg-type]
    result = model.solve(prob, time_limit_s=1.5)
    assert result.mode == "full"
    assert check_plan(prob, result.plan) == []
    a = result.plan.assignments
    assert (a["A/print"].station, a["A/print"].start) == ("p1", -50)
    assert a["B/print"].station == "p2"
    assert a["D/print"].start >= 1000
    # Nothing of p1 crosses its break or its closed afternoon.
    for t, x in a.items():
        if x.station == "p1" and t != "A/print":
            assert x.end <= 200 or (x.start >= 260 and (x.end <= 600 or x.start >= 900))
    assert metrics(prob, result.plan).cost() <= metrics(prob, dispatch(prob, "edd")).cost()


def test_a_task_started_before_a_break_runs_on_into_it() -> None:
    # Now is in a break (the operator finishes what was started); the rest of the work
    # waits for the break's end, and the model stays feasible (no fallback to the rule).
    st = replace(station("d1", "dtg"), shifts=((-3600, 7200),), breaks=((0, 600),))
    tasks = (
        Task("run", "A", "A-1", "print", "dtg", 45, frozen=Frozen("d1", -30)),
        Task("next", "B", "B-1", "print", "dtg", 45),
    )
    prob = Problem((st,), tasks, (Order("A", 3600), Order("B", 3600)))
    result = model.solve(prob, time_limit_s=1.0)
    assert result.status == "OPTIMAL"
    assert check_plan(prob, result.plan) == []
    assert result.plan.assignments["run"].end == 15
    assert result.plan.assignments["next"].start == 600


def test_a_week_of_shifts_and_a_far_ship_by_keep_the_model_valid() -> None:
    # A week's calendar makes the weights of the exact objective large; the variables'
    # domains must be tight enough that weight × range stays within CP-SAT's int64.
    week = tuple((d * 86400 - 7200, d * 86400 + 21600) for d in range(7))
    st = replace(station("d1", "dtg"), shifts=week)
    tasks = (
        Task("a", "A", "A-1", "print", "dtg", 45, "standard", 15),
        Task("b", "B", "B-1", "print", "dtg", 45, "dark", 15),
    )
    prob = Problem((st,), tasks, (Order("A", 28_800, 5), Order("B", 720_000, 5)))
    result = model.solve(prob, time_limit_s=1.0)
    assert result.status == "OPTIMAL" and result.lexicographic
    assert result.plan.method == "cp-sat (optimal)"
    assert check_plan(prob, result.plan) == []


def test_patience_ends_a_search_that_stopped_improving(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without patience both searches would take their whole minute: this one is not
    # proven optimal in it (full model), and windows never prove anything (LNS).
    prob = small_generated(orders=25, seed=3)
    full = model.solve(prob, time_limit_s=60.0, workers=1, patience_s=0.5)
    assert full.mode == "full" and full.status == "FEASIBLE"
    assert full.wall_s < 20.0
    assert check_plan(prob, full.plan) == []
    assert metrics(prob, full.plan).cost() <= metrics(prob, full.first_plan).cost()
    monkeypatch.setattr(model, "FULL_MODEL_MAX_TASKS", 0)  # the windows' path
    monkeypatch.setattr(model, "WINDOW_TIME_S", 0.1)
    lns = model.solve(prob, time_limit_s=60.0, workers=1, patience_s=0.5)
    assert lns.mode == "lns" and lns.windows >= 3
    assert lns.wall_s < 20.0
    assert check_plan(prob, lns.plan) == []
