"""Overtime in the line's calendar: each station's shifts one by one, and which of them can
be made longer.

The planner sees a station's working time as windows (gateway/config/calendar.py); the
capacity check needs to know which ``[[shifts]]`` entry and which day a window is, to
say "the late shift on emb-1, Thursday, 2 h longer". Overtime here is a shift worked on
past its end, into the time the station is closed anyway: a shift followed straight away
by another one (the early shift ending as the late one begins) cannot be made longer, and
the overtime never runs into the next shift's start. Breaks stay where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from gateway.config.calendar import working_windows
from gateway.config.line import LineConfig
from gateway.planner.problem import Problem, Station

__all__ = ["ShiftSpan", "SpanKey", "shift_spans", "with_overtime"]

# (station, shift name, the local date the shift starts): one shift worked on one day.
SpanKey = tuple[str, str, date]


@dataclass(frozen=True, slots=True)
class ShiftSpan:
    """One shift on one day at one station, in seconds from the check's ``now``; ``room``
    is how long the station is closed after it (how much it could be made longer)."""

    station: str
    shift: str
    day: date
    start: int
    end: int
    room: int

    @property
    def key(self) -> SpanKey:
        return (self.station, self.shift, self.day)


def shift_spans(config: LineConfig, now: datetime, days: int) -> dict[str, list[ShiftSpan]]:
    """Per station, its shifts over the planning calendar (``days`` days from the day
    before ``now``, as the planner expands them), in time order. A station that no shift
    names is always open: it has none, and nothing to make longer."""
    tz = config.line.tzinfo
    out: dict[str, list[ShiftSpan]] = {}
    for sid in config.stations:
        found: list[tuple[int, int, str]] = []
        for shift in config.shifts:
            # One shift at a time: working_windows reads "no shift" as "always open".
            if not shift.applies_to(sid):
                continue
            windows, _breaks = working_windows([shift], sid, tz, now, days)
            found.extend((start, end, shift.name) for start, end in windows)
        found.sort()
        spans: list[ShiftSpan] = []
        for start, end, name in found:
            after = [s for s, _, _ in found if s >= end]
            covered = any(s < end < e for s, e, _ in found)  # another shift goes on past it
            # The calendar's last shift: what follows it is not known, so it stays as it is.
            room = 0 if covered or not after else min(after) - end
            day = (now + timedelta(seconds=start)).astimezone(tz).date()
            spans.append(ShiftSpan(sid, name, day, start, end, room))
        out[sid] = spans
    return out


def with_overtime(
    problem: Problem,
    spans: Mapping[str, Sequence[ShiftSpan]],
    extra: Mapping[SpanKey, int],
) -> Problem:
    """``problem`` with each shift of ``extra`` worked on that many seconds past its end."""
    if not extra:
        return problem
    by_key = {s.key: s for found in spans.values() for s in found}
    longer: dict[str, dict[tuple[int, int], int]] = {}
    for key, seconds in extra.items():
        span = by_key[key]
        if seconds > 0:
            longer.setdefault(span.station, {})[(span.start, span.end)] = span.end + seconds
    stations: list[Station] = []
    for station in problem.stations:
        ends = longer.get(station.id)
        if ends is None:
            stations.append(station)
            continue
        shifts = tuple(sorted((a, ends.get((a, b), b)) for a, b in station.shifts))
        stations.append(replace(station, shifts=shifts))
    return replace(problem, stations=tuple(stations))
