"""The CP-SAT model of the line, and the solve: a first plan at once, then the solver.

The model (``_build``), for a set of tasks:

- each task is one interval per station that may do it (optional intervals, exactly one
  present), sharing the task's start, size and end; size = run + setup_s × needs_setup;
- routing order and "pack after all units" are precedences; nothing starts before its
  release (now, its material, or in a sub-model its predecessors' current ends);
- per station, ``add_no_overlap`` over its intervals plus fixed intervals covering the time
  outside its shifts and breaks (so no task, setup included, straddles a break);
- sequence-dependent setups: per station, an ``add_circuit`` over the tasks with a setup
  key; an arc i→j means j directly follows i among them, so j starts after i ends, and j
  needs its setup when i's key differs (from the depot: the station's current setup);
- frozen tasks: started ones are fixed in place; a station's next task is fixed to it and
  starts before every unfrozen task of that station.

Objective, lexicographic: Σ weight of late orders, then Σ weight × lateness, then setup
seconds, then the makespan. The weights are exact (each level outweighs the maximum of all
lower ones) when that fits in 2^53; otherwise (large horizons) the makespan is dropped and
a late order costs as much as ``LATE_EQUIV_S`` seconds of its weighted lateness, which
keeps "fewer late orders first" without overflowing. ``SolveResult.lexicographic`` says
which one was used.

Scale: a circuit is quadratic in a station's keyed tasks, so the full model is solved only
when every station has at most ``FULL_MODEL_MAX_KEYED`` of them (tests, a quiet hour). A
surge has hundreds per station; then the solve is two-phase: the first plan comes from the
setup-aware ATC list scheduler (rules.py, ~0.1 s for 2,000 orders; or from the previous
plan when it is better), and the rest of the time limit goes to large-neighbourhood
search: a window of ``WINDOW`` consecutive tasks of one station group is re-optimised by
the same model with everything else fixed (operation due dates from the current plan),
the line is re-timed by executing the new sequences (execution.py), and the change is kept
only when the whole plan's objective improves. The trade-off: each window is solved well,
but tasks far apart are never exchanged in one move, so the plan is a local optimum around
the first plan, not a global one.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from gateway.planner.execution import PlanningError, SequencePolicy, simulate
from gateway.planner.explain import explain_plan
from gateway.planner.problem import Assignment, Plan, Problem, Task, make_plan, metrics
from gateway.planner.rules import dispatch

FULL_MODEL_MAX_KEYED = 40
FULL_MODEL_MAX_TASKS = 300
WINDOW = 36
WINDOW_TIME_S = 0.4
LATE_EQUIV_S = 4 * 3600
_EXACT_LIMIT = 2**53


@dataclass(frozen=True, slots=True)
class SolveResult:
    """The plan and how it was found."""

    plan: Plan
    status: str  # the full model's solver status, or "LNS"
    mode: str  # "full" or "lns"
    first_plan_s: float  # when the first plan (the fallback) was ready
    wall_s: float
    first_plan: Plan
    lexicographic: bool = True
    windows: int = 0
    improved: int = 0


@dataclass(slots=True)
class _Sub:
    """A (sub-)problem for ``_build``: free tasks and what is fixed around them."""

    tasks: list[Task]
    candidates: dict[str, tuple[str, ...]]
    release: dict[str, int]
    due: list[tuple[list[str], int, int]]  # (tasks whose max end counts, due, weight)
    avail: dict[str, int]  # station → free from
    state: dict[str, str | None]  # station → setup key before the first task
    off: dict[str, list[tuple[int, int]]]  # station → closed periods
    horizon: int
    hint: Mapping[str, Assignment] = field(default_factory=dict)


def solve(
    problem: Problem,
    *,
    time_limit_s: float = 10.0,
    workers: int = 2,
    hint: Plan | None = None,
    seed: int = 0,
    on_first: Callable[[Plan], None] | None = None,
    patience_s: float | None = None,
) -> SolveResult:
    """The best plan found within ``time_limit_s`` (the first plan if nothing better).

    ``on_first`` is given the first plan (explained) as soon as it exists, so a line
    need not wait the whole time limit for a plan to work by. With ``patience_s`` the
    search also ends once it has found nothing better for that long (after its first
    solution): a solver that has stopped improving gives the CPU back."""
    t0 = time.perf_counter()
    first = _first_plan(problem, hint)
    first_s = time.perf_counter() - t0
    if on_first is not None:
        on_first(explain_plan(problem, first))
    if _fits_full_model(problem):
        plan, status, exact = _solve_full(
            problem, first, time_limit_s - first_s, workers, seed, patience_s
        )
        plan = explain_plan(problem, plan)
        return SolveResult(plan, status, "full", first_s, time.perf_counter() - t0, first, exact)
    plan, windows, improved = _lns(problem, first, t0 + time_limit_s, workers, seed, patience_s)
    plan = explain_plan(problem, plan)
    return SolveResult(
        plan, "LNS", "lns", first_s, time.perf_counter() - t0, first, False, windows, improved
    )


def _first_plan(problem: Problem, hint: Plan | None) -> Plan:
    """The setup-aware ATC plan, or the previous plan re-timed when that is better."""
    best = dispatch(problem, "atcs")
    if hint is not None:
        again = _replay(problem, hint, best)
        if again is not None and metrics(problem, again).cost() < metrics(problem, best).cost():
            best = again
    return best


def _replay(problem: Problem, hint: Plan, fill: Plan) -> Plan | None:
    """The previous plan's order for the tasks it knows; new tasks where ``fill`` has them."""
    tasks = problem.task_map()
    old = {t: a for t, a in hint.assignments.items() if t in tasks}
    rows = [(a.station, a.start, t) for t, a in old.items()]
    rows += [(a.station, a.start, t) for t, a in fill.assignments.items() if t not in old]
    sequences: dict[str, list[str]] = {}
    for station, _start, task_id in sorted(rows, key=lambda r: (r[1], r[2])):
        sequences.setdefault(station, []).append(task_id)
    try:
        return simulate(problem, SequencePolicy(sequences, tasks), "previous plan")
    except PlanningError:
        return None


