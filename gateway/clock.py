"""Wall time for the gateway, behind a seam so tests and the demo can run fast."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Aware wall time (UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """Wall time that runs ``speed`` times faster than real time from a start instant.

    The demo compresses a working day: with ``speed=60`` a 45 s print takes 0.75 s of real
    time and the clock the gateway stamps events with advances 45 s.
    """

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = speed
        self._start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)


def iso(ts: datetime) -> str:
    """The one text form of an instant in the store and on the wire: UTC, milliseconds.

    A single fixed form keeps text comparison in SQL equal to time comparison.
    """
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")
