"""The overtime that brings every order in on time, if overtime can: a greedy search over
the line's shifts, one carrier cut-off at a time.

The method (sound and simple, not optimal):

1. Plan with the planner's fast first plan, the setup-aware ATC dispatch rule
   (gateway/planner/rules.py), with the overtime found so far.
2. Take the earliest cut-off (ship-by) that late orders miss, and its late orders. Rank the
   stations by how long those orders waited at each, queued behind other work or for the
   station to open (gateway/planner/explain.py ``delays``): the first is the one holding
   them up.
3. On that station, take the latest shift that ends before the cut-off and can be made
   longer (the station is closed after it, the overtime stays under ``max_s`` a shift),
   and work it on past its end by about the work of those orders the station did after
   the cut-off, in steps of ``step_s``. Plan again. Kept when fewer orders miss that
   cut-off or an earlier one; otherwise taken back, and the next shift, or the next
   station that held them up at least half as long, tried. A cut-off no such overtime
   improves is given up: its late orders are reported as overtime cannot save them (a
   ship-by already past, no shift to lengthen before it, the cap reached, or work that
   does not fit before it whatever the shifts).
4. Repeat until no order is late but the given-up ones, or the cap (``max_replans``
   plans, or the deadline) is reached.
5. Trim: each overtime is shortened step by step while no more orders are late.

The rule, not CP-SAT, plans every step: a plan of 5,000 orders takes it a fraction of a
second. CP-SAT never does worse than the rule's plan it starts from (its first plan),
so the plan the check then makes with the overtime (gateway/planning/capacity_solve.py)
is on time wherever this one is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.planner.explain import delays
from gateway.planner.problem import LateOrder, Plan, Problem, Task
from gateway.planner.rules import dispatch
from gateway.planning.capacity_answer import SearchEnd
from gateway.planning.capacity_calendar import ShiftSpan, SpanKey, with_overtime

__all__ = ["Search", "SearchLimits", "search_overtime"]


@dataclass(frozen=True, slots=True)
class SearchLimits:
    step_s: int = 1800  # overtime comes in steps of this
    max_s: int = 4 * 3600  # at most this much on one shift of one station on one day
    max_replans: int = 40
    deadline: float = float("inf")  # time.monotonic() by which the search stops


@dataclass(frozen=True, slots=True)
class Search:
    """What the search found: the overtime per shift, the rule's plan with it (its late
    orders: those overtime could not bring in), how many plans it took, how it ended."""

    extra: Mapping[SpanKey, int]
    plan: Plan
    replans: int
    end: SearchEnd


class _Planner:
    """The rule's plan of ``problem`` with some overtime, counted."""

    def __init__(self, problem: Problem, spans: Mapping[str, Sequence[ShiftSpan]]) -> None:
        self.problem = problem
        self.spans = spans
        self.replans = 0

    def plan(self, extra: Mapping[SpanKey, int]) -> Plan:
        self.replans += 1
        return dispatch(with_overtime(self.problem, self.spans, extra), "atcs")


def search_overtime(
    problem: Problem,
    spans: Mapping[str, Sequence[ShiftSpan]],
    limits: SearchLimits,
    clock: Callable[[], float] = time.monotonic,
) -> Search:
    """The overtime for ``problem`` (see the module docstring)."""
    planner = _Planner(problem, spans)
    by_order: dict[str, list[Task]] = {}
    for task in problem.tasks:
        by_order.setdefault(task.order_id, []).append(task)
    extra: dict[SpanKey, int] = {}
    plan = planner.plan(extra)
    given_up: set[int] = set()  # cut-offs (ship-bys) overtime does not improve
    tried: set[tuple[int, SpanKey]] = set()
    end = SearchEnd.CAP
    while True:
        late = [o for o in plan.late if o.ship_by > 0 and o.ship_by not in given_up]
        if not late:
            end = SearchEnd.PARTLY if _hopeless(plan, given_up) else SearchEnd.ON_TIME
            break
        if planner.replans >= limits.max_replans or clock() >= limits.deadline:
            break
        cutoff = min(o.ship_by for o in late)
        group = [o for o in late if o.ship_by == cutoff]
        choice = _choose(problem, plan, group, cutoff, by_order, spans, extra, tried, limits)
        if choice is None:
            given_up.add(cutoff)
            continue
        key, seconds = choice
        extra[key] = extra.get(key, 0) + seconds
        candidate = planner.plan(extra)
        if _missed(candidate, cutoff) < _missed(plan, cutoff):
            plan = candidate  # fewer orders late at this cut-off or before it
        else:
            extra[key] -= seconds
            if not extra[key]:
                del extra[key]
            tried.add((cutoff, key))
    if end is not SearchEnd.CAP:
        plan = _trim(planner, plan, extra, given_up, limits, clock)
    return Search(dict(extra), plan, planner.replans, end)