def _fits_full_model(problem: Problem) -> bool:
    if len(problem.tasks) > FULL_MODEL_MAX_TASKS:
        return False
    for station in problem.stations:
        keyed = sum(
            1
            for t in problem.tasks
            if t.setup_key is not None and t.setup_s > 0 and station.id in problem.candidates(t)
        )
        if keyed > FULL_MODEL_MAX_KEYED:
            return False
    return True


def _off_periods(problem: Problem, start: int, horizon: int) -> dict[str, list[tuple[int, int]]]:
    """Per station, the closed periods between ``start`` and ``horizon``, from the end of
    the tasks started there: an operator finishing a task into a break, or after the shift,
    is history the plan must not contradict."""
    busy: dict[str, int] = {}
    for task in problem.tasks:
        if task.frozen is not None and task.frozen.start is not None:
            end = task.frozen.start + task.duration + task.setup_s
            busy[task.frozen.station] = max(busy.get(task.frozen.station, start), end)
    out: dict[str, list[tuple[int, int]]] = {}
    for station in problem.stations:
        gaps: list[tuple[int, int]] = []
        cursor = max(start, busy.get(station.id, start))
        for a, b in station.working_windows(horizon):
            if b <= cursor:
                continue
            if a > cursor:
                gaps.append((cursor, a))
            cursor = max(cursor, b)
        if cursor < horizon:
            gaps.append((cursor, horizon))
        out[station.id] = gaps
    return out


