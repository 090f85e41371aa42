"""Which line gets an order: one whose catalog has every SKU, the least loaded first.

Pure: the ledger reads the catalogs and loads in its transaction and asks here."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Choice", "choose_line"]


@dataclass(frozen=True)
class Choice:
    gateway_id: str | None  # None: no line takes it, ``problem`` says why
    problem: str | None = None


def choose_line(
    skus: Collection[str],
    lines: Sequence[str],
    catalogs: Mapping[str, frozenset[str]],
    loads: Mapping[str, int],
    named: str | None = None,
) -> Choice:
    """``lines``: the configured lines; ``catalogs``: each line's SKUs; ``loads``: each
    line's open orders. A named line is taken when it can make the order, never overridden."""
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
    # Ties go to the first by name: the same inputs always give the same line.
    return Choice(min(able, key=lambda g: (loads.get(g, 0), g)))
