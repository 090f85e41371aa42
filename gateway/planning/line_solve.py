"""Making the line's plan, in the worker process (or in ``linegate plan`` itself).

The worker opens the line's database read-only, builds the problem from one consistent
snapshot (gateway/planning/line_problem.py), solves it, explains the late orders in the
floor's clock
times, and answers a compact :class:`~gateway.planning.line_plan.LinePlan`. The gateway's process
never holds the problem or the solver: its memory does not grow with a surge, and its
event loop does not stop for the problem's build (~0.1 s for 2,000 orders).

Imports the solver: never import this from the gateway's process (import-linter checks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from gateway.orderbook.context import LineContext
from gateway.planner.explain import explain_plan
from gateway.planner.model import solve
from gateway.planner.problem import Plan
from gateway.planning.line_plan import LineJob, LinePlan, clock_text, compact, hint_of
from gateway.planning.line_problem import down_stations, line_problem
from gateway.store.db import Store
from gateway.store.outbox import Outbox

__all__ = ["solve_line"]


class _At:
    """The planning instant as the core's clock (lot expiry, 'today')."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


def solve_line(
    job: LineJob,
    *,
    time_limit_s: float,
    workers: int,
    on_first: Callable[[LinePlan], None] | None = None,
    patience_s: float | None = None,
) -> LinePlan:
    """The plan of the line in ``job``'s database at ``job.now``."""
    started = time.monotonic()
    config = job.config
    store = Store(job.db_path)
    store.open_readonly()
    try:
        core = LineContext(config, store, Outbox(store, config.gateway_id), _At(job.now))
        # One read transaction: every table as of one instant, whatever the gateway
        # commits meanwhile.
        store.conn.execute("BEGIN")
        core.reload_ledger()
        down = down_stations(core)
        previous = job.previous
        lp = line_problem(
            core,
            job.now,
            down=down,
            previous={s: tuple(p.tasks) for s, p in previous.stations.items()}
            if previous is not None
            else None,
        )
        store.conn.execute("COMMIT")
    finally:
        store.close()
    tz = config.line.tzinfo

    def finish(plan: Plan) -> LinePlan:
        plan = explain_plan(lp.problem, plan, at=lambda t: clock_text(tz, job.now, t))
        return compact(
            plan,
            job.now,
            waiting=lp.waiting,
            down=lp.down,
            reasons=job.reasons,
            solve_s=time.monotonic() - started,
        )

    if not lp.problem.tasks:
        return finish(Plan({}, {}, method="nothing to plan"))
    hint = hint_of(previous, job.now) if previous is not None else None
    result = solve(
        lp.problem,
        time_limit_s=time_limit_s,
        workers=workers,
        hint=hint,
        on_first=(lambda plan: on_first(finish(plan))) if on_first is not None else None,
        patience_s=patience_s,
    )
    return finish(result.plan)