def _solve_full(
    problem: Problem,
    first: Plan,
    time_left: float,
    workers: int,
    seed: int,
    patience_s: float | None = None,
) -> tuple[Plan, str, bool]:
    horizon = max(problem.horizon(), max((a.end for a in first.assignments.values()), default=0))
    sinks: dict[str, list[str]] = {}
    has_succ = {p for t in problem.tasks for p in t.predecessors}
    for task in problem.tasks:
        if task.id not in has_succ:
            sinks.setdefault(task.order_id, []).append(task.id)
    orders = problem.order_map()
    sub = _Sub(
        tasks=list(problem.tasks),
        candidates={t.id: problem.candidates(t) for t in problem.tasks},
        release={t.id: t.earliest for t in problem.tasks},
        due=[(ids, orders[o].ship_by, orders[o].weight) for o, ids in sinks.items()],
        avail={s.id: -(2**40) for s in problem.stations},
        state={s.id: s.setup for s in problem.stations},
        off=_off_periods(problem, 0, horizon),
        horizon=horizon,
        hint=first.assignments,
    )
    built = _build(sub, with_makespan=True)
    status, found = _run(built, max(0.05, time_left), workers, seed, patience_s)
    if found is None:
        return first, status, built.exact
    plan = make_plan(problem, found, f"cp-sat ({status.lower()})")
    if metrics(problem, plan).cost() <= metrics(problem, first).cost():
        return plan, status, built.exact
    return first, status, built.exact


@dataclass(slots=True)
class _Built:
    model: cp_model.CpModel
    starts: dict[str, cp_model.IntVar]
    ends: dict[str, cp_model.IntVar]
    present: dict[str, dict[str, cp_model.IntVar]]
    needs: dict[str, cp_model.IntVar]
    setup_s: dict[str, int]
    exact: bool


def _build(sub: _Sub, *, with_makespan: bool) -> _Built:
    """The CP-SAT model of ``sub`` (see the module docstring)."""
    m = cp_model.CpModel()
    ids = {t.id for t in sub.tasks}
    starts: dict[str, cp_model.IntVar] = {}
    ends: dict[str, cp_model.IntVar] = {}
    present: dict[str, dict[str, cp_model.IntVar]] = {}
    needs: dict[str, cp_model.IntVar] = {}
    setup_of: dict[str, int] = {}
    by_station: dict[str, list[cp_model.IntervalVar]] = {}
    keyed: dict[str, list[Task]] = {}
    first_on: dict[str, list[str]] = {}
    lo_all = min([0, *(sub.release.values())])
    for task in sub.tasks:
        frozen_start = task.frozen.start if task.frozen is not None else None
        lo = frozen_start if frozen_start is not None else max(sub.release[task.id], lo_all)
        hi = frozen_start if frozen_start is not None else sub.horizon
        start = m.new_int_var(lo, hi, f"s_{task.id}")
        end = m.new_int_var(lo, sub.horizon + task.duration + task.setup_s, f"e_{task.id}")
        is_keyed = task.setup_key is not None and task.setup_s > 0
        need = m.new_bool_var(f"n_{task.id}") if is_keyed else m.new_constant(0)
        if is_keyed and frozen_start is not None:
            # A started task's setup is history: fixed as the simulation counts it.
            cand = task.frozen.station if task.frozen is not None else ""
            m.add(need == int(task.needs_setup_after(sub.state.get(cand))))
        m.add(end == start + task.duration + task.setup_s * need)
        starts[task.id], ends[task.id], needs[task.id] = start, end, need
        setup_of[task.id] = task.setup_s
        present[task.id] = {}
        stations = sub.candidates[task.id]
        for sid in stations:
            lit = m.new_bool_var(f"p_{task.id}_{sid}") if len(stations) > 1 else m.new_constant(1)
            present[task.id][sid] = lit
            if task.duration + task.setup_s > 0:  # an empty task occupies nothing
                interval = m.new_optional_interval_var(
                    start, task.duration + task.setup_s * need, end, lit, f"i_{task.id}_{sid}"
                )
                by_station.setdefault(sid, []).append(interval)
            m.add(start >= sub.avail[sid]).only_enforce_if(lit)
            if is_keyed and frozen_start is None:
                keyed.setdefault(sid, []).append(task)
        m.add_exactly_one(present[task.id].values())
        if task.frozen is not None and task.frozen.start is None:
            first_on.setdefault(task.frozen.station, []).append(task.id)
    for task in sub.tasks:
        for pred in task.predecessors:
            if pred in ids:
                m.add(starts[task.id] >= ends[pred])
    for sid, gaps in sub.off.items():
        for a, b in gaps:
            if sid in by_station:
                by_station[sid].append(m.new_fixed_size_interval_var(a, b - a, f"off_{sid}_{a}"))
    for intervals in by_station.values():
        m.add_no_overlap(intervals)
    for sid, next_ids in first_on.items():
        for task in sub.tasks:
            if sid not in present[task.id] or task.frozen is not None:
                continue
            for nid in next_ids:
                m.add(starts[nid] <= starts[task.id]).only_enforce_if(present[task.id][sid])
    arcs_hint = _circuits(m, sub, keyed, starts, ends, present, needs)
    exact = _objective(m, sub, ends, needs, setup_of, with_makespan)
    constants = {v.index for vs in present.values() for v in vs.values() if _fixed(v)}
    constants |= {v.index for v in needs.values() if _fixed(v)}
    _hint(m, sub, starts, present, needs, arcs_hint, constants)
    return _Built(m, starts, ends, present, needs, setup_of, exact)


