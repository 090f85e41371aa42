"""Pick requests from the plan (``material.requested``, contract 1.1): the warehouse is
asked for what each station will lack within the pick horizon, by when, of which lot, for
which orders (gateway/planning/picks_need.py says how; ``[picking]`` in line.toml,
gateway/config/picking.py, how far ahead and with what tolerance).

**When.** Each plan the planner adopts (its first plan and the improved one) is looked at,
and every ``recheck_s`` besides, because the horizon moves on with the clock while the
plan stands. A plan no longer followed (older than ``[planner] stale_s``) is not: the open
requests stay as they are until there is one again.

**How.** The planned work within the horizon is read a slice of tasks at a time, the loop
free between two (a surge's horizon holds a thousand tasks, and operators' scans come
first); then one transaction decides every (station, material, lot) against its open
request and makes, revises or withdraws requests, each with its event (the outbox), so a
request the warehouse was told of is one the store holds. A new plan that comes while one
is being looked at is looked at right after it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from gateway.clock import iso
from gateway.config.picking import PickingSection
from gateway.orderbook import picking
from gateway.orderbook.context import LineContext
from gateway.orderbook.picking import MATERIAL_REQUESTED
from gateway.planning.line_plan import LinePlan
from gateway.planning.picks_need import (
    Change,
    Uses,
    decide,
    gather,
    in_horizon,
    keys_of,
    settle,
    wanted,
)
from gateway.planning.planner import LinePlanner
from gateway.planning.replanning import Replanner

__all__ = ["PickPlanner", "PickStats", "describe", "print_requests"]

logger = logging.getLogger(__name__)

# Closed requests older than [retention] raw_days are forgotten, looked for this often.
_PRUNE_S = 3600.0


@dataclass
class PickStats:
    """What the pick requests did: for the tests, the benchmark and the logs."""

    rechecks: int = 0
    requested: int = 0
    revised: int = 0
    withdrawn: int = 0
    tasks: int = 0  # planned tasks within the horizon at the last look
    last_s: float | None = None  # the last look's duration (wall time, slices included)
    last_error: str | None = None
    changes: list[Change] = field(default_factory=list)  # of the last look

    @property
    def events(self) -> int:
        return self.requested + self.revised + self.withdrawn


class PickPlanner:
    """Keeps the warehouse's pick requests in step with the plan; see the module docstring."""

    def __init__(self, core: LineContext, settings: PickingSection, planner: LinePlanner) -> None:
        self.core = core
        self.settings = settings
        self.planner = planner
        self.stats = PickStats()
        self.looked_at: LinePlan | None = None  # the plan of the last look
        self._wanted = asyncio.Event()
        self._running = False
        self._pruned_at = -math.inf
        # The replanner's counts (replans, first plans) when the last plan was adopted.
        self._adopted_at = (0, 0)
        self._alone: asyncio.Task[None] | None = None  # a look without run() (see there)

    def follow(self, replanner: Replanner[LinePlan]) -> None:
        """Look at each plan ``replanner`` adopts."""
        replanner.on_adopt(self.plan_adopted)

    def plan_adopted(self, plan: LinePlan) -> None:
        """A new plan is in force: looked at by :meth:`run` (soon, in slices); in a loop
        where it does not run (the planner run alone), by a task of its own, in slices too;
        outside any loop (a command, a test), at once."""
        stats = self.planner.replanner.stats
        self._adopted_at = (stats.replans, stats.first_plans)
        if self._running:
            self._wanted.set()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.recheck_now()
            return
        if self._alone is None or self._alone.done():
            self._alone = loop.create_task(self._look_alone(), name="picks")
        else:
            self._wanted.set()  # the task in flight looks once more

    async def _look_alone(self) -> None:
        while True:
            self._wanted.clear()
            try:
                await self.recheck()
            except Exception:  # the next plan looks again
                logger.exception("pick requests: looking at the plan failed")
            if not self._wanted.is_set():
                return

    def _improving(self) -> bool:
        """The plan in force is a solver's first plan, and the replan that offered it is
        still improving it (the replanner counts an offer right after adopting it, and a
        replan's own plan right after adopting that)."""
        stats = self.planner.replanner.stats
        replans, first_plans = self._adopted_at
        return stats.first_plans > first_plans and stats.replans == replans

    def plan(self) -> LinePlan | None:
        """The plan the stations follow, even one with nothing in it (every open request
        is then withdrawn); None when there is none, or it went stale."""
        live = self.planner.replanner.current
        if live is None or time.monotonic() - live.received > self.planner.settings.stale_s:
            return None
        return live

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Look again at each new plan and every ``recheck_s``, until cancelled."""
        self._running = True
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.recheck_s):
                        await self._wanted.wait()
                except TimeoutError:
                    pass
                self._wanted.clear()
                if self._improving():
                    # Its improved plan comes within the solver's time limit, often with
                    # other stations for some work: the warehouse is told once, of that.
                    await self._improved()
                try:
                    await self.recheck()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the line goes on; the next look tries again
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    logger.exception("pick requests: looking at the plan failed")
        finally:
            self._running = False

    async def _improved(self) -> None:
        wait_s = self.planner.settings.time_limit_s + 5.0
        try:
            async with asyncio.timeout(wait_s):
                while self._improving():
                    await self._wanted.wait()
                    self._wanted.clear()
        except TimeoutError:
            pass  # the replan hangs: the first plan is what the line works by meanwhile

    async def recheck(self) -> int | None:
        """Look at the plan in force, in slices; how many events went out (None: no plan)."""
        steps = self.steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                emitted: int | None = done.value
                return emitted
            await asyncio.sleep(0)

    def recheck_now(self) -> int | None:
        """:meth:`recheck` at once, without letting the loop run in between."""
        steps = self.steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                emitted: int | None = done.value
                return emitted

    def steps(self) -> Generator[None, None, int | None]:
        """One look at the plan in force, a slice of its work per step (the caller lets the
        loop run between two); returns how many events went out, None without a plan."""
        plan = self.plan()
        if plan is None:
            return None
        started = time.perf_counter()
        now = self.core.clock.now()
        planned = in_horizon(plan, now + timedelta(minutes=self.settings.horizon_min))
        gathered = yield from gather(self.core, planned)
        emitted = self._apply(planned, gathered)
        self.looked_at = plan
        self.stats.rechecks += 1
        self.stats.tasks = len(planned)
        self.stats.last_s = time.perf_counter() - started
        self.stats.last_error = None
        self._prune(now)
        return emitted

    def _apply(self, planned: Mapping[int, tuple[str, datetime]], gathered: Uses) -> int:
        """Decide every (station, material, lot), and act, in one transaction."""
        core = self.core
        lead = timedelta(minutes=self.settings.lead_min)
        changes: list[Change] = []
        with core.store.transaction():
            needs = settle(core, planned, gathered, core.now())
            rows = {r.key: r for r in picking.open_requests(core)}
            here = picking.stock(core)
            held = picking.held(core)
            for key in keys_of(needs, rows.values()):
                need = needs.get(key)
                row = rows.get(key)
                want = wanted(need, here.get(key, 0.0) - held.get(key, 0.0), lead)
                change = decide(row, want, 0.0 if need is None else need.qty, self.settings)
                if change is Change.REQUEST and want is not None:
                    picking.request(core, key, want.qty, want.need_by, want.orders)
                elif change is Change.REVISE and row is not None and want is not None:
                    picking.revise(core, row, want.qty, want.need_by, want.orders)
                elif change is Change.WITHDRAW and row is not None:
                    picking.withdraw(core, row)
                else:
                    continue
                changes.append(change)
        self.stats.changes = changes
        self.stats.requested += changes.count(Change.REQUEST)
        self.stats.revised += changes.count(Change.REVISE)
        self.stats.withdrawn += changes.count(Change.WITHDRAW)
        return len(changes)

    def _prune(self, now: datetime) -> None:
        if time.monotonic() - self._pruned_at < _PRUNE_S:
            return
        self._pruned_at = time.monotonic()
        before = now - timedelta(days=self.core.config.retention.raw_days)
        with self.core.store.transaction():
            gone = picking.prune(self.core, iso(before))
        if gone:
            logger.info("pick requests: %d closed before %s forgotten", gone, iso(before))


# -- the demo -------------------------------------------------------------------------------


def describe(data: Mapping[str, Any], tz: tzinfo) -> str:
    """A ``material.requested`` event's data as one line for a person at a terminal, its
    need_by in ``tz`` (the line's time)."""
    qty = float(data["qty"])
    lot = f" lot {data['lot']}" if data.get("lot") else ""
    head = f"pick {data['request_id']} r{data['revision']}"
    if qty == 0:
        return f"{head}: withdrawn ({data['material']}{lot} at {data['deliver_to']})"
    by = datetime.fromisoformat(str(data["need_by"])).astimezone(tz).strftime("%H:%M")
    what = f"{qty:g} {data['uom']} {data['material']}{lot}"
    orders = len(data["orders"])
    return f"{head}: {what} to {data['deliver_to']} by {by}, for {orders} order(s)"


def print_requests(core: LineContext, write: Callable[[str], None]) -> None:
    """Have each ``material.requested`` the gateway commits written as a line (the demo),
    after its commit."""
    tz = core.config.line.tzinfo

    def said(data: dict[str, Any]) -> None:
        write(describe(data, tz))

    core.subscribe(MATERIAL_REQUESTED, said)
