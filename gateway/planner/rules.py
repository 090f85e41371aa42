"""Dispatch rules as list schedulers: FIFO, earliest-ship-by-first (EDD) and ATC.

A rule answers one question, "which ready task does this free station do next?", the way
the floor does it today; running it through the execution simulation gives its plan. The
ready tasks are kept in heaps so a 2,000-order surge plans in well under a second.

ATC (apparent tardiness cost, Vepsalainen & Morton 1987) ranks task i at time t by
``w_i / p_i * exp(-max(0, d_i - p_i - t) / (k * p_mean))`` with d_i the operation's due
date (the order's ship_by minus the work still to do after it). Its log is
``min(A_i, B_i + t / (k * p_mean))`` with A_i, B_i constant, so two heaps answer it
exactly: one by A for the tasks already critical (t >= d_i - p_i), one by B for the rest.
``atcs`` adds the setup penalty of ATCS (Lee, Bhaskaran & Pinedo 1997); it is not one of
the rules people use, it is the planner's fast first plan (see model.py).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Literal

from gateway.planner.execution import simulate
from gateway.planner.problem import Order, Plan, Problem, Station, Task

Rule = Literal["fifo", "edd", "atc", "atcs"]
RULES: tuple[Rule, ...] = ("fifo", "edd", "atc")

# Look-ahead parameters: k = 2 is the textbook middle for ATC; the setup scale 0.7 was
# tuned on the generated scenarios (benchmarks/bench_plan.py), anything in 0.3..1.5 is close.
ATC_K = 2.0
SETUP_K = 0.7


def dispatch(problem: Problem, rule: Rule) -> Plan:
    """The plan the line makes when every free station takes the next task by ``rule``."""
    policy: _StaticPolicy | _AtcPolicy
    if rule in ("fifo", "edd"):
        policy = _StaticPolicy(problem, rule)
    else:
        policy = _AtcPolicy(problem, setup_aware=rule == "atcs")
    return simulate(problem, policy, rule)


def tails(problem: Problem) -> dict[str, int]:
    """Per task, the work that must still follow it in its order (longest chain)."""
    succ: dict[str, list[str]] = {}
    for task in problem.tasks:
        for pred in task.predecessors:
            succ.setdefault(pred, []).append(task.id)
    tasks = problem.task_map()
    memo: dict[str, int] = {}
    # Iterative post-order: routings are short, but an order may have many units.
    for root in tasks:
        stack = [root]
        while stack:
            tid = stack[-1]
            if tid in memo:
                stack.pop()
                continue
            pending = [s for s in succ.get(tid, ()) if s not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            memo[tid] = max((memo[s] + tasks[s].duration for s in succ.get(tid, ())), default=0)
    return memo


class _StaticPolicy:
    """FIFO and EDD: a fixed key per task, one heap per capability."""

    def __init__(self, problem: Problem, rule: Literal["fifo", "edd"]) -> None:
        orders = problem.order_map()
        key: Callable[[Task], tuple[int, int, str, str]]
        if rule == "fifo":

            def key(task: Task) -> tuple[int, int, str, str]:
                return (orders[task.order_id].released, 0, task.order_id, task.id)

        else:
            # The gateway's own rule today: ship_by, then priority (higher first).
            def key(task: Task) -> tuple[int, int, str, str]:
                order = orders[task.order_id]
                return (order.ship_by, -order.weight, task.order_id, task.id)

        self._key = key
        self._heaps: dict[str, list[tuple[tuple[int, int, str, str], str]]] = {}
        self._tasks = problem.task_map()

    def release(self, task: Task, t: int) -> None:
        heapq.heappush(self._heaps.setdefault(task.capability, []), (self._key(task), task.id))

    def peek(self, station: Station, t: int, state: str | None) -> Task | None:
        best: tuple[tuple[int, int, str, str], str] | None = None
        for cap in station.capabilities:
            heap = self._heaps.get(cap)
            if heap and (best is None or heap[0] < best):
                best = heap[0]
        return None if best is None else self._tasks[best[1]]

    def take(self, station: Station, task: Task) -> None:
        heap = self._heaps[task.capability]
        assert heap[0][1] == task.id
        heapq.heappop(heap)


class _AtcGroup:
    """The ready tasks of one capability and setup key, ranked by ATC in O(log n)."""

    def __init__(self, a_values: dict[str, float]) -> None:
        self.a_values = a_values  # shared with the policy: A of every released task
        self.relaxed: list[tuple[float, str]] = []  # (-B, id): not yet critical
        self.critical: list[tuple[float, str]] = []  # (-A, id)
        self.triggers: list[tuple[float, str]] = []  # (d - p, id): when it becomes critical
        self.moved: set[str] = set()

    def add(self, task_id: str, a: float, b: float, trigger: float, t: int) -> None:
        if t >= trigger:
            heapq.heappush(self.critical, (-a, task_id))
            self.moved.add(task_id)
        else:
            heapq.heappush(self.relaxed, (-b, task_id))
            heapq.heappush(self.triggers, (trigger, task_id))

    def best(self, t: int, scale: float, taken: set[str]) -> tuple[float, str] | None:
        """(log ATC index, task id) of the best task at ``t``."""
        while self.triggers and self.triggers[0][0] <= t:
            _, task_id = heapq.heappop(self.triggers)
            if task_id not in taken:
                self.moved.add(task_id)
                heapq.heappush(self.critical, (-self.a_values[task_id], task_id))
        for heap in (self.relaxed, self.critical):
            while heap and (
                heap[0][1] in taken or (heap is self.relaxed and heap[0][1] in self.moved)
            ):
                heapq.heappop(heap)
        found: tuple[float, str] | None = None
        if self.critical:
            found = (-self.critical[0][0], self.critical[0][1])
        if self.relaxed:
            value = -self.relaxed[0][0] + t / scale
            if found is None or value > found[0]:
                found = (value, self.relaxed[0][1])
        return found


class _AtcPolicy:
    """ATC (and ATCS with ``setup_aware``): one ranked group per capability and setup key."""

    def __init__(self, problem: Problem, setup_aware: bool) -> None:
        self._tasks = problem.task_map()
        self._orders: dict[str, Order] = problem.order_map()
        self._tails = tails(problem)
        self._setup_aware = setup_aware
        self._groups: dict[tuple[str, str | None], _AtcGroup] = {}
        self._a: dict[str, float] = {}
        self._taken: set[str] = set()
        durations: dict[str, list[int]] = {}
        setups: dict[str, list[int]] = {}
        for task in problem.tasks:
            durations.setdefault(task.capability, []).append(task.duration)
            if task.setup_s:
                setups.setdefault(task.capability, []).append(task.setup_s)
        self._scale = {c: ATC_K * max(1.0, sum(v) / len(v)) for c, v in durations.items()}
        self._setup_scale = {c: SETUP_K * sum(v) / len(v) for c, v in setups.items()}

    def release(self, task: Task, t: int) -> None:
        order = self._orders[task.order_id]
        p = max(1, task.duration)
        due = order.ship_by - self._tails[task.id]
        scale = self._scale[task.capability]
        a = math.log(max(order.weight, 1) / p)
        b = a - (due - p) / scale
        self._a[task.id] = a
        key = (task.capability, task.setup_key if self._setup_aware else None)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _AtcGroup(self._a)
        group.add(task.id, a, b, due - p, t)

    def peek(self, station: Station, t: int, state: str | None) -> Task | None:
        best: tuple[float, str] | None = None
        for (cap, _key), group in self._groups.items():
            if cap not in station.capabilities:
                continue
            found = group.best(t, self._scale[cap], self._taken)
            if found is None:
                continue
            value, task_id = found
            task = self._tasks[task_id]
            if self._setup_aware and task.needs_setup_after(state):
                value -= task.setup_s / max(1.0, self._setup_scale.get(cap, 1.0))
            if best is None or value > best[0]:
                best = (value, task_id)
        return None if best is None else self._tasks[best[1]]

    def take(self, station: Station, task: Task) -> None:
        self._taken.add(task.id)