def _circuits(
    m: cp_model.CpModel,
    sub: _Sub,
    keyed: dict[str, list[Task]],
    starts: dict[str, cp_model.IntVar],
    ends: dict[str, cp_model.IntVar],
    present: dict[str, dict[str, cp_model.IntVar]],
    needs: dict[str, cp_model.IntVar],
) -> list[tuple[cp_model.IntVar, bool]]:
    """One circuit per station over its keyed tasks; returns arc hints from sub.hint."""
    hints: list[tuple[cp_model.IntVar, bool]] = []
    for sid, tasks in keyed.items():
        order = _hinted_order(sub, sid, tasks)
        arcs: list[tuple[int, int, cp_model.IntVar]] = []
        empty = m.new_bool_var(f"empty_{sid}")
        arcs.append((0, 0, empty))
        hints.append((empty, not order))
        init = sub.state.get(sid)
        for i, ti in enumerate(tasks, start=1):
            lit = present[ti.id][sid]
            arcs.append((i, i, ~lit))  # type: ignore[arg-type]
            first = m.new_bool_var(f"f_{sid}_{ti.id}")
            last = m.new_bool_var(f"l_{sid}_{ti.id}")
            arcs += [(0, i, first), (i, 0, last)]
            hints += [(first, bool(order) and order[0] == ti.id)]
            hints += [(last, bool(order) and order[-1] == ti.id)]
            if ti.needs_setup_after(init):
                m.add_implication(first, needs[ti.id])
            for j, tj in enumerate(tasks, start=1):
                if i == j:
                    continue
                arc = m.new_bool_var(f"a_{sid}_{ti.id}_{tj.id}")
                arcs.append((i, j, arc))
                m.add(starts[tj.id] >= ends[ti.id]).only_enforce_if(arc)
                if ti.setup_key != tj.setup_key:
                    m.add_implication(arc, needs[tj.id])
                hints.append((arc, _follows(order, ti.id, tj.id)))
        m.add_circuit(arcs)
    return hints


def _hinted_order(sub: _Sub, sid: str, tasks: Sequence[Task]) -> list[str]:
    on = [(sub.hint[t.id].start, t.id) for t in tasks if t.id in sub.hint]
    on = [(s, t) for s, t in on if sub.hint[t].station == sid]
    return [t for _, t in sorted(on)]


def _follows(order: list[str], a: str, b: str) -> bool:
    return any(x == a and y == b for x, y in itertools.pairwise(order))


