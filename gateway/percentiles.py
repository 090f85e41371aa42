"""The one percentile definition of the project: the gateway's KPIs and health figures and
the benchmarks all use it, so a p90 means the same number everywhere.

It imports nothing from the gateway, so the benchmarks (and any layer) can use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], p: float) -> float:
    """The ``p``-th percentile (0 ≤ p ≤ 100) of ``values``, by the "inclusive" definition:
    linear interpolation between the closest ranks (Hyndman & Fan type 7; numpy's default,
    Excel's PERCENTILE.INC, ``statistics.quantiles(method="inclusive")``).

    With the values sorted as x[0] ≤ … ≤ x[n-1], h = (n − 1) · p / 100 and
    P = x[⌊h⌋] + (h − ⌊h⌋) · (x[⌊h⌋ + 1] − x[⌊h⌋]). So p0 is the minimum, p100 the maximum,
    p50 the median, one value is every percentile of itself, and a percentile below 100
    reaches the maximum only when the top values are equal (p90 of 10 values is
    x[8] + 0.1 · (x[9] − x[8])). Raises ValueError for no values or p outside [0, 100].
    """
    xs = sorted(values)
    if not xs:
        raise ValueError("a percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside [0, 100]")
    # Multiply before dividing: (n - 1) * p is exact for integer p, so h lands exactly on
    # a rank when it should (p90 of 11 values is x[9], not x[8] + 0.9999… of a step).
    h = (len(xs) - 1) * p / 100
    lo = math.floor(h)
    if lo + 1 >= len(xs):
        return xs[-1]
    return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])
