"""Late reasons on small hand-made cases: a bottleneck, a late material, a shift ending,
and work that does not fit."""

from __future__ import annotations

from dataclasses import replace

from gateway.planner.explain import delays, explain_plan
from gateway.planner.rules import dispatch
from tests.planner.builders import problem, station, unit_order


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
    assert late.reasons == ("shift: pack-1 closes at +200 s (waited 805 s)",)


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
