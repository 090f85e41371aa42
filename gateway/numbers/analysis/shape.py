"""The line's shape as the analysis needs it: which stations share a queue, and which
work follows which.

Stations with the same capabilities are one *group*: the dispatcher hands a task of those
capabilities to whichever of them is free, so they share one queue and one capacity
(dtg-1 and dtg-2 on the reference line). A group is *downstream* of another when some
routing of the catalog has an operation of the first right after one of the second (print,
then pack).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.orderbook.context import LineContext

__all__ = ["LineShape"]


@dataclass(frozen=True, slots=True)
class LineShape:
    """``groups``: a group's name (its capabilities, joined by ``+``) → its stations, in
    order; ``downstream``: a group → the groups whose work follows its own."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    downstream: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, core: LineContext) -> LineShape:
        """The shape of the line's stations and the catalog in force."""
        caps = {sid: tuple(cfg.capabilities) for sid, cfg in core.config.stations.items()}
        flows = [
            [op.capability for op in routing.operations]
            for routing in core.catalog.routings.values()
        ]
        return cls.build(caps, flows)

    @classmethod
    def build(
        cls, capabilities: Mapping[str, Iterable[str]], routings: Iterable[Iterable[str]]
    ) -> LineShape:
        """From each station's capabilities and each routing's capabilities in order."""
        groups: dict[str, list[str]] = {}
        of_capability: dict[str, set[str]] = {}
        for station in sorted(capabilities):
            caps = sorted(set(capabilities[station]))
            name = "+".join(caps) or station
            groups.setdefault(name, []).append(station)
            for c in caps:
                of_capability.setdefault(c, set()).add(name)
        downstream: dict[str, set[str]] = {}
        for routing in routings:
            for before, after in itertools.pairwise(routing):
                for g in of_capability.get(before, ()):
                    downstream.setdefault(g, set()).update(
                        h for h in of_capability.get(after, ()) if h != g
                    )
        return cls(
            {g: tuple(s) for g, s in groups.items()},
            {g: frozenset(d) for g, d in downstream.items()},
        )

    def group_of(self, station: str) -> str:
        """The group a station belongs to (a station the shape does not know is its own)."""
        for name, stations in self.groups.items():
            if station in stations:
                return name
        return station
