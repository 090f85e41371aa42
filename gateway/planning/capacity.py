""" "Can we take this promotion?": the line's capacity for a forecast of orders (issue 14).

Given the line as it stands (its open orders and tasks in the store, its stock, its
calendar of shifts, the stations down) and a forecast of orders that are not on the line,
the check plans both together and answers:

- **when the line finishes** the last order (local time);
- **which orders miss their cut-off**: every order, of the backlog or the forecast, the
  plan packs after its ship-by (its carrier's truck), by how much and why; and per
  carrier and ship-by, how many orders make it (the board's cut-offs,
  gateway/orderbook/flow.py);
- **the bottleneck**: the station with the highest load against its available time:
  its planned work (run and setup time, what is left of running tasks) divided by its
  working time (shifts less breaks and closings) from now until the plan packs its last
  order. The station that would have the least time to spare while the line works
  through it all; ties go to the one with more work;
- **material shortfalls**: what the forecast's orders need by the catalog's BOMs against
  what is free today (stock less reservations, less what the backlog's orders waiting for
  material need); the plan itself assumes the material comes;
- **overtime**: extra time per shift, station and day that brings every order in on time
  (e.g. "the late shift on emb-1 on Thursday, 2 h longer, 00:00-02:00"), found by a greedy
  search (gateway/planning/capacity_overtime.py) and checked by planning again with it;
  the orders overtime cannot save are listed as still late.

The forecast's orders are checked by intake's own rules (a refused one is listed with its
codes and reasons, never skipped in silence) and never written to the store. All the work
(reading the forecast, the database read-only in one snapshot, the solver) runs in a
planning worker process (gateway/planning/worker.py, at the lowest CPU priority; in the
gateway also paced under a CPU quota): the gateway's process never imports the solver,
and its event loop only waits. One check at a time per worker. The worker's side is
gateway/planning/capacity_solve.py; the words, gateway/planning/capacity_text.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway.config.line import LineConfig
from gateway.planning.capacity_answer import (
    CapacityAnswer,
    Cutoff,
    LateRow,
    NoAnswer,
    Outcome,
    Overtime,
    Refused,
    SearchEnd,
    Shortfall,
    StationLoad,
)
from gateway.planning.line_plan import LinePlan
from gateway.planning.worker import PlanWorker, SolverFailed, WorkerLimits

__all__ = [
    "CapacityAnswer",
    "CapacityJob",
    "CapacitySettings",
    "Cutoff",
    "LateRow",
    "NoAnswer",
    "Outcome",
    "Overtime",
    "Refused",
    "SearchEnd",
    "Shortfall",
    "SolverFailed",
    "StationLoad",
    "check_capacity",
    "heads_of",
]

# The worker's start, reading the line and the forecast, explaining the plans: on top of
# the solver's and the search's own limits.
_MARGIN_S = 30.0


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    """How hard the check works. The defaults answer 5,000 forecast orders on the
    reference line in seconds (BENCHMARKS.md)."""

    solve_s: float = 2.0  # CP-SAT's time for each plan (without, then with, the overtime)
    patience_s: float = 0.5  # ... which ends sooner once it found nothing better for this
    step_min: int = 30  # overtime comes in steps of this
    max_overtime_h: float = 4.0  # at most this much more on one shift, station and day
    max_replans: int = 40  # plans the overtime search may make
    search_s: float = 30.0  # the search's own time cap
    workers: int = 2  # CP-SAT's threads (at most the cores less one: gateway/planning/cpu.py)


@dataclass(frozen=True, slots=True)
class CapacityJob:
    """What the worker needs: the line's config and database, the instant, the forecast
    file's bytes (read and checked in the worker, not in the gateway's loop)."""

    config: LineConfig
    db_path: Path
    now: datetime
    forecast: bytes
    settings: CapacitySettings = field(default_factory=CapacitySettings)
    # The running plan's station sequences: their heads stay first, as in a replan.
    previous: Mapping[str, tuple[int, ...]] | None = None

    def limits(self) -> WorkerLimits:
        s = self.settings
        return WorkerLimits(
            time_limit_s=2 * s.solve_s + s.search_s + _MARGIN_S,
            memory_mib=self.config.planner.memory_mib,
            workers=s.workers,
        )


def heads_of(plan: LinePlan | None) -> dict[str, tuple[int, ...]] | None:
    """A plan's station sequences, for :attr:`CapacityJob.previous`."""
    if plan is None:
        return None
    return {sid: tuple(sp.tasks) for sid, sp in plan.stations.items()}


async def check_capacity(
    worker: PlanWorker, job: CapacityJob, budget: Callable[[], float] | None = None
) -> CapacityAnswer | NoAnswer:
    """Run ``job`` in ``worker``'s process; its answer, or why there is none. ``budget``
    paces the worker under a CPU quota (gateway/planning/cpu.py). Raises SolverFailed when
    the worker fails (killed, out of memory or time) or one is already running."""
    answer = await worker.run(job, job.limits(), None, budget)
    if not isinstance(answer, CapacityAnswer | NoAnswer):
        raise SolverFailed(f"the worker answered a {type(answer).__name__}, not a capacity")
    return answer
