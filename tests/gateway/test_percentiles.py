"""The one percentile definition (gateway/percentiles.py): inclusive, linear interpolation
between closest ranks. Every expected value is worked out by hand: sort, h = (n − 1)·p/100,
x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.percentiles import percentile


@pytest.mark.parametrize("p", [0, 1, 50, 90, 99, 100])
def test_one_value_is_every_percentile_of_itself(p: float) -> None:
    assert percentile([7.5], p) == 7.5


TEN = [60.0, 10.0, 100.0, 30.0, 20.0, 90.0, 40.0, 80.0, 50.0, 70.0]  # 10..100, shuffled


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0, 10.0),  # h = 0: the minimum
        (25, 32.5),  # h = 9 * 0.25 = 2.25: 30 + 0.25 * 10
        (50, 55.0),  # h = 4.5: halfway between 50 and 60, the median
        (90, 91.0),  # h = 8.1: 90 + 0.1 * 10, below the maximum
        (99, 99.1),  # h = 8.91: 90 + 0.91 * 10
        (100, 100.0),  # h = 9: the maximum
    ],
)
def test_ten_values(p: float, expected: float) -> None:
    assert percentile(TEN, p) == pytest.approx(expected, abs=1e-9)


def test_p90_of_ten_values_is_not_the_maximum() -> None:
    # What "int(0.9 n)" as an index got wrong: for n = 10 it picks x[9], the maximum.
    assert percentile(TEN, 90) < max(TEN)


ELEVEN = [float(10 * i) for i in range(11)]  # 0, 10, ..., 100


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (50, 50.0),  # h = 10 * 0.5 = 5: x[5]
        (90, 90.0),  # h = 9 exactly: x[9], no interpolation
        (99, 99.0),  # h = 9.9: 90 + 0.9 * 10
    ],
)
def test_eleven_values(p: float, expected: float) -> None:
    assert percentile(ELEVEN, p) == pytest.approx(expected, abs=1e-9)


def test_uneven_gaps_and_ties() -> None:
    # 1, 2, 4, 8: p50 h = 1.5 -> 2 + 0.5 * 2 = 3; p90 h = 2.7 -> 4 + 0.7 * 4 = 6.8.
    assert percentile([8, 1, 4, 2], 50) == pytest.approx(3.0)
    assert percentile([8, 1, 4, 2], 90) == pytest.approx(6.8)
    # Equal top values: there the p90 is the maximum, and only there.
    assert percentile([5.0] * 10, 90) == 5.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 9], 90) == 9.0


def test_no_values_or_a_percentile_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], -1)
    with pytest.raises(ValueError):
        percentile([1.0], 100.5)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=60))
def test_it_is_the_inclusive_method_of_the_standard_library(values: list[float]) -> None:
    """A second, independent implementation of the same named definition agrees."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for p in (1, 25, 50, 90, 99):
        assert percentile(values, p) == pytest.approx(cuts[p - 1], rel=1e-9, abs=1e-6)