def _objective(
    m: cp_model.CpModel,
    sub: _Sub,
    ends: dict[str, cp_model.IntVar],
    needs: dict[str, cp_model.IntVar],
    setup_of: dict[str, int],
    with_makespan: bool,
) -> bool:
    """Add the lexicographic objective; True when the weights are exactly lexicographic."""
    late_terms: list[tuple[int, cp_model.IntVar]] = []
    tard_terms: list[tuple[int, cp_model.IntVar]] = []
    # Tight domains: the weights below are products of them, and a term's coefficient
    # times its variable's range must stay far below 2^63 or the model is invalid.
    bounds = [_bounds(v) for v in ends.values()]
    lo = min([0, *sub.release.values(), *(b[0] for b in bounds)])
    hi = max([0, *(b[1] for b in bounds)])
    span = hi - lo + 1
    tard_max = 0
    for n, (task_ids, due, weight) in enumerate(sub.due):
        done = m.new_int_var(lo, hi, f"c_{n}")
        m.add_max_equality(done, [ends[t] for t in task_ids])
        late = m.new_bool_var(f"late_{n}")
        m.add(done <= due).only_enforce_if(~late)
        tard = m.new_int_var(0, max(0, hi - due), f"t_{n}")
        m.add(tard >= done - due)
        late_terms.append((weight, late))
        tard_terms.append((weight, tard))
        tard_max += weight * max(0, hi - due)
    setup_total = sum(setup_of.values())
    w_mk = 1 if with_makespan else 0
    w_setup = span * w_mk + 1
    w_tard = w_setup * setup_total + span * w_mk + 1
    w_late = w_tard * tard_max + w_setup * setup_total + span * w_mk + 1
    exact = w_late * (sum(w for w, _ in late_terms) + 1) < _EXACT_LIMIT
    if not exact:
        w_mk, w_setup, w_tard = 0, 1, setup_total + 1
        w_late = w_tard * LATE_EQUIV_S
    expr: list[cp_model.LinearExprT] = []
    expr += [w_late * w * lit for w, lit in late_terms]
    expr += [w_tard * w * var for w, var in tard_terms]
    expr += [w_setup * setup_of[t] * needs[t] for t in needs if setup_of[t]]
    if w_mk:
        makespan = m.new_int_var(lo, hi, "makespan")
        m.add_max_equality(makespan, list(ends.values()))
        expr.append(w_mk * makespan)
    m.minimize(sum(expr))
    return exact


def _hint(
    m: cp_model.CpModel,
    sub: _Sub,
    starts: dict[str, cp_model.IntVar],
    present: dict[str, dict[str, cp_model.IntVar]],
    needs: dict[str, cp_model.IntVar],
    arcs: list[tuple[cp_model.IntVar, bool]],
    constants: set[int],
) -> None:
    """Hint the variables that decide (not the constants CP-SAT shares between uses)."""
    if not sub.hint:
        return
    for task_id, start in starts.items():
        a = sub.hint.get(task_id)
        if a is None:
            continue
        m.add_hint(start, a.start)
        for sid, lit in present[task_id].items():
            if lit.index not in constants:
                m.add_hint(lit, sid == a.station)
        if needs[task_id].index not in constants:
            m.add_hint(needs[task_id], a.setup > 0)
    for lit, value in arcs:
        m.add_hint(lit, value)


def _bounds(var: cp_model.IntVar) -> tuple[int, int]:
    """A variable's smallest and largest value (the proto's repeated field does not take
    negative indexes)."""
    domain = list(var.proto.domain)
    return int(domain[0]), int(domain[-1])


def _fixed(var: cp_model.IntVar) -> bool:
    """Whether ``var`` is a constant (from ``new_constant``)."""
    domain = var.proto.domain
    return len(domain) == 2 and domain[0] == domain[1]


