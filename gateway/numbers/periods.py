"""The periods the numbers are kept for, on the line's calendar and in its time zone.

A shift is each occurrence of a ``[[shifts]]`` entry (a night shift belongs to the local
day it starts on); a day runs from local midnight to the next (23 or 25 hours across a
daylight-saving change); a week is the ISO week (Monday to Monday); a month the calendar
month. Instants are UTC datetimes; labels are local.

A station's planned busy time (ISO 22400 PBT) is its shifts minus their breaks; a station
no shift names works whenever a shift without a ``stations`` list does, and a line without
shifts is always open (gateway/config/calendar.py, as the planner reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.config.calendar import WEEKDAYS, Shift

__all__ = [
    "Period",
    "PeriodKind",
    "Window",
    "closed_between",
    "merge",
    "parse_period",
    "period_containing",
    "planned_windows",
    "previous",
    "shift_windows",
    "started_between",
]

Window = tuple[datetime, datetime]


class PeriodKind(StrEnum):
    INTERVAL = "interval"  # intraday kpi.snapshot only (``kpi_interval_s``), no report
    SHIFT = "shift"
    DAY = "daily"
    WEEK = "weekly"
    MONTH = "monthly"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """[start, end) of one kind; ``key`` names it in files and on the command line:
    ``shift:2026-11-26:early``, ``day:2026-11-26``, ``week:2026-W48``, ``month:2026-11``."""

    end: datetime
    start: datetime
    kind: PeriodKind
    key: str
    shift: str | None = None

    @property
    def label(self) -> str:
        return self.key.split(":", 1)[1].replace(":", " ")

    @property
    def report_id(self) -> str:
        return self.key.replace(":", "-")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _shift_window(shift: Shift, day: date, tz: ZoneInfo) -> Window:
    # Wall-clock arithmetic, as the planner's calendar: across a daylight-saving change an
    # 8-hour night shift is 7 or 9 hours long.
    begin = datetime.combine(day, time(0, 0), tzinfo=tz) + timedelta(minutes=_minutes(shift.start))
    end = begin + timedelta(minutes=shift.length_min)
    return begin.astimezone(UTC), end.astimezone(UTC)


def _break_windows(shift: Shift, day: date, tz: ZoneInfo) -> list[Window]:
    begin = datetime.combine(day, time(0, 0), tzinfo=tz) + timedelta(minutes=_minutes(shift.start))
    out = []
    for b in shift.breaks:
        s = begin + timedelta(minutes=shift._offset(b.start))
        e = begin + timedelta(minutes=shift._offset(b.end))
        out.append((s.astimezone(UTC), e.astimezone(UTC)))
    return out


def _day(kind: PeriodKind, day: date, tz: ZoneInfo) -> Period:
    if kind is PeriodKind.DAY:
        return Period(
            _local_midnight(day + timedelta(days=1), tz),
            _local_midnight(day, tz),
            kind,
            f"day:{day.isoformat()}",
        )
    if kind is PeriodKind.WEEK:
        monday = day - timedelta(days=day.weekday())
        year, week, _ = monday.isocalendar()
        return Period(
            _local_midnight(monday + timedelta(days=7), tz),
            _local_midnight(monday, tz),
            kind,
            f"week:{year}-W{week:02d}",
        )
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return Period(
        _local_midnight(following, tz),
        _local_midnight(first, tz),
        PeriodKind.MONTH,
        f"month:{first.year}-{first.month:02d}",
    )


def _shifts_on(shifts: Sequence[Shift], day: date, tz: ZoneInfo) -> list[Period]:
    weekday = WEEKDAYS[day.weekday()]
    out = []
    for shift in shifts:
        if weekday in shift.days:
            start, end = _shift_window(shift, day, tz)
            out.append(
                Period(
                    end,
                    start,
                    PeriodKind.SHIFT,
                    f"shift:{day.isoformat()}:{shift.name}",
                    shift.name,
                )
            )
    return out


_ORDER = {
    PeriodKind.INTERVAL: 0,
    PeriodKind.SHIFT: 1,
    PeriodKind.DAY: 2,
    PeriodKind.WEEK: 3,
    PeriodKind.MONTH: 4,
}


def _around(
    shifts: Sequence[Shift], tz: ZoneInfo, after: datetime, until: datetime, interval_s: int
) -> list[Period]:
    out: list[Period] = []
    day = after.astimezone(tz).date() - timedelta(days=2)
    last = until.astimezone(tz).date() + timedelta(days=1)
    seen: set[str] = set()
    while day <= last:
        candidates = _shifts_on(shifts, day, tz) + [
            _day(kind, day, tz) for kind in (PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH)
        ]
        if interval_s:
            candidates += _intervals_on(day, tz, interval_s)
        for p in candidates:
            if p.key not in seen:
                seen.add(p.key)
                out.append(p)
        day += timedelta(days=1)
    return out


def _intervals_on(day: date, tz: ZoneInfo, interval_s: int) -> list[Period]:
    """Intraday snapshot periods: every ``interval_s`` from local midnight (a day of 23
    or 25 hours has one period fewer or more)."""
    start, end = _local_midnight(day, tz), _local_midnight(day + timedelta(days=1), tz)
    out = []
    at = start
    while at < end:
        nxt = min(at + timedelta(seconds=interval_s), end)
        local = at.astimezone(tz).strftime("%Y-%m-%dT%H:%M")
        out.append(Period(nxt, at, PeriodKind.INTERVAL, f"interval:{local}"))
        at = nxt
    return out


def closed_between(
    shifts: Sequence[Shift],
    tz: ZoneInfo,
    after: datetime,
    until: datetime,
    interval_s: int = 0,
) -> list[Period]:
    """Every period whose end falls in (after, until], by end, then shorter first (a day's
    shifts before the day, the day before its week and month); intraday snapshot periods
    too when ``interval_s`` is given."""
    out = [p for p in _around(shifts, tz, after, until, interval_s) if after < p.end <= until]
    out.sort(key=lambda p: (p.end, _ORDER[p.kind], p.start))
    return out


def started_between(
    shifts: Sequence[Shift], tz: ZoneInfo, after: datetime, until: datetime
) -> list[Period]:
    """Every shift, day, week and month whose start falls in (after, until]."""
    out = [p for p in _around(shifts, tz, after, until, 0) if after < p.start <= until]
    out.sort(key=lambda p: (p.start, _ORDER[p.kind]))
    return out


def period_containing(
    kind: PeriodKind, at: datetime, shifts: Sequence[Shift], tz: ZoneInfo
) -> Period | None:
    """The period of ``kind`` that ``at`` falls in (for a shift: the shift running then,
    None between shifts)."""
    local = at.astimezone(tz).date()
    if kind is not PeriodKind.SHIFT:
        return _day(kind, local, tz)
    for day in (local - timedelta(days=1), local):
        for p in _shifts_on(shifts, day, tz):
            if p.start <= at < p.end:
                return p
    return None


def previous(period: Period, shifts: Sequence[Shift], tz: ZoneInfo) -> Period | None:
    """The period of the same kind before this one (for a shift: the same shift's last
    occurrence, so early compares with early)."""
    if period.kind is not PeriodKind.SHIFT:
        return _day(period.kind, (period.start - timedelta(seconds=1)).astimezone(tz).date(), tz)
    day = date.fromisoformat(period.key.split(":")[1])
    for back in range(1, 8):
        for p in _shifts_on(shifts, day - timedelta(days=back), tz):
            if p.shift == period.shift:
                return p
    return None


def parse_period(text: str, shifts: Sequence[Shift], tz: ZoneInfo) -> Period:
    """A period from its key (see :class:`Period`); ValueError with the forms otherwise."""
    forms = "day:2026-11-26, week:2026-W48, month:2026-11 or shift:2026-11-26:early"
    kind, _, rest = text.partition(":")
    try:
        if kind == "day":
            return _day(PeriodKind.DAY, date.fromisoformat(rest), tz)
        if kind == "week":
            year, week = rest.split("-W")
            return _day(PeriodKind.WEEK, date.fromisocalendar(int(year), int(week), 1), tz)
        if kind == "month":
            year, month = rest.split("-")
            return _day(PeriodKind.MONTH, date(int(year), int(month), 1), tz)
        if kind == "shift":
            day_text, _, name = rest.partition(":")
            day = date.fromisoformat(day_text)
            for p in _shifts_on(shifts, day, tz):
                if p.shift == name:
                    return p
            raise ValueError(f"no shift {name!r} on {day_text}")
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a period ({exc}); write {forms}") from None
    raise ValueError(f"{text!r} is not a period; write {forms}")


def _subtract(windows: list[Window], holes: list[Window]) -> list[Window]:
    out = []
    for s, e in windows:
        pieces = [(s, e)]
        for hs, he in holes:
            nxt = []
            for ps, pe in pieces:
                if he <= ps or hs >= pe:
                    nxt.append((ps, pe))
                    continue
                if ps < hs:
                    nxt.append((ps, hs))
                if he < pe:
                    nxt.append((he, pe))
            pieces = nxt
        out.extend(pieces)
    return out


def merge(windows: list[Window]) -> list[Window]:
    """Sorted, overlapping or touching windows joined."""
    out: list[Window] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def shift_windows(
    shifts: Sequence[Shift], station: str, tz: ZoneInfo, start: datetime, end: datetime
) -> list[Window]:
    """The station's shifts within [start, end), their breaks included (all of it when no
    shift applies to the station)."""
    return _windows(shifts, station, tz, start, end)[0]


def _windows(
    shifts: Sequence[Shift], station: str, tz: ZoneInfo, start: datetime, end: datetime
) -> tuple[list[Window], list[Window]]:
    mine = [s for s in shifts if s.applies_to(station)]
    if not mine:
        return [(start, end)], []
    windows: list[Window] = []
    breaks: list[Window] = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    while day <= last:
        weekday = WEEKDAYS[day.weekday()]
        for shift in mine:
            if weekday in shift.days:
                windows.append(_shift_window(shift, day, tz))
                breaks.extend(_break_windows(shift, day, tz))
        day += timedelta(days=1)
    clipped = [(max(s, start), min(e, end)) for s, e in merge(windows) if e > start and s < end]
    return clipped, breaks


def planned_windows(
    shifts: Sequence[Shift], station: str, tz: ZoneInfo, start: datetime, end: datetime
) -> list[Window]:
    """The station's planned busy time within [start, end): its shifts minus their breaks
    (the whole of it when no shift applies to the station)."""
    windows, breaks = _windows(shifts, station, tz, start, end)
    return merge(_subtract(windows, breaks))
