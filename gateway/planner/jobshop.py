"""Job-shop makespan minimisation with CP-SAT, a dispatch-rule schedule, and a checker.

Model: one fixed-size interval per operation, ``add_no_overlap`` per machine, routing
precedences, ``makespan >= end of each job's last operation``, minimise makespan. Start
domains are tightened by each operation's head (work before it in its job) and tail (work
after it), and the makespan by the trivial lower bound, which shrinks the search space at
no cost. A Giffler–Thompson active schedule (most-work-remaining priority) is always built
first: it is the solver's hint when none is given, it caps the horizon, and it is the
answer when the solver finds nothing in time (status ``HEURISTIC``).

Imports ortools: only the planner's worker process may import this module.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from gateway.planner.instances import JobShop

Starts = list[list[int]]


@dataclass(frozen=True)
class JobShopResult:
    """The best schedule found. ``starts[j][k]`` is the start of operation k of job j."""

    status: str  # OPTIMAL, FEASIBLE, or HEURISTIC (solver found nothing; dispatch schedule)
    makespan: int
    bound: int  # proven lower bound on the optimal makespan
    starts: Starts
    wall_s: float
    time_to_best_s: float  # when the returned makespan was first reached (from the call)
    improvements: list[tuple[float, int]] = field(default_factory=list)  # (seconds, makespan)

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"


def check_schedule(instance: JobShop, starts: Sequence[Sequence[int]]) -> int:
    """Return the makespan of ``starts``; raise ValueError if it is not a feasible schedule."""
    if len(starts) != instance.n_jobs:
        raise ValueError(f"{len(starts)} rows of starts for {instance.n_jobs} jobs")
    by_machine: dict[int, list[tuple[int, int, str]]] = {}
    makespan = 0
    for j, (job, row) in enumerate(zip(instance.jobs, starts, strict=True)):
        if len(row) != len(job):
            raise ValueError(f"job {j}: {len(row)} starts for {len(job)} operations")
        ready = 0
        for k, (op, start) in enumerate(zip(job, row, strict=True)):
            if start < ready:
                raise ValueError(f"job {j} op {k} starts at {start}, before {ready}")
            ready = start + op.duration
            by_machine.setdefault(op.machine, []).append((start, ready, f"job {j} op {k}"))
        makespan = max(makespan, ready)
    for machine, spans in by_machine.items():
        # Zero-length operations occupy no time, so they cannot clash with anything.
        busy = sorted(s for s in spans if s[1] > s[0])
        for (_, end_a, a), (start_b, _, b) in itertools.pairwise(busy):
            if start_b < end_a:
                raise ValueError(f"machine {machine}: {a} and {b} overlap")
    return makespan


def dispatch_schedule(instance: JobShop) -> Starts:
    """Giffler–Thompson active schedule, conflicts resolved by most work remaining."""
    remaining = [sum(op.duration for op in job) for job in instance.jobs]
    next_op = [0] * instance.n_jobs
    job_ready = [0] * instance.n_jobs
    machine_ready = [0] * instance.n_machines
    starts: Starts = [[0] * len(job) for job in instance.jobs]
    open_jobs = [j for j, job in enumerate(instance.jobs) if job]
    while open_jobs:

        def earliest(j: int) -> int:
            op = instance.jobs[j][next_op[j]]
            return max(job_ready[j], machine_ready[op.machine])

        # The operation that can finish first fixes the machine; any operation on that
        # machine able to start before then competes for it (the conflict set).
        first = min(open_jobs, key=lambda j: earliest(j) + instance.jobs[j][next_op[j]].duration)
        first_op = instance.jobs[first][next_op[first]]
        finish = earliest(first) + first_op.duration
        conflict = [
            j
            for j in open_jobs
            if instance.jobs[j][next_op[j]].machine == first_op.machine and earliest(j) < finish
        ] or [first]
        chosen = max(conflict, key=lambda j: (remaining[j], -j))
        op = instance.jobs[chosen][next_op[chosen]]
        start = earliest(chosen)
        starts[chosen][next_op[chosen]] = start
        job_ready[chosen] = machine_ready[op.machine] = start + op.duration
        remaining[chosen] -= op.duration
        next_op[chosen] += 1
        if next_op[chosen] == len(instance.jobs[chosen]):
            open_jobs.remove(chosen)
    return starts


class _Progress(cp_model.CpSolverSolutionCallback):
    """Records when each better makespan was found (for time-to-best in the benchmark)."""

    def __init__(self, t0: float) -> None:
        super().__init__()
        self._t0 = t0
        self.improvements: list[tuple[float, int]] = []

    def on_solution_callback(self) -> None:
        self.improvements.append((time.perf_counter() - self._t0, int(self.objective_value)))


def solve_jobshop(
    instance: JobShop,
    time_limit_s: float,
    workers: int = 2,
    hint: Sequence[Sequence[int]] | None = None,
    seed: int | None = None,
) -> JobShopResult:
    """Minimise the makespan within ``time_limit_s`` on ``workers`` CP-SAT workers.

    ``hint`` (same shape as the result's ``starts``, e.g. the previous plan) guides the
    first solutions; when absent the dispatch schedule is used. A hint that is feasible
    also caps the horizon, since a schedule at least that good is known to exist.
    """
    if time_limit_s <= 0 or workers < 1:
        raise ValueError("time_limit_s must be > 0 and workers >= 1")
    t0 = time.perf_counter()
    fallback = dispatch_schedule(instance)
    horizon = check_schedule(instance, fallback)
    guide: Sequence[Sequence[int]] = fallback
    if hint is not None:
        guide = hint
        try:
            hint_makespan = check_schedule(instance, hint)
        except ValueError:
            pass  # an infeasible hint still points the search somewhere useful
        else:
            if hint_makespan < horizon:
                horizon, fallback = hint_makespan, [list(row) for row in hint]
    lower = instance.trivial_lower_bound()

    model = cp_model.CpModel()
    start_vars: list[list[cp_model.IntVar]] = []
    machine_intervals: dict[int, list[cp_model.IntervalVar]] = {}
    makespan = model.new_int_var(lower, max(lower, horizon), "makespan")
    for j, job in enumerate(instance.jobs):
        row: list[cp_model.IntVar] = []
        head, tail = 0, sum(op.duration for op in job)
        for k, op in enumerate(job):
            tail -= op.duration
            start = model.new_int_var(head, max(head, horizon - tail - op.duration), f"s{j}_{k}")
            interval = model.new_fixed_size_interval_var(start, op.duration, f"i{j}_{k}")
            machine_intervals.setdefault(op.machine, []).append(interval)
            if row:
                model.add(start >= row[-1] + job[k - 1].duration)
            row.append(start)
            head += op.duration
        if row:
            model.add(makespan >= row[-1] + job[-1].duration)
        start_vars.append(row)
    for intervals in machine_intervals.values():
        model.add_no_overlap(intervals)
    model.minimize(makespan)
    if len(guide) == len(start_vars) and all(
        len(g) == len(r) for g, r in zip(guide, start_vars, strict=True)
    ):
        for g_row, v_row in zip(guide, start_vars, strict=True):
            for value, var in zip(g_row, v_row, strict=True):
                model.add_hint(var, value)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    # The limit covers the whole call, dispatch rule and model building included.
    solver.parameters.max_time_in_seconds = max(0.01, time_limit_s - (time.perf_counter() - t0))
    if seed is not None:
        solver.parameters.random_seed = seed
    progress = _Progress(t0)
    status = solver.solve(model, progress)
    wall = time.perf_counter() - t0
    bound = (
        max(lower, math.ceil(solver.best_objective_bound)) if status != cp_model.UNKNOWN else lower
    )
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        starts = [[int(solver.value(v)) for v in row] for row in start_vars]
        best = check_schedule(instance, starts)
        reached = next((t for t, m in progress.improvements if m <= best), wall)
        return JobShopResult(
            status=solver.status_name(status),
            makespan=best,
            bound=min(bound, best),
            starts=starts,
            wall_s=wall,
            time_to_best_s=reached,
            improvements=progress.improvements,
        )
    if status in (cp_model.INFEASIBLE, cp_model.MODEL_INVALID):
        raise RuntimeError(f"CP-SAT says {solver.status_name(status)}: model bug")
    return JobShopResult(
        status="HEURISTIC",
        makespan=horizon,
        bound=min(bound, horizon),
        starts=fallback,
        wall_s=wall,
        time_to_best_s=wall,
    )
