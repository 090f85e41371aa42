"""The parcel's 3D fit (gateway/orderbook/parcels_fit.py): hand-worked choices from the
reference catalog's numbers, and properties any choice must have (hypothesis): every unit
placed once, inside its container, as its own size turned, none overlapping another, no
rigid unit in a mailer, no container over its load; a unit is said to fit nowhere only
when it fits no container even alone.

The expectations are worked out here from the catalog's sizes, weights and costs, and the
properties are checked by this file's own geometry, not by the module's.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.contract import Catalog
from gateway.orderbook import parcels
from gateway.orderbook import parcels_fit as fit

ROOT = Path(__file__).resolve().parents[2]
RAW: dict[str, Any] = json.loads(
    (ROOT / "simulators" / "data" / "reference-catalog.json").read_text()
)
SKUS = {s["sku"]: s for s in RAW["skus"]}


def mm3(xs: list[float]) -> fit.Dims:
    return float(xs[0]), float(xs[1]), float(xs[2])


BOXES = {
    m["material"]: fit.Container(
        m["material"],
        fit.Kind(m["container"]["kind"]),
        mm3(m["container"]["inner_mm"]),
        float(m["container"]["max_load_g"]),
        float(m["standard_cost"]),
    )
    for m in RAW["materials"]
    if "container" in m
}
ALL = list(BOXES.values())


def unit(sku: str, n: int = 1) -> fit.Unit:
    s = SKUS[sku]
    crushable: bool = s.get("crushable", True)
    return fit.Unit(f"{sku}#{n}", mm3(s["dims_mm"]), float(s["unit_weight_g"]), crushable)


def units(sku: str, n: int) -> list[fit.Unit]:
    return [unit(sku, i) for i in range(1, n + 1)]


def materials(choice: fit.Choice | fit.NoFit) -> list[str]:
    assert not isinstance(choice, fit.NoFit), choice
    return sorted(p.container.material for p in choice)


# -- the catalog as the gateway reads it ---------------------------------------------------


def test_the_catalogs_containers_are_read_with_their_sizes_loads_and_costs() -> None:
    catalog = Catalog.model_validate(RAW)
    read = {
        c.material: c
        for c in parcels.catalog_containers({m.material: m for m in catalog.materials})
    }
    assert read == BOXES
    assert len(read) == 5  # POLYBAG, POLYBAG-L, CARTON-S, CARTON-M, CARTON-L


# -- hand-worked choices -------------------------------------------------------------------


def test_three_m_tees_stack_too_high_for_a_polybag_and_go_in_one_large_one() -> None:
    # TEE-WHT-M is 280×210×18: one to a layer in POLYBAG (300×400×40: two side by side
    # need 420 mm or 560 mm), and three stack to 54 mm, over its 40. POLYBAG-L (400×500×60)
    # takes them: 0.55, against 2 POLYBAGs (two stacked, one alone) 0.70 or the BOM's
    # 3 × 0.35 = 1.05.
    assert materials(fit.choose(ALL, units("TEE-WHT-M", 3))) == ["POLYBAG-L"]
    assert fit.pack(BOXES["POLYBAG"], units("TEE-WHT-M", 3)) is None
    # Two stack to 36 mm: one POLYBAG (0.35).
    assert materials(fit.choose(ALL, units("TEE-WHT-M", 2))) == ["POLYBAG"]


def test_a_tumbler_is_too_long_for_its_boms_small_carton() -> None:
    # TUMBLER-ENG is 110×110×230 and rigid; CARTON-S is 200×150×100 (230 > 200), the
    # mailers take no rigid item: CARTON-M (300×220×150), 2.4.
    assert materials(fit.choose(ALL, [unit("TUMBLER-ENG")])) == ["CARTON-M"]
    m = fit.misfit(BOXES["CARTON-S"], [unit("TUMBLER-ENG")])
    assert m is not None and m.why is fit.Why.TOO_BIG


def test_a_tumbler_and_a_pen_share_a_medium_carton() -> None:
    # The pen (180×60×35) lies beside the tumbler (laid down: 230×110×110) in CARTON-M:
    # 2.4, against CARTON-M for the tumbler and CARTON-S for the pen: 4.0.
    choice = fit.choose(ALL, [unit("TUMBLER-ENG"), unit("PEN-ENG")])
    assert materials(choice) == ["CARTON-M"]


def test_a_pen_is_rigid_and_goes_in_a_carton_not_a_mailer() -> None:
    # 180×60×35 would fit POLYBAG (0.35), but a boxed pen is not crushable: CARTON-S, 1.6.
    assert materials(fit.choose(ALL, [unit("PEN-ENG")])) == ["CARTON-S"]
    m = fit.misfit(BOXES["POLYBAG"], [unit("PEN-ENG")])
    assert m is not None and m.why is fit.Why.RIGID_IN_MAILER and m.unit == unit("PEN-ENG")


def test_a_cap_is_too_tall_for_a_flat_bag() -> None:
    # CAP-EMB-NAVY is 200×180×110: 110 mm over both mailers' depths (40, 60) and over
    # CARTON-S's smallest side (100): CARTON-M.
    assert materials(fit.choose(ALL, [unit("CAP-EMB-NAVY")])) == ["CARTON-M"]


def test_a_mailers_load_limit_is_kept() -> None:
    # Three L tees (300×220×20, 222 g each) fit a POLYBAG-L's size (stacked: 60 mm, its
    # depth) but weigh 666 g: over a load limit of 600 g. Two (444 g) go.
    light = fit.Container("BAG", fit.Kind.MAILER, (400.0, 500.0, 60.0), 600.0, 0.5)
    m = fit.misfit(light, units("TEE-WHT-L", 3))
    assert m is not None and m.why is fit.Why.TOO_HEAVY and m.load_g == 666
    assert fit.pack(light, units("TEE-WHT-L", 2)) is not None  # 444 g, 40 mm


def test_containers_all_smaller_than_a_unit_split_the_order() -> None:
    # Only POLYBAG: three M tees go two (36 mm) and one.
    assert materials(fit.choose([BOXES["POLYBAG"]], units("TEE-WHT-M", 3))) == [
        "POLYBAG",
        "POLYBAG",
    ]


def test_a_unit_no_container_holds_is_named_with_the_largest_container() -> None:
    # Only CARTON-S and the mailers: the tumbler (230 mm, rigid) fits none of them.
    small = [BOXES[m] for m in ("POLYBAG", "POLYBAG-L", "CARTON-S")]
    found = fit.choose(small, [unit("PEN-ENG"), unit("TUMBLER-ENG")])
    assert isinstance(found, fit.NoFit)
    assert found.unit == unit("TUMBLER-ENG")
    # The largest by volume: POLYBAG-L, 400×500×60 = 12,000,000 mm³ (CARTON-S: 3,000,000).
    assert found.largest.material == "POLYBAG-L"


def test_a_container_without_a_cost_counts_after_the_priced_ones_by_its_size() -> None:
    ranked = fit.ranked_costs(
        [("A", 1.0, 100.0), ("B", None, 500.0), ("C", 3.0, 50.0), ("D", None, 200.0)]
    )
    # The dearest priced is 3.0: the smaller unpriced D is 4.0, B 5.0.
    assert ranked == {"A": 1.0, "B": 5.0, "C": 3.0, "D": 4.0}


def test_a_cheaper_split_beats_one_carton() -> None:
    # Two M tees and a pen: CARTON-M (300×220×150) holds all three for 2.4; but the tees
    # stack in a POLYBAG (36 mm, 0.35) and the rigid pen goes in a CARTON-S (1.6): 1.95.
    # (CARTON-S cannot take a tee: 280 × 210 > 200 × 150.)
    order = [*units("TEE-WHT-M", 2), unit("PEN-ENG")]
    assert materials(fit.choose(ALL, order)) == ["CARTON-S", "POLYBAG"]


def test_tumblers_two_to_a_medium_carton() -> None:
    # Laid down (230×110×110), two tumblers fill CARTON-M's 220 mm width side by side;
    # a third has no room (230 + 110 > 300, 110 + 110 > 150, standing 230 > 150).
    medium = [BOXES["CARTON-M"]]
    assert materials(fit.choose(medium, units("TUMBLER-ENG", 2))) == ["CARTON-M"]
    assert materials(fit.choose(medium, units("TUMBLER-ENG", 3))) == ["CARTON-M", "CARTON-M"]


def test_the_choice_does_not_depend_on_the_units_order() -> None:
    mixed = [unit("TEE-WHT-M"), unit("PEN-ENG"), unit("TEE-WHT-L"), unit("CAP-EMB-RED")]
    first = fit.choose(ALL, mixed)
    for order in itertools.permutations(mixed):
        assert fit.choose(ALL, list(order)) == first


def test_verify_refuses_a_wrong_packing() -> None:
    box = BOXES["CARTON-M"]
    a, b = unit("PEN-ENG", 1), unit("PEN-ENG", 2)
    good = fit.Packed(
        box,
        (
            fit.Placement(a.key, (0.0, 0.0, 0.0), (180.0, 60.0, 35.0)),
            fit.Placement(b.key, (0.0, 60.0, 0.0), (180.0, 60.0, 35.0)),
        ),
    )
    assert fit.verify(good, [a, b])
    overlapping = fit.Packed(
        box, (good.placements[0], fit.Placement(b.key, (100.0, 30.0, 0.0), (180.0, 60.0, 35.0)))
    )
    assert not fit.verify(overlapping, [a, b])
    outside = fit.Packed(
        box, (good.placements[0], fit.Placement(b.key, (200.0, 0.0, 0.0), (180.0, 60.0, 35.0)))
    )
    assert not fit.verify(outside, [a, b])
    resized = fit.Packed(
        box, (good.placements[0], fit.Placement(b.key, (0.0, 60.0, 0.0), (170.0, 60.0, 35.0)))
    )
    assert not fit.verify(resized, [a, b])
    assert not fit.verify(fit.Packed(box, good.placements[:1]), [a, b])  # b left out
    in_a_bag = fit.Packed(BOXES["POLYBAG-L"], good.placements)
    assert not fit.verify(in_a_bag, [a, b])  # rigid pens in a mailer


def test_a_fifty_unit_order_is_packed_in_bounded_time() -> None:
    skus = ["TEE-WHT-M", "TEE-BLK-L", "CAP-EMB-NAVY", "PEN-ENG", "TUMBLER-ENG", "KIT-XMAS-A"]
    order = [unit(skus[i % len(skus)], i) for i in range(50)]
    t0 = time.perf_counter()
    choice = fit.choose(ALL, order)
    took = time.perf_counter() - t0
    assert not isinstance(choice, fit.NoFit)
    _check(choice, order)
    assert took < 2.0, took  # measured ~tens of ms (benchmarks/bench_parcels.py)


# -- properties ------------------------------------------------------------------------------

SIDE = st.integers(min_value=5, max_value=400).map(float)
DIMS = st.tuples(SIDE, SIDE, SIDE)


@st.composite
def orders(draw: st.DrawFn) -> tuple[list[fit.Container], list[fit.Unit]]:
    n_boxes = draw(st.integers(min_value=1, max_value=5))
    boxes = []
    for i in range(n_boxes):
        boxes.append(
            fit.Container(
                f"C{i}",
                draw(st.sampled_from(list(fit.Kind))),
                draw(DIMS),
                float(draw(st.integers(min_value=100, max_value=20_000))),
                float(draw(st.integers(min_value=1, max_value=500))) / 100,
            )
        )
    n_units = draw(st.integers(min_value=1, max_value=9))
    kinds = draw(
        st.lists(
            st.tuples(DIMS, st.integers(min_value=1, max_value=3000).map(float), st.booleans()),
            min_size=1,
            max_size=3,
        )
    )
    picked = [draw(st.sampled_from(kinds)) for _ in range(n_units)]
    made = [fit.Unit(f"U{i}", d, w, c) for i, (d, w, c) in enumerate(picked)]
    return boxes, made


def _alone(box: fit.Container, u: fit.Unit) -> bool:
    """The test's own rule: a box fits alone when some turn of it is within the inner
    size (any of the 6 permutations), kind and load allowing."""
    if box.kind is fit.Kind.MAILER and not u.crushable:
        return False
    if u.weight_g > box.max_load_g:
        return False
    return any(
        all(a <= b for a, b in zip(turn, box.inner, strict=True))
        for turn in itertools.permutations(u.dims)
    )


def _check(choice: fit.Choice, order: list[fit.Unit]) -> None:
    by_key = {u.key: u for u in order}
    placed = [p.key for packed in choice for p in packed.placements]
    assert sorted(placed) == sorted(by_key), "every unit exactly once"
    for packed in choice:
        box = packed.container
        inside = [by_key[p.key] for p in packed.placements]
        if box.kind is fit.Kind.MAILER:
            assert all(u.crushable for u in inside), "a rigid unit in a mailer"
        assert sum(u.weight_g for u in inside) <= box.max_load_g + 1e-6, "over the load"
        for p in packed.placements:
            assert sorted(p.size) == sorted(by_key[p.key].dims), "not the unit's own size"
            for axis in range(3):
                assert p.at[axis] >= 0, "outside the container"
                assert p.at[axis] + p.size[axis] <= box.inner[axis] + 1e-6, "outside"
        for a, b in itertools.combinations(packed.placements, 2):
            apart = any(
                a.at[i] + a.size[i] <= b.at[i] + 1e-6 or b.at[i] + b.size[i] <= a.at[i] + 1e-6
                for i in range(3)
            )
            assert apart, f"{a.key} and {b.key} overlap"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders())
def test_every_choice_is_a_true_packing(case: tuple[list[fit.Container], list[fit.Unit]]) -> None:
    boxes, order = case
    choice = fit.choose(boxes, order)
    if isinstance(choice, fit.NoFit):
        assert not any(_alone(b, choice.unit) for b in boxes), "said to fit nowhere, but fits"
        assert choice.largest.volume == max(b.volume for b in boxes)
        return
    assert all(any(_alone(b, u) for b in boxes) for u in order)
    _check(choice, order)


@settings(max_examples=200, deadline=None)
@given(orders())
def test_a_single_unit_goes_in_the_cheapest_container_it_fits(
    case: tuple[list[fit.Container], list[fit.Unit]],
) -> None:
    boxes, order = case
    one = order[0]
    fitting = [b for b in boxes if _alone(b, one)]
    choice = fit.choose(boxes, [one])
    if not fitting:
        assert isinstance(choice, fit.NoFit)
        return
    assert not isinstance(choice, fit.NoFit)
    [packed] = choice
    assert packed.container.cost == min(b.cost for b in fitting)


@settings(max_examples=100, deadline=None)
@given(orders(), st.integers(min_value=0, max_value=10))
def test_the_greedy_choice_of_large_orders_is_a_true_packing(
    case: tuple[list[fit.Container], list[fit.Unit]], more: int
) -> None:
    boxes, order = case
    many = (
        order
        + [fit.Unit(f"X{i}", u.dims, u.weight_g, u.crushable) for i, u in enumerate(order * 2)][
            :more
        ]
    )
    choice = fit.choose(boxes, many, exact_max=2)
    if isinstance(choice, fit.NoFit):
        assert not any(_alone(b, choice.unit) for b in boxes)
        return
    _check(choice, many)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_the_exact_search_never_loses_to_the_greedy_one(n: int) -> None:
    mixed = [
        unit(sku, i)
        for i, sku in enumerate(
            ["TEE-WHT-M", "PEN-ENG", "TEE-WHT-L", "CAP-EMB-RED", "KIT-XMAS-A", "TEE-BLK-M"][:n]
        )
    ]
    exact = fit.choose(ALL, mixed)
    greedy = fit.choose(ALL, mixed, exact_max=0)
    assert not isinstance(exact, fit.NoFit) and not isinstance(greedy, fit.NoFit)
    assert sum(p.container.cost for p in exact) <= sum(p.container.cost for p in greedy) + 1e-9
