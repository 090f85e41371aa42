"""The board's bottleneck tile: which station constrains output in the shift so far (the
local day so far between shifts), by gateway/numbers/analysis's method.

The elements of hours of history are too heavy to work out at every board snapshot (four
a second while the line moves), so the tile is worked out at most once every
:data:`REFRESH_S` (and at once when the period changes), and cheaply: elements add up over
adjoining spans, so the period so far is its whole hours, each worked out once and kept,
plus the hour under way, worked out again each time; only the stations' elements are
worked out (gateway/numbers/elements.py ``compute_parts`` is left once it has done them);
and each step of the work is a part of ``compute_parts``, with a yield between them, so
that the board's snapshot, and the operators' actions between its steps, never wait
behind the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from gateway.clock import iso
from gateway.numbers.analysis import LineShape, bottleneck
from gateway.numbers.elements import compute_parts
from gateway.numbers.model import Elements, StationElements, Words
from gateway.numbers.periods import Period, PeriodKind, period_containing
from gateway.orderbook.context import LineContext

__all__ = ["REFRESH_S", "BoardBottleneck", "BottleneckTile"]

REFRESH_S = 60.0
_HOUR = timedelta(hours=1)

Stations = dict[str, StationElements]


class BottleneckTile(BaseModel):
    """What the board shows of the bottleneck of ``period`` (``shift`` or ``day``) so far."""

    model_config = ConfigDict(frozen=True)

    period: PeriodKind
    since: datetime
    computed_at: datetime
    found: bool  # False: every station under half busy (the line is short of work)
    station: str  # the busiest station of the group
    stations: list[str]  # the group sharing its queue
    group: str
    utilisation: float
    queue_wait_s: float | None
    words: Words


@dataclass(frozen=True, slots=True)
class _Kept:
    key: str
    at: float  # monotonic
    tile: BottleneckTile | None


class BoardBottleneck:
    """The bottleneck tile, worked out at most once every :data:`REFRESH_S`."""

    def __init__(self, core: LineContext, monotonic: Callable[[], float]) -> None:
        self.core = core
        self._monotonic = monotonic
        self._kept: _Kept | None = None
        self._hours: dict[tuple[str, str], Stations] = {}  # the period's whole hours
        self.computations = 0

    def parts(self, now: datetime) -> Generator[None, None, BottleneckTile | None]:
        """The tile as of ``now``, yielding between the parts of its work (nothing to do,
        and no yield, while the one kept is fresh)."""
        period = self._period(now)
        if period is None or now <= period.start:
            return None
        kept = self._kept
        if kept is not None and kept.key == period.key and self._monotonic() - kept.at < REFRESH_S:
            return kept.tile
        if kept is None or kept.key != period.key:
            self._hours = {}
        stations: Stations = {}
        at = period.start
        while at < now:
            nxt = min(at + _HOUR, now)
            key = (iso(at), iso(nxt))
            part = self._hours.get(key)
            if part is None:
                part = yield from self._stations(at, nxt)
                if nxt < now:  # a whole hour, past: it will not change
                    self._hours[key] = part
            for sid, piece in part.items():
                mine = stations.get(sid)
                stations[sid] = piece if mine is None else mine.add(piece)
            at = nxt
        el = Elements(start=iso(period.start), end=iso(now), stations=stations)
        found = bottleneck(el, LineShape.of(self.core))
        tile = (
            None
            if found is None
            else BottleneckTile(
                period=period.kind,
                since=period.start,
                computed_at=now,
                found=found.found,
                station=found.station,
                stations=found.stations,
                group=found.group,
                utilisation=found.utilisation,
                queue_wait_s=found.queue_wait_s,
                words=found.words,
            )
        )
        self._kept = _Kept(period.key, self._monotonic(), tile)
        self.computations += 1
        return tile

    def _period(self, now: datetime) -> Period | None:
        config = self.core.config
        tz = config.line.tzinfo
        found = period_containing(PeriodKind.SHIFT, now, config.shifts, tz)
        return found or period_containing(PeriodKind.DAY, now, config.shifts, tz)

    def _stations(self, start: datetime, end: datetime) -> Generator[None, None, Stations]:
        """The stations' elements of [start, end), a yield after each part of the work.
        ``compute_parts`` adds each station's elements once they are whole; with every
        station in, what it does next (orders, materials, cost) is not needed here."""
        count = len(self.core.config.stations)
        out: Elements | None = None
        for out in compute_parts(self.core, start, end):
            if len(out.stations) >= count:
                break
            yield
        assert out is not None
        return dict(out.stations)
