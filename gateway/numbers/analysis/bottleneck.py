"""Which station constrained output in a period.

The method, on a period's elements (ISO 22400 names, gateway/numbers/model.py):

1. Stations that share a queue are judged together as a *group* (parallel stations of the
   same capabilities, :class:`~gateway.numbers.analysis.shape.LineShape`): one busy DTG
   printer beside an idle one is not a bottleneck.
2. A group's utilisation is its busy share of its planned time: Σ (APT + ADET + AUST) /
   Σ PBT (producing, held up with work in hand, or changing over; the rest of PBT is ADOT,
   idle for want of work). Its queue is the mean wait of work before it: Σ queue_wait_s /
   Σ queued (ready → taken).
3. The bottleneck is the group with the highest utilisation; among groups within
   :data:`NEAR` of it, the one with the longest mean queue before it. It is *confirmed*
   when no group has a longer queue before it (a busy station that work does not wait for
   is not what holds output back).
4. When even that group was busy less than :data:`BUSY_THRESHOLD` of its planned time,
   nothing constrained output: the line was short of work (``found`` is False, and the
   sentence says so, naming the busiest, or that no station was busy at all).
5. Its neighbours downstream (the groups whose work follows its own in some routing) show
   the starvation it caused: each station's idle share, ADOT / PBT.

Blocking is not applicable on this line: a unit leaves a station into a tote, never into
a buffer that can be full, so no station waits for room downstream. ``blocked_s`` stays
None rather than a number made up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from gateway.i18n import Text, listing, t
from gateway.numbers.analysis.saying import duration, percent, words
from gateway.numbers.analysis.shape import LineShape
from gateway.numbers.model import Elements, StationElements, Words

__all__ = ["BUSY_THRESHOLD", "NEAR", "Bottleneck", "StarvedNeighbour", "bottleneck"]

BUSY_THRESHOLD = 0.5
NEAR = 0.05  # utilisations this close are a tie, decided by the queue before them

_CONFIG = ConfigDict(extra="forbid", frozen=True)


class StarvedNeighbour(BaseModel):
    """A station downstream of the bottleneck, and how long it stood idle for want of work."""

    model_config = _CONFIG

    station: str
    idle_s: float  # ADOT
    planned_s: float  # PBT
    idle_share: float  # ADOT / PBT


class Bottleneck(BaseModel):
    """The station (group) that constrained output; see the module docstring."""

    model_config = _CONFIG

    found: bool  # False: every group was under BUSY_THRESHOLD busy (short of work)
    group: str  # its capabilities, joined by "+"
    stations: list[str]  # the group's stations (sharing one queue)
    station: str  # the busiest station of the group
    utilisation: float  # the group's Σ busy / Σ PBT
    busy_s: float
    planned_s: float
    queue_wait_s: float | None  # mean wait before it; None: nothing was queued
    queued: int
    confirmed: bool  # no group had a longer queue before it
    longest_queue: str | None  # the group with the longest queue, when not this one
    starved: list[StarvedNeighbour]
    blocked_s: float | None = None  # not applicable on this line (see the module docstring)
    words: Words


@dataclass(slots=True)
class _Group:
    name: str
    stations: list[str] = field(default_factory=list)
    busy_s: float = 0.0
    planned_s: float = 0.0
    wait_s: float = 0.0
    queued: int = 0

    def add(self, station: str, el: StationElements) -> None:
        self.stations.append(station)
        self.busy_s += _busy(el)
        self.planned_s += el.pbt_s
        self.wait_s += el.queue_wait_s
        self.queued += el.queued

    @property
    def utilisation(self) -> float:
        return self.busy_s / self.planned_s if self.planned_s else 0.0

    @property
    def mean_wait_s(self) -> float | None:
        return self.wait_s / self.queued if self.queued else None


def _busy(el: StationElements) -> float:
    return el.apt_s + el.adet_s + el.aust_s


def _wait_key(g: _Group) -> float:
    return -1.0 if g.mean_wait_s is None else g.mean_wait_s


def bottleneck(el: Elements, shape: LineShape | None = None) -> Bottleneck | None:
    """The period's bottleneck (see the module docstring); None when no station had planned
    time. Without ``shape`` every station is a group of its own, with no neighbours."""
    shape = shape or LineShape()
    groups: dict[str, _Group] = {}
    for station in sorted(el.stations):
        name = shape.group_of(station)
        groups.setdefault(name, _Group(name)).add(station, el.stations[station])
    active = [g for g in groups.values() if g.planned_s > 0]
    if not active:
        return None
    top = max(g.utilisation for g in active)
    near = [g for g in active if g.utilisation >= top - NEAR]
    pick = max(near, key=lambda g: (_wait_key(g), g.utilisation, g.name))
    longest = max(active, key=lambda g: (_wait_key(g), g.utilisation, g.name))
    confirmed = _wait_key(longest) <= _wait_key(pick)
    station = max(
        pick.stations,
        key=lambda s: _busy(el.stations[s]) / el.stations[s].pbt_s if el.stations[s].pbt_s else 0.0,
    )
    starved = [
        StarvedNeighbour(
            station=s,
            idle_s=round(el.stations[s].adot_s, 3),
            planned_s=round(el.stations[s].pbt_s, 3),
            idle_share=round(el.stations[s].adot_s / el.stations[s].pbt_s, 4),
        )
        for g in sorted(shape.downstream.get(pick.name, ()))
        for s in shape.groups.get(g, ())
        if s in el.stations and el.stations[s].pbt_s > 0
    ]
    found = pick.utilisation >= BUSY_THRESHOLD
    return Bottleneck(
        found=found,
        group=pick.name,
        stations=list(pick.stations),
        station=station,
        utilisation=round(pick.utilisation, 4),
        busy_s=round(pick.busy_s, 3),
        planned_s=round(pick.planned_s, 3),
        queue_wait_s=None if pick.mean_wait_s is None else round(pick.mean_wait_s, 1),
        queued=pick.queued,
        confirmed=confirmed,
        longest_queue=None if confirmed else longest.name,
        starved=starved,
        words=_say(found, pick, longest if not confirmed else None, starved),
    )


def _names(g: _Group) -> Text:
    return t("{stations} ({group})", stations=listing(g.stations, "/"), group=g.name)


def _say(
    found: bool, pick: _Group, longest: _Group | None, starved: list[StarvedNeighbour]
) -> Words:
    busy = percent(pick.utilisation)
    if not pick.busy_s:
        return words(t("No bottleneck: no station was busy; the line had no work."))
    if not found:
        return words(
            t(
                "No bottleneck: every station was under {threshold} busy (the busiest, "
                "{stations}, {busy}); the line was short of work.",
                threshold=percent(BUSY_THRESHOLD),
                stations=_names(pick),
                busy=busy,
            )
        )
    parts: list[Text] = []
    if pick.mean_wait_s is None:
        parts.append(t("Bottleneck: {stations}, {busy} busy.", stations=_names(pick), busy=busy))
    else:
        parts.append(
            t(
                "Bottleneck: {stations}, {busy} busy, work queued a mean {wait} before it.",
                stations=_names(pick),
                busy=busy,
                wait=duration(pick.mean_wait_s),
            )
        )
    if longest is not None and longest.mean_wait_s is not None:
        parts.append(
            t(
                "The longest queue was before {stations} ({wait}).",
                stations=_names(longest),
                wait=duration(longest.mean_wait_s),
            )
        )
    # Each message is built apart: Babel does not extract a t() nested in another's call.
    idle = [
        t("{station} {share}", station=n.station, share=percent(n.idle_share))
        for n in starved
        if n.idle_share > 0
    ]
    if idle:
        parts.append(
            t("Downstream, idle for want of work: {neighbours}.", neighbours=listing(idle))
        )
    return words(*parts)
