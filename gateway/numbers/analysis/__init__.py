"""Bottlenecks, drift and why orders were late (issue 14, point 4 and the reports' "why").

Pure functions over a period's :class:`~gateway.numbers.model.Elements` (and, for a late
order, its own history in the store); every sentence in English and Chinese
(:class:`~gateway.numbers.model.Words`, from the Babel catalog):

- :func:`why_late` (``late``): the largest causes of an order's lateness, with amounts;
- :func:`bottleneck` (``bottleneck``): the station (group) that constrained output;
- :func:`drift` (``drift``): each headline KPI's change from the previous period and who or
  what drove it.
"""

from gateway.numbers.analysis.bottleneck import (
    BUSY_THRESHOLD,
    Bottleneck,
    StarvedNeighbour,
    bottleneck,
)
from gateway.numbers.analysis.drift import Change, Contributor, ContributorKind, Kpi, Unit, drift
from gateway.numbers.analysis.late import MAX_REASONS, Cause, CauseKind, causes, why_late
from gateway.numbers.analysis.shape import LineShape

__all__ = [
    "BUSY_THRESHOLD",
    "MAX_REASONS",
    "Bottleneck",
    "Cause",
    "CauseKind",
    "Change",
    "Contributor",
    "ContributorKind",
    "Kpi",
    "LineShape",
    "StarvedNeighbour",
    "Unit",
    "bottleneck",
    "causes",
    "drift",
    "why_late",
]
