"""The line's working time: ``[[shifts]]`` of line.toml, and their expansion into windows.

A shift repeats on its weekdays, in the line's local time (so a daylight-saving change
moves it with the clock on the wall); its breaks are pauses inside it. A shift may cross
midnight (``end`` at or before ``start``). A station without any shift naming it works
whenever a shift without a ``stations`` list does; a line without shifts is always open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["WEEKDAYS", "Break", "Shift", "working_windows"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class Break(BaseModel):
    """A pause inside a shift: ``{ start = "12:00", end = "12:30" }``."""

    model_config = _MODEL_CONFIG

    start: ClockTime
    end: ClockTime


class Shift(BaseModel):
    """One ``[[shifts]]`` table."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=32)
    start: ClockTime
    end: ClockTime  # at or before start: the shift ends the next day
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    breaks: list[Break] = []
    # Left out: every station of the line.
    stations: list[str] | None = Field(default=None, min_length=1)

    @property
    def length_min(self) -> int:
        length = _minutes(self.end) - _minutes(self.start)
        return length if length > 0 else length + 24 * 60

    def _offset(self, clock: str) -> int:
        """Minutes from the shift's start to ``clock`` (a break may be after midnight)."""
        offset = _minutes(clock) - _minutes(self.start)
        return offset if offset >= 0 else offset + 24 * 60

    @model_validator(mode="after")
    def _breaks_inside(self) -> Self:
        if len(set(self.days)) != len(self.days):
            raise ValueError("a weekday is listed twice")
        for b in self.breaks:
            start, end = self._offset(b.start), self._offset(b.end)
            if not 0 < start < end < self.length_min:
                raise ValueError(
                    f"break {b.start}-{b.end} is not inside the shift {self.start}-{self.end}"
                )
        return self

    def applies_to(self, station: str) -> bool:
        return self.stations is None or station in self.stations


Window = tuple[int, int]


def working_windows(
    shifts: Sequence[Shift], station: str, tz: ZoneInfo, now: datetime, days: int
) -> tuple[tuple[Window, ...], tuple[Window, ...]]:
    """The station's shifts and breaks from the day before ``now`` for ``days`` days, as
    (start, end) seconds from ``now``; ((), ()) when no shift applies (always open)."""
    mine = [s for s in shifts if s.applies_to(station)]
    if not mine:
        return (), ()
    local_now = now.astimezone(tz)
    first_day = local_now.date() - timedelta(days=1)  # a night shift that began yesterday
    shift_windows: list[Window] = []
    break_windows: list[Window] = []

    def seconds(day_start: datetime, minutes: int) -> int:
        return int((day_start + timedelta(minutes=minutes) - now).total_seconds())

    for n in range(days + 1):
        day = first_day + timedelta(days=n)
        weekday = WEEKDAYS[day.weekday()]
        for shift in mine:
            if weekday not in shift.days:
                continue
            begin = datetime.combine(day, _clock(shift.start), tzinfo=tz)
            shift_windows.append((seconds(begin, 0), seconds(begin, shift.length_min)))
            for b in shift.breaks:
                break_windows.append(
                    (seconds(begin, shift._offset(b.start)), seconds(begin, shift._offset(b.end)))
                )
    return tuple(sorted(shift_windows)), tuple(sorted(break_windows))
