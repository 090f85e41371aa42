"""Properties of the KPI arithmetic, over random station histories (hypothesis).

- PBT = APT + ADET + AUST + ADOT, and it covers the planned time (never less);
- availability, quality, setup share and utilisation lie in [0, 1] (ISO 22400-2 bounds
  them; effectiveness may exceed 1 and is not checked so);
- OEE = availability × performance × quality;
- elements add up: [a, c) = [a, b) + [b, c) for any b.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.numbers.elements import StateSpan, classify
from gateway.numbers.kpis import oee, ratio
from gateway.numbers.model import StationElements
from gateway.numbers.periods import Window, merge

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
SPAN = 8 * 3600
STATES = ["IDLE", "EXECUTE", "HELD", "STOPPED", "SUSPENDED", "COMPLETE", "ABORTED"]


def t(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


@st.composite
def windows(draw: st.DrawFn, max_n: int = 6) -> list[Window]:
    points = sorted(draw(st.lists(st.integers(0, SPAN), max_size=2 * max_n, unique=True)))
    if len(points) % 2:
        points = points[:-1]
    return merge([(t(a), t(b)) for a, b in zip(points[::2], points[1::2], strict=True)])


@st.composite
def histories(draw: st.DrawFn) -> list[StateSpan]:
    cuts = sorted(
        draw(st.lists(st.integers(-600, SPAN + 600), min_size=1, max_size=12, unique=True))
    )
    out = []
    for i, since in enumerate(cuts):
        until = t(cuts[i + 1]) if i + 1 < len(cuts) else None
        reason = draw(st.sampled_from([None, "thread break", "no blanks"]))
        out.append(StateSpan(draw(st.sampled_from(STATES)), reason, t(since), until))
    return out


@settings(max_examples=300, deadline=None)
@given(windows(), histories(), windows(), windows(), st.integers(1, SPAN - 1))
def test_time_classes_partition_pbt_and_add_up(
    planned: list[Window],
    states: list[StateSpan],
    in_hand: list[Window],
    setups_raw: list[Window],
    split: int,
) -> None:
    # A changeover happens with a task in hand (taken, not yet started).
    setups = merge(
        [(max(a, x), min(b, y)) for a, b in setups_raw for x, y in in_hand if min(b, y) > max(a, x)]
    )
    whole = classify(t(0), t(SPAN), planned, states, in_hand, setups)
    parts = [whole.apt_s, whole.adet_s, whole.aust_s, whole.adot_s]
    assert all(p >= 0 for p in parts)
    assert abs(sum(parts) - whole.pbt_s) < 1e-6
    assert abs(sum(whole.downtime.values()) - whole.adet_s) < 1e-6
    planned_s = sum((b - a).total_seconds() for a, b in planned)
    assert whole.pbt_s >= planned_s - 1e-6  # work outside the plan only adds to it
    for r in (
        ratio(whole.apt_s, whole.pbt_s),
        ratio(whole.aust_s, whole.aust_s + whole.apt_s),
        ratio(whole.apt_s + whole.adet_s + whole.aust_s, whole.pbt_s),
    ):
        assert r["ratio"] is None or 0 <= r["ratio"] <= 1
    first = classify(t(0), t(split), planned, states, in_hand, setups)
    second = classify(t(split), t(SPAN), planned, states, in_hand, setups)
    both = first.add(second)
    for name in ("pbt_s", "apt_s", "adet_s", "aust_s", "adot_s"):
        assert abs(getattr(both, name) - getattr(whole, name)) < 1e-6, name


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 10**7),
)
def test_oee_is_the_product_of_its_factors_and_quality_is_bounded(
    pbt_ms: int, apt_ms: int, pq: int, bad: int, pri_ms: int
) -> None:
    """Times in milliseconds, as the store keeps them."""
    pbt, apt, pri = pbt_ms / 1000, min(pbt_ms, apt_ms) / 1000, pri_ms / 1000
    gq = max(0, pq - bad)
    el = StationElements(pbt_s=pbt, apt_s=apt, adot_s=pbt - apt, pq=pq, gq=gq, pri_pq_s=pri * pq)
    doc = oee(el)
    a, p, q = (doc[k]["ratio"] for k in ("availability", "performance", "quality"))
    for bounded in (a, q):
        assert bounded is None or 0 <= bounded <= 1
    if None in (a, p, q):
        assert doc["oee"] is None
    else:
        assert doc["oee"] == round((apt / pbt) * (pri * pq / apt) * (gq / pq), 4)
