"""When the line is planned again: on a clock, and on events, coalesced.

Events that change what a good plan is (orders arrived, a station down or back, a shortage
cleared, a task far past its standard time, tasks well ahead of it) call
:meth:`Replanner.request`; so does an apscheduler interval job. A burst of requests makes
one replan: requests wait ``settle_s`` for the rest of the burst, and requests that come
while a plan is being made make exactly one more afterwards. Each replan starts from the
previous plan (the solver's hint). A failed solve keeps the last plan, or the dispatch rule
when there is none; the line never waits for the planner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

__all__ = ["ReplanStats", "Replanner"]

logger = logging.getLogger(__name__)

P = TypeVar("P")  # a plan


@dataclass
class ReplanStats:
    """What the replanner did: for the API and the tests."""

    requests: Counter[str] = field(default_factory=Counter)
    replans: int = 0
    first_plans: int = 0  # plans offered while a replan was still improving its plan
    failures: int = 0
    last_reasons: tuple[str, ...] = ()
    last_error: str | None = None
    last_s: float | None = None


class Replanner(Generic[P]):
    """Calls ``plan(previous, reasons)`` once per coalesced burst of requests.

    ``plan`` builds the problem from the line's state, solves it (in the worker process)
    and returns the new plan; it raises when no plan came of it.
    """

    def __init__(
        self,
        plan: Callable[[P | None, tuple[str, ...]], Awaitable[P]],
        *,
        interval_s: float = 300.0,
        settle_s: float = 0.5,
    ) -> None:
        self._plan = plan
        self._interval_s = interval_s
        self._settle_s = settle_s
        self._wanted = asyncio.Event()
        self._reasons: list[str] = []
        self.current: P | None = None
        self.stats = ReplanStats()
        self._adopted: list[Callable[[P], None]] = []

    def on_adopt(self, callback: Callable[[P], None]) -> None:
        """Call ``callback(plan)`` each time a plan becomes the current one (a first plan
        offered, a replan's result), right after; a callback's failure is logged, never
        raised into the replanning."""
        self._adopted.append(callback)

    def _adopt(self, plan: P) -> None:
        self.current = plan
        for callback in self._adopted:
            try:
                callback(plan)
            except Exception:  # the line works by the plan whatever a listener makes of it
                logger.exception("a listener of new plans failed")

    def request(self, reason: str) -> None:
        """Ask for a replan (cheap, never blocks: call it from any event handler)."""
        self.stats.requests[reason] += 1
        self._reasons.append(reason)
        self._wanted.set()

    def offer(self, plan: P) -> None:
        """A plan to work by while the replan in progress is still improving it (the
        solver's first plan); the replan's own result replaces it."""
        self._adopt(plan)
        self.stats.first_plans += 1

    async def run(self) -> None:
        """Replan on requests and on the interval until cancelled."""
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(
            self.request,
            IntervalTrigger(seconds=self._interval_s),
            args=("interval",),
            id="replan",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(self._interval_s) or 1,
        )
        scheduler.start()
        try:
            while True:
                await self._wanted.wait()
                # The rest of the burst: one replan for all of it.
                await asyncio.sleep(self._settle_s)
                self._wanted.clear()
                reasons, self._reasons = tuple(dict.fromkeys(self._reasons)), []
                await self._replan(reasons)
        finally:
            scheduler.shutdown(wait=False)

    async def _replan(self, reasons: tuple[str, ...]) -> None:
        started = time.monotonic()
        self.stats.last_reasons = reasons
        try:
            plan = await self._plan(self.current, reasons)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever failed, the line goes on
            # The line goes on with the last plan (or the dispatch rule); the next
            # request tries again.
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("replan (%s) failed: %s", ", ".join(reasons), self.stats.last_error)
            return
        self._adopt(plan)
        self.stats.replans += 1
        self.stats.last_error = None
        self.stats.last_s = round(time.monotonic() - started, 3)
        logger.info("replanned (%s) in %.1f s", ", ".join(reasons), self.stats.last_s)
