"""The line's time in the tests: injected, never today's date.

Shifts, cut-offs, KPI periods, lot expiry and ship-bys all read the gateway's clock, so a
gateway on the real clock makes a test pass or fail by the day and hour it runs. Every
gateway a test builds in its own process takes one of these clocks instead, and one it runs
as a process (``linegate run``) is given ``--clock-offset-s``. `make test-clock` runs the
suite under faked system clocks to keep it so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.clock import ScaledClock

# A Thursday morning on the reference line (shifts 08:00-24:00, Asia/Shanghai): in a shift,
# before every lot of the reference stock expires (2027-09-30 the first) and before the
# 2030-01-01 ship-bys of the tests' orders.
LINE_MORNING = datetime.fromisoformat("2026-11-26T10:00:00+08:00")


class ManualClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def line_clock(start: datetime = LINE_MORNING, speed: float = 1.0) -> ScaledClock:
    """A clock that runs (``speed`` times real time) from ``start`` instead of from now: for
    a gateway that runs, whose timeouts and durations need time to pass."""
    return ScaledClock(speed, start)


def line_clock_offset_s(start: datetime = LINE_MORNING) -> float:
    """For a gateway run as a process (``linegate run --clock-offset-s``): the offset that
    puts its clock at ``start`` now. Taken once per test and given to every start of the
    process, so a restart does not turn its clock back."""
    return (start - datetime.now(UTC)).total_seconds()