class _Patience(cp_model.CpSolverSolutionCallback):
    """Stops a search that has found nothing better for ``patience_s`` since its last
    solution (a watchdog thread: CP-SAT calls back only when it finds one)."""

    def __init__(self, solver: cp_model.CpSolver, patience_s: float) -> None:
        super().__init__()
        self._solver = solver
        self._patience_s = patience_s
        self._last: float | None = None  # no solution yet: no stop (the time limit rules)
        self._done = threading.Event()
        self._watch = threading.Thread(target=self._wait, name="patience", daemon=True)

    def on_solution_callback(self) -> None:
        self._last = time.perf_counter()

    def __enter__(self) -> _Patience:
        self._watch.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._watch.join()

    def _wait(self) -> None:
        # Slept in steps rather than Event.wait(timeout): that one sleeps until a deadline
        # on the clock, which a shifted clock (faketime: tests/clock_check.sh) puts days away.
        while not self._done.is_set():
            time.sleep(0.05)
            last = self._last
            if last is not None and time.perf_counter() - last > self._patience_s:
                self._solver.stop_search()
                return


def _run(
    built: _Built, time_limit: float, workers: int, seed: int, patience_s: float | None = None
) -> tuple[str, dict[str, Assignment] | None]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    if patience_s is None:
        status = solver.solve(built.model)
    else:
        with _Patience(solver, patience_s) as patience:
            status = solver.solve(built.model, patience)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, None
    out: dict[str, Assignment] = {}
    for task_id, start in built.starts.items():
        station = next(s for s, lit in built.present[task_id].items() if solver.boolean_value(lit))
        setup = built.setup_s[task_id] * int(solver.value(built.needs[task_id]))
        out[task_id] = Assignment(
            station, int(solver.value(start)), int(solver.value(built.ends[task_id])), setup
        )
    return name, out


def _lns(
    problem: Problem,
    first: Plan,
    deadline: float,
    workers: int,
    seed: int,
    patience_s: float | None = None,
) -> tuple[Plan, int, int]:
    """Improve ``first`` window by window until ``deadline`` (perf_counter seconds), or
    until no window improved it for ``patience_s``."""
    rng = random.Random(seed)
    tasks = problem.task_map()
    horizon = max(problem.horizon(), max((a.end for a in first.assignments.values()), default=0))
    off = _off_periods(problem, 0, horizon)
    current, cost = first, metrics(problem, first).cost()
    windows = improved = 0
    last_better = time.perf_counter()
    while time.perf_counter() + 0.15 < deadline:
        if patience_s is not None and time.perf_counter() - last_better > patience_s:
            break
        picked = _pick_window(problem, current, rng)
        if picked is None:
            break
        group, window = picked
        sub = _window_sub(problem, current, group, window, off, horizon)
        built = _build(sub, with_makespan=True)
        limit = min(WINDOW_TIME_S, deadline - time.perf_counter() - 0.1)
        _status, found = _run(built, max(0.05, limit), workers, seed + windows)
        windows += 1
        if found is None:
            continue
        sequences = _merge(current, group, found)
        try:
            candidate = simulate(problem, SequencePolicy(sequences, tasks), "cp-sat (lns)")
        except PlanningError:
            continue  # the new order deadlocks with another station's order: not taken
        new_cost = metrics(problem, candidate).cost()
        if new_cost < cost:
            current, cost = candidate, new_cost
            improved += 1
            last_better = time.perf_counter()
    return make_plan(problem, current.assignments, "cp-sat (lns)"), windows, improved


def _groups(problem: Problem, plan: Plan) -> dict[tuple[str, ...], list[str]]:
    """Unfrozen tasks by the set of stations that may do them, in the plan's start order."""
    out: dict[tuple[str, ...], list[str]] = {}
    for task in problem.tasks:
        if task.frozen is None:
            out.setdefault(problem.candidates(task), []).append(task.id)
    for ids in out.values():
        ids.sort(key=lambda t: (plan.assignments[t].start, t))
    return out


