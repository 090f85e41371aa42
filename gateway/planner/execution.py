"""A discrete-event simulation of the line executing a plan or a dispatch rule.

The floor works like this: a station that is free, in its shift, asks for its next task;
the task may start when its predecessors are done and its material is there; it runs
setup + run time without interruption, so it starts only if it ends before the shift or
break does (otherwise the station waits for its next working window). A plan is executed
by giving each station its tasks in the plan's order (a station waits for its next task
rather than skipping it); a rule picks among the ready tasks. Either way the result is the
schedule as executed, from which the benchmark measures lateness, setups and makespan.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.planner.problem import Assignment, Plan, Problem, Station, Task, make_plan


class PlanningError(RuntimeError):
    """The tasks cannot all be placed (no shift left, or a plan whose order deadlocks)."""


class Policy(Protocol):
    """Who decides what a free station does next (a rule, or a plan's sequence)."""

    def release(self, task: Task, t: int) -> None:
        """``task`` may start from ``t`` on (predecessors done, material there)."""

    def peek(self, station: Station, t: int, state: str | None) -> Task | None:
        """The task ``station`` (set up for ``state``) would start at ``t``, if any."""

    def take(self, station: Station, task: Task) -> None:
        """``station`` starts ``task`` (it is no longer available to others)."""


class SequencePolicy:
    """Each station does its tasks in the given order, waiting for the next one."""

    def __init__(self, sequences: Mapping[str, Sequence[str]], tasks: Mapping[str, Task]):
        # Frozen tasks are placed by the engine itself (started ones, and each station's
        # next task): the sequence is what follows them.
        self._queues = {
            s: deque(t for t in seq if tasks[t].frozen is None) for s, seq in sequences.items()
        }
        self._released: set[str] = set()
        self._tasks = tasks

    def release(self, task: Task, t: int) -> None:
        self._released.add(task.id)

    def peek(self, station: Station, t: int, state: str | None) -> Task | None:
        queue = self._queues.get(station.id)
        if queue and queue[0] in self._released:
            return self._tasks[queue[0]]
        return None

    def take(self, station: Station, task: Task) -> None:
        self._queues[station.id].popleft()


class _Calendar:
    """A station's working windows, searchable by time."""

    def __init__(self, station: Station, horizon: int) -> None:
        self.windows = station.working_windows(horizon)
        self.starts = [w[0] for w in self.windows]

    def window_at(self, t: int) -> tuple[int, int] | None:
        """The window containing ``t``, else None."""
        i = bisect_right(self.starts, t) - 1
        if i >= 0 and self.windows[i][1] > t:
            return self.windows[i]
        return None

    def next_open(self, t: int) -> int | None:
        """The start of the first window after ``t``."""
        i = bisect_right(self.starts, t)
        return self.starts[i] if i < len(self.starts) else None


def simulate(problem: Problem, policy: Policy, method: str) -> Plan:
    """Run the line under ``policy`` until every task is done; the schedule as executed."""
    return make_plan(problem, _Engine(problem, policy).run(), method)


def execute_plan(problem: Problem, plan: Plan, method: str | None = None) -> Plan:
    """Execute ``plan``: each station does its tasks in the plan's order, as early as the
    floor allows (so idle time the plan left is not kept)."""
    policy = SequencePolicy(plan.sequences(), problem.task_map())
    return simulate(problem, policy, method or f"{plan.method} (executed)")


class _Engine:
    def __init__(self, problem: Problem, policy: Policy) -> None:
        self.problem = problem
        self.policy = policy
        self.tasks = problem.task_map()
        self.stations = problem.stations
        # Room for plans that run past the shifts' horizon when there are no shifts.
        horizon = problem.horizon() * 2 + 1
        self.calendars = {s.id: _Calendar(s, horizon) for s in problem.stations}
        self.succ: dict[str, list[str]] = {}
        for task in problem.tasks:
            for pred in task.predecessors:
                self.succ.setdefault(pred, []).append(task.id)
        self.waiting = {t.id: len(t.predecessors) for t in problem.tasks}
        self.ready_at = {t.id: t.earliest for t in problem.tasks}
        self.busy_until = {s.id: -(2**62) for s in problem.stations}
        self.state = {s.id: s.setup for s in problem.stations}
        self.forced: dict[str, deque[str]] = {s.id: deque() for s in problem.stations}
        self.released: set[str] = set()
        self.out: dict[str, Assignment] = {}
        self.events: list[tuple[int, int, str, str]] = []
        self.seq = 0

    def push(self, t: int, kind: str, ident: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, ident))

    def run(self) -> dict[str, Assignment]:
        self._place_frozen()
        for task in self.problem.tasks:
            if task.id not in self.out and self.waiting[task.id] == 0:
                self.push(max(task.earliest, 0), "release", task.id)
        for station in self.stations:
            self.push(0, "wake", station.id)
        while self.events:
            t = self.events[0][0]
            while self.events and self.events[0][0] == t:
                _, _, kind, ident = heapq.heappop(self.events)
                self._handle(kind, ident, t)
            for station in self.stations:
                if self.busy_until[station.id] <= t:
                    self._try_start(station, t)
        missing = [t for t in self.tasks if t not in self.out]
        if missing:
            raise PlanningError(
                f"{len(missing)} tasks could not be executed (first: {missing[0]}): "
                "no shift left for them, or the plan's order deadlocks"
            )
        return self.out

    def _place_frozen(self) -> None:
        started = sorted(
            (t.frozen.start, t.id)
            for t in self.problem.tasks
            if t.frozen is not None and t.frozen.start is not None
        )
        for start, task_id in started:
            task = self.tasks[task_id]
            assert task.frozen is not None
            station = task.frozen.station
            setup = task.setup_s if task.needs_setup_after(self.state[station]) else 0
            self._assign(task, station, start, setup)
        for task in self.problem.tasks:
            if task.frozen is not None and task.frozen.start is None:
                self.forced[task.frozen.station].append(task.id)

    def _assign(self, task: Task, station: str, start: int, setup: int) -> None:
        end = start + setup + task.duration
        self.out[task.id] = Assignment(station, start, end, setup)
        self.busy_until[station] = max(self.busy_until[station], end)
        if task.setup_key is not None and task.setup_s > 0:
            self.state[station] = task.setup_key
        self.push(end, "done", task.id)

    def _handle(self, kind: str, ident: str, t: int) -> None:
        if kind == "done":
            for nxt in self.succ.get(ident, ()):
                self.waiting[nxt] -= 1
                self.ready_at[nxt] = max(self.ready_at[nxt], t)
                if self.waiting[nxt] == 0 and nxt not in self.out:
                    self.push(self.ready_at[nxt], "release", nxt)
        elif kind == "release":
            task = self.tasks[ident]
            self.released.add(ident)
            if task.frozen is None:
                self.policy.release(task, t)

    def _try_start(self, station: Station, t: int) -> None:
        calendar = self.calendars[station.id]
        window = calendar.window_at(t)
        if window is None:
            nxt = calendar.next_open(t)
            if nxt is not None:
                self.push(nxt, "wake", station.id)
            return
        forced = self.forced[station.id]
        task: Task | None
        if forced:
            task = self.tasks[forced[0]] if forced[0] in self.released else None
        else:
            task = self.policy.peek(station, t, self.state[station.id])
        if task is None:
            return
        setup = task.setup_s if task.needs_setup_after(self.state[station.id]) else 0
        if t + setup + task.duration > window[1]:
            # It would run into the break or the shift's end: wait for the next window.
            nxt = calendar.next_open(t)
            if nxt is not None:
                self.push(nxt, "wake", station.id)
            return
        if forced:
            forced.popleft()
        else:
            self.policy.take(station, task)
        self._assign(task, station.id, t, setup)
