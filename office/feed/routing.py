"""Which line gets an order: one whose catalog has every SKU; among those, the one free
soonest by its own forecasts, else the least loaded.

Pure: the ledger reads the catalogs, loads and forecasts in its transaction and asks here."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Choice", "choose_line", "free_at"]


@dataclass(frozen=True)
class Choice:
    gateway_id: str | None  # None: no line takes it, ``problem`` says why
    problem: str | None = None


def free_at(
    open_orders: Mapping[str, Collection[str]],
    predicted: Mapping[tuple[str, str], datetime | None],
) -> dict[str, datetime]:
    """When each line is done with its open orders: the latest ``predicted_completion`` of
    them (from each order's latest ``order.progress``). A line with an open order that has
    no forecast (none sent yet, or unplanned: null) is left out: its end is unknown."""
    found: dict[str, datetime] = {}
    for line, orders in open_orders.items():
        times = [predicted.get((line, order_id)) for order_id in orders]
        known = [t for t in times if t is not None]
        if known and len(known) == len(times):
            found[line] = max(known)
    return found


def choose_line(
    skus: Collection[str],
    lines: Sequence[str],
    catalogs: Mapping[str, frozenset[str]],
    loads: Mapping[str, int],
    named: str | None = None,
    forecasts: Mapping[str, datetime] | None = None,
) -> Choice:
    """``lines``: the configured lines; ``catalogs``: each line's SKUs; ``loads``: each
    line's open orders; ``forecasts``: when each line is done with them (:func:`free_at`).
    A named line is taken when it can make the order, never overridden.

    Among the lines able to make it: an idle one (no open orders) first; when all are busy
    and each has a forecast, the one free soonest; otherwise (a forecast missing) the
    fewest open orders. Ties go to the fewer open orders, then the first by name: the same
    inputs always give the same line."""
    wanted = set(skus)
    if named is not None:
        if named not in lines:
            return Choice(None, f"no line {named} at this office")
        missing = sorted(wanted - catalogs.get(named, frozenset()))
        if missing:
            return Choice(None, f"line {named} cannot make {', '.join(missing)}")
        return Choice(named)
    able = [g for g in lines if wanted <= catalogs.get(g, frozenset())]
    if not able:
        return Choice(None, f"no line can make all of {', '.join(sorted(wanted))}")
    known = forecasts or {}
    if all(loads.get(g, 0) > 0 and g in known for g in able):
        return Choice(min(able, key=lambda g: (known[g], loads.get(g, 0), g)))
    return Choice(min(able, key=lambda g: (loads.get(g, 0), g)))