def _pick_window(
    problem: Problem, plan: Plan, rng: random.Random
) -> tuple[tuple[str, ...], list[str]] | None:
    """Mostly around a task of a late order (picked by weighted lateness), sometimes a
    random stretch of a station group with setups."""
    groups = _groups(problem, plan)
    if not groups:
        return None
    orders = problem.order_map()
    late = [(o.order_id, orders[o.order_id].weight * o.lateness) for o in plan.late]
    position: dict[str, tuple[tuple[str, ...], int]] = {}
    for group, ids in groups.items():
        for i, task_id in enumerate(ids):
            position[task_id] = (group, i)
    if late and rng.random() < 0.7:
        total = sum(w for _, w in late)
        x = rng.random() * total
        chosen = late[-1][0]
        for order_id, w in late:
            x -= w
            if x <= 0:
                chosen = order_id
                break
        own = [t.id for t in problem.tasks if t.order_id == chosen and t.id in position]
        if own:
            group, i = position[rng.choice(own)]
            ids = groups[group]
            lo = max(0, i - int(WINDOW * 0.75))
            return group, ids[lo : lo + WINDOW]
    tasks = problem.task_map()
    keyed = [g for g, ids in groups.items() if any(tasks[t].setup_s for t in ids)]
    group = rng.choice(keyed or list(groups))
    ids = groups[group]
    lo = rng.randrange(max(1, len(ids) - WINDOW + 1))
    return group, ids[lo : lo + WINDOW]


def _window_sub(
    problem: Problem,
    plan: Plan,
    group: tuple[str, ...],
    window: list[str],
    off: dict[str, list[tuple[int, int]]],
    horizon: int,
) -> _Sub:
    """The window's tasks free, the rest of the plan as fixed surroundings."""
    tasks = problem.task_map()
    orders = problem.order_map()
    inside = set(window)
    a = plan.assignments
    t_lo = min(a[t].start for t in window)
    t_hi = max(a[t].end for t in window)
    stations = problem.station_map()
    avail: dict[str, int] = {}
    state: dict[str, str | None] = {}
    closed: dict[str, list[tuple[int, int]]] = {}
    for sid in group:
        avail[sid] = t_lo
        state[sid] = stations[sid].setup
        closed[sid] = [g for g in off[sid] if g[1] > t_lo]
        for task_id, other in sorted(a.items(), key=lambda kv: kv[1].start):
            if other.station != sid or task_id in inside:
                continue
            task = tasks[task_id]
            if other.start < t_lo:
                avail[sid] = max(avail[sid], other.end)
                if task.setup_key is not None and task.setup_s > 0:
                    state[sid] = task.setup_key
            elif other.start < t_hi:
                closed[sid].append((other.start, other.end))  # a fixed task in the way
    release: dict[str, int] = {}
    due: list[tuple[list[str], int, int]] = []
    for task_id in window:
        task = tasks[task_id]
        preds = [a[p].end for p in task.predecessors if p not in inside]
        release[task_id] = max([task.earliest, *preds])
        order = orders[task.order_id]
        slack = order.ship_by - plan.completion[task.order_id]
        due.append(([task_id], a[task_id].end + slack, order.weight))
    return _Sub(
        tasks=[tasks[t] for t in window],
        candidates=dict.fromkeys(window, group),
        release=release,
        due=due,
        avail=avail,
        state=state,
        off=closed,
        horizon=horizon,
        hint={t: a[t] for t in window},
    )


def _merge(
    plan: Plan, group: tuple[str, ...], found: Mapping[str, Assignment]
) -> dict[str, list[str]]:
    """The plan's station sequences with the window's tasks at their new places."""
    rows: dict[str, list[tuple[int, int, str]]] = {}
    for task_id, a in plan.assignments.items():
        if task_id in found:
            continue
        rows.setdefault(a.station, []).append((a.start, 1, task_id))
    for task_id, a in found.items():
        rows.setdefault(a.station, []).append((a.start, 0, task_id))
    return {s: [t for _, _, t in sorted(r)] for s, r in rows.items()}
