"""What a planning problem and a plan are: plain, immutable data, no solver, no I/O.

Time is integer seconds from ``now`` (the moment the plan is made): a task already started
may have a negative start. Every planner (CP-SAT, the dispatch rules, the execution
simulator) takes a :class:`Problem` and returns a :class:`Plan`, so the feasibility checker,
the explanations and the benchmark treat them all alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Window = tuple[int, int]  # [start, end) in seconds from now


@dataclass(frozen=True, slots=True)
class Station:
    """A station: what it can do, when it works, and how its machine is set up right now.

    ``shifts`` are the working windows and ``breaks`` the pauses inside them; with no
    shifts at all the station is always open. ``setup`` is the setup_key value the machine
    is set up for now (None: unknown, so the first keyed task pays its setup)."""

    id: str
    capabilities: frozenset[str]
    shifts: tuple[Window, ...] = ()
    breaks: tuple[Window, ...] = ()
    setup: str | None = None
    name: str = ""

    def working_windows(self, horizon: int) -> tuple[Window, ...]:
        """The shifts minus the breaks, cut at ``horizon``; always open when no shifts."""
        shifts = self.shifts if self.shifts else ((-(2**40), horizon),)
        out: list[Window] = []
        for s_start, s_end in sorted(shifts):
            pieces = [(s_start, min(s_end, horizon))]
            for b_start, b_end in sorted(self.breaks):
                nxt: list[Window] = []
                for a, b in pieces:
                    if b_end <= a or b_start >= b:
                        nxt.append((a, b))
                        continue
                    if a < b_start:
                        nxt.append((a, b_start))
                    if b_end < b:
                        nxt.append((b_end, b))
                pieces = nxt
            out.extend((a, b) for a, b in pieces if b > a)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Frozen:
    """A task the planner may not move: started (``start`` given, on ``station``) or the
    station's next task (``start`` None: it stays first of what is left on ``station``)."""

    station: str
    start: int | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """One unit's operation, or an order's pack task (``serial`` None).

    ``duration`` is the run time; ``setup_s`` is added when the station's setup changes to
    ``setup_key`` (the value, e.g. "gold" for thread_color). ``earliest`` is the earliest
    start: now, or when ``material`` arrives (the later of the two)."""

    id: str
    order_id: str
    serial: str | None
    operation: str
    capability: str
    duration: int
    setup_key: str | None = None
    setup_s: int = 0
    predecessors: tuple[str, ...] = ()
    earliest: int = 0
    material: str | None = None
    frozen: Frozen | None = None

    def needs_setup_after(self, state: str | None) -> bool:
        """Whether a station set up for ``state`` must change over before this task."""
        return self.setup_key is not None and self.setup_s > 0 and state != self.setup_key


@dataclass(frozen=True, slots=True)
class Order:
    """A customer order: its carrier cut-off (``ship_by``), priority weight and release."""

    id: str
    ship_by: int
    weight: int = 1
    released: int = 0  # when it reached the line: the FIFO rule's key


@dataclass(frozen=True, slots=True)
class Problem:
    """Everything a planner needs, as plain data (built by the gateway or scenarios)."""

    stations: tuple[Station, ...]
    tasks: tuple[Task, ...]
    orders: tuple[Order, ...]

    def task_map(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}

    def order_map(self) -> dict[str, Order]:
        return {o.id: o for o in self.orders}

    def station_map(self) -> dict[str, Station]:
        return {s.id: s for s in self.stations}

    def candidates(self, task: Task) -> tuple[str, ...]:
        """The stations that may do ``task`` (only its own when it is frozen)."""
        if task.frozen is not None:
            return (task.frozen.station,)
        return tuple(s.id for s in self.stations if task.capability in s.capabilities)

    def horizon(self) -> int:
        """A time by which every task fits: the last shift end, or the sum of all work."""
        work = max([0, *(t.earliest for t in self.tasks)]) + sum(
            t.duration + t.setup_s for t in self.tasks
        )
        ends = [end for s in self.stations for _, end in s.shifts]
        if all(s.shifts for s in self.stations) and ends:
            return max(ends)
        return max([work, *ends])


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where and when a task runs; ``setup`` seconds at the start of [start, end)."""

    station: str
    start: int
    end: int
    setup: int = 0


@dataclass(frozen=True, slots=True)
class LateOrder:
    """An order predicted to be packed after its ship_by, and why (see explain.py)."""

    order_id: str
    ship_by: int
    completion: int
    weight: int
    reasons: tuple[str, ...] = ()

    @property
    def lateness(self) -> int:
        return self.completion - self.ship_by


@dataclass(frozen=True, slots=True)
class Plan:
    """A schedule: every task's station and times, every order's predicted completion."""

    assignments: Mapping[str, Assignment]
    completion: Mapping[str, int]
    late: tuple[LateOrder, ...] = ()
    method: str = ""
    notes: Mapping[str, float | int | str] = field(default_factory=dict)

    def sequences(self) -> dict[str, list[str]]:
        """Each station's tasks in start order (what a station asks for, one after another)."""
        out: dict[str, list[str]] = {}
        for task_id, a in sorted(self.assignments.items(), key=lambda kv: (kv[1].start, kv[0])):
            out.setdefault(a.station, []).append(task_id)
        return out


@dataclass(frozen=True, slots=True)
class Metrics:
    """What the benchmark compares: lateness counted by order, setups and makespan."""

    orders_late: int
    weighted_late: int  # Σ priority weight of the late orders
    weighted_lateness: int  # Σ weight × max(0, completion − ship_by), in weight·seconds
    setup_s: int
    makespan: int

    def cost(self) -> tuple[int, int, int, int]:
        """The objective, lexicographic in the order of importance of the issue."""
        return (self.weighted_late, self.weighted_lateness, self.setup_s, self.makespan)


def completions(problem: Problem, assignments: Mapping[str, Assignment]) -> dict[str, int]:
    """Each order's completion: the end of its last task (the pack task)."""
    out: dict[str, int] = {}
    for task in problem.tasks:
        a = assignments.get(task.id)
        if a is not None and a.end > out.get(task.order_id, -(2**62)):
            out[task.order_id] = a.end
    return out


def metrics(problem: Problem, plan: Plan) -> Metrics:
    """The plan's figures, from its assignments (a plan as timed, or as executed)."""
    late = weighted = lateness = 0
    for order in problem.orders:
        done = plan.completion.get(order.id)
        if done is not None and done > order.ship_by:
            late += 1
            weighted += order.weight
            lateness += order.weight * (done - order.ship_by)
    ends = [a.end for a in plan.assignments.values()]
    return Metrics(
        orders_late=late,
        weighted_late=weighted,
        weighted_lateness=lateness,
        setup_s=sum(a.setup for a in plan.assignments.values()),
        makespan=max(ends, default=0),
    )


def make_plan(
    problem: Problem,
    assignments: Mapping[str, Assignment],
    method: str,
    notes: Mapping[str, float | int | str] | None = None,
) -> Plan:
    """A plan with completions and late orders (reasons are added by explain.explain_plan)."""
    done = completions(problem, assignments)
    late = tuple(
        LateOrder(o.id, o.ship_by, done[o.id], o.weight)
        for o in problem.orders
        if o.id in done and done[o.id] > o.ship_by
    )
    return Plan(dict(assignments), done, late, method, dict(notes or {}))


def successors(tasks: Iterable[Task]) -> dict[str, list[str]]:
    """Task id → the tasks that wait for it."""
    out: dict[str, list[str]] = {}
    for task in tasks:
        for pred in task.predecessors:
            out.setdefault(pred, []).append(task.id)
    return out