def _hopeless(plan: Plan, given_up: set[int]) -> bool:
    """Late orders are left that no overtime brings in (given up, or ship-by passed)."""
    return any(o.ship_by <= 0 or o.ship_by in given_up for o in plan.late)


def _missed(plan: Plan, cutoff: int) -> int:
    """How many orders ``plan`` has late at ``cutoff`` and the ones before it. (Less
    lateness alone is no progress: half an hour at a time of it cost a plan each.)"""
    return sum(1 for o in plan.late if 0 < o.ship_by <= cutoff)


def _choose(
    problem: Problem,
    plan: Plan,
    group: Sequence[LateOrder],
    cutoff: int,
    by_order: Mapping[str, Sequence[Task]],
    spans: Mapping[str, Sequence[ShiftSpan]],
    extra: Mapping[SpanKey, int],
    tried: set[tuple[int, SpanKey]],
    limits: SearchLimits,
) -> tuple[SpanKey, int] | None:
    """The shift to make longer for ``group`` (late at ``cutoff``), and by how much."""
    waited: dict[str, int] = {}
    for order in group:
        for delay in delays(problem, plan, order.order_id, by_order.get(order.order_id, ())):
            if delay.kind in ("bottleneck", "shift"):
                waited[delay.what] = waited.get(delay.what, 0) + delay.seconds
    # The stations that held them up most: one they hardly waited at is no remedy.
    most = max(waited.values(), default=0)
    for station in sorted(waited, key=lambda s: (-waited[s], s)):
        if waited[station] * 2 < most:
            break
        for span in reversed(spans.get(station, ())):
            key = span.key
            done = extra.get(key, 0)
            if span.end < 0 or span.end + done >= cutoff or (cutoff, key) in tried:
                continue
            room = min(limits.max_s, span.room) - done
            if room < limits.step_s:
                continue
            want = _work_after(plan, group, station, cutoff, by_order)
            steps = max(1, -(-want // limits.step_s))
            return key, min(steps, room // limits.step_s) * limits.step_s
    return None


def _work_after(
    plan: Plan,
    group: Sequence[LateOrder],
    station: str,
    cutoff: int,
    by_order: Mapping[str, Sequence[Task]],
) -> int:
    """The work ``station`` did for ``group``'s orders after the cut-off: about what it
    must do before it instead."""
    total = 0
    for order in group:
        for task in by_order.get(order.order_id, ()):
            a = plan.assignments.get(task.id)
            if a is not None and a.station == station and a.end > cutoff:
                total += a.end - max(a.start, cutoff)
    return total


def _trim(
    planner: _Planner,
    plan: Plan,
    extra: dict[SpanKey, int],
    given_up: set[int],
    limits: SearchLimits,
    clock: Callable[[], float],
) -> Plan:
    """Each overtime shortened by a step while that leaves no more orders late (the
    search's estimates round up, and a later overtime may have made an earlier one
    unneeded); the largest first."""

    def late_count(p: Plan) -> int:
        return sum(1 for o in p.late if o.ship_by > 0 and o.ship_by not in given_up)

    target = late_count(plan)
    for key in sorted(extra, key=lambda k: (-extra[k], k)):
        while extra[key] >= limits.step_s:
            if planner.replans >= limits.max_replans or clock() >= limits.deadline:
                return plan
            extra[key] -= limits.step_s
            candidate = planner.plan({k: v for k, v in extra.items() if v})
            if late_count(candidate) <= target and len(candidate.late) <= len(plan.late):
                plan = candidate
                continue
            extra[key] += limits.step_s
            break
        if not extra[key]:
            del extra[key]
    return plan
