"""Gaps that persist: a seq range missing below a line's highest seq for longer than
``report_after`` is logged once, at WARNING.

A gap is usually an event in flight (MQTT QoS 1 does not keep order across a reconnect);
one that stays open means an event the gateway will not send again without help. A gap
that narrows (part of it arrives) is the same gap: it keeps its age and is not logged
again. Ages live in this process: a restarted office starts them again (at worst a gap is
reported ``report_after`` late, never missed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from office.store import Store, StoreUnavailable

__all__ = ["GapWatch", "OpenGap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenGap:
    gateway_id: str
    first: int
    last: int
    since: datetime  # when this office first saw it open
    reported: bool


class GapWatch:
    """Call :meth:`check` (``run`` does, every ``every_s``); it returns the gaps it logged."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        report_after: timedelta = timedelta(minutes=5),
        every_s: float = 30.0,
    ) -> None:
        self._store = store
        self._now = now
        self._after = report_after
        self._every_s = every_s
        self._open: dict[str, list[OpenGap]] = {}

    def open_gaps(self, gateway_id: str) -> list[OpenGap]:
        return list(self._open.get(gateway_id, []))

    async def check(self) -> list[OpenGap]:
        now = self._now()
        logged: list[OpenGap] = []
        lines = await self._store.lines_report()
        for line in lines:
            before = self._open.get(line.gateway_id, [])
            current: list[OpenGap] = []
            for first, last in line.gaps:
                overlapping = [g for g in before if g.first <= last and first <= g.last]
                since = min((g.since for g in overlapping), default=now)
                reported = any(g.reported for g in overlapping)
                gap = OpenGap(line.gateway_id, first, last, since, reported)
                if not reported and now - since >= self._after:
                    log.warning(
                        "%s: seq %d..%d missing for %s (held through %d, highest seq %d)",
                        line.gateway_id, first, last, now - since,
                        line.held_through, line.highest_seq,
                    )  # fmt: skip
                    gap = OpenGap(line.gateway_id, first, last, since, True)
                    logged.append(gap)
                current.append(gap)
            self._open[line.gateway_id] = current
        return logged

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except StoreUnavailable as exc:
                log.warning("gap check skipped: %s", exc)
            await asyncio.sleep(self._every_s)
