"""The dispatch rules: feasible plans, each rule's own order, setups counted."""

from __future__ import annotations

import pytest

from gateway.planner.feasibility import check_plan
from gateway.planner.problem import Order, Problem, metrics
from gateway.planner.rules import dispatch
from tests.planner.builders import problem, small_generated, station, unit_order

ALL = ("fifo", "edd", "atc", "atcs")


@pytest.mark.parametrize("rule", ALL)
def test_every_rule_plans_a_feasible_generated_scenario(rule: str) -> None:
    prob = small_generated(orders=25)
    plan = dispatch(prob, rule)  # type: ignore[arg-type]
    assert check_plan(prob, plan) == []
    assert set(plan.assignments) == {t.id for t in prob.tasks}


def _released(prob: Problem, order_id: str, released: int) -> Order:
    return next(o for o in prob.orders if o.id == order_id).__class__(
        order_id, next(o.ship_by for o in prob.orders if o.id == order_id), 1, released
    )


def test_fifo_follows_release_and_edd_follows_ship_by() -> None:
    prob = problem(
        [station("p1", "print"), station("k1", "pack")],
        unit_order("A", 1000, [("print", 60)]),
        unit_order("B", 100, [("print", 60)]),
    )
    prob = Problem(prob.stations, prob.tasks, (_released(prob, "A", -10), _released(prob, "B", -5)))
    fifo = dispatch(prob, "fifo").assignments
    edd = dispatch(prob, "edd").assignments
    assert fifo["A/print"].start < fifo["B/print"].start
    assert edd["B/print"].start < edd["A/print"].start


def test_setups_are_counted_when_the_key_changes() -> None:
    # Alternating colours in ship-by order: EDD changes over before every task; ATCS groups.
    colours = ["red", "blue", "red", "blue"]
    orders = [
        unit_order(f"O{i}", 10_000 + i, [("emb", 100)], keys={"emb": (c, 30)})
        for i, c in enumerate(colours)
    ]
    prob = problem([station("e1", "emb"), station("k1", "pack")], *orders)
    edd = dispatch(prob, "edd")
    atcs = dispatch(prob, "atcs")
    assert check_plan(prob, edd) == [] and check_plan(prob, atcs) == []
    # The station starts with no setup: every EDD task changes over; ATCS changes once.
    assert metrics(prob, edd).setup_s == 4 * 30
    assert metrics(prob, atcs).setup_s == 2 * 30
    assert sum(1 for a in edd.assignments.values() if a.setup) == 4


def test_atc_prefers_the_heavier_order_when_both_are_critical() -> None:
    prob = problem(
        [station("p1", "print"), station("k1", "pack")],
        unit_order("light", 50, [("print", 60)], weight=1),
        unit_order("heavy", 50, [("print", 60)], weight=9),
    )
    plan = dispatch(prob, "atc").assignments
    assert plan["heavy/print"].start < plan["light/print"].start
