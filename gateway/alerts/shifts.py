"""Which of the line's ``[[shifts]]`` is working at an instant (gateway/config/calendar.py):
who is on duty to be told, and when a shift hands over to the next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config.calendar import WEEKDAYS, Shift

__all__ = ["ShiftNow", "shift_at"]


@dataclass(frozen=True, slots=True)
class ShiftNow:
    name: str
    started: datetime  # local

    @property
    def key(self) -> str:
        """This shift on this day: the same shift tomorrow is another handover."""
        return f"{self.name}@{self.started.date().isoformat()}"


def shift_at(shifts: Sequence[Shift], tz: ZoneInfo, now: datetime) -> ShiftNow | None:
    """The shift working at ``now`` (breaks are inside it), None between shifts or on a
    line without any. Of overlapping shifts, the one that began last: it takes over."""
    local = now.astimezone(tz)
    found: ShiftNow | None = None
    # A shift that crosses midnight began the day before.
    for day in (local.date() - timedelta(days=1), local.date()):
        for shift in shifts:
            if WEEKDAYS[day.weekday()] not in shift.days:
                continue
            hours, minutes = (int(part) for part in shift.start.split(":"))
            begin = datetime.combine(day, time(hours, minutes), tzinfo=tz)
            if begin <= local < begin + timedelta(minutes=shift.length_min) and (
                found is None or begin > found.started
            ):
                found = ShiftNow(shift.name, begin)
    return found
