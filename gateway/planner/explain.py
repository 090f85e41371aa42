"""Why an order is predicted late: the material it waits for, the shift that ends, the
station where it queues (the bottleneck).

Every task of a late order has a ready time (its predecessors done) and a start; the time
between is split into waiting for material (until ``earliest``), waiting for a station to
open again (closed time on its calendar) and queueing behind other tasks (the rest).
A reason is given for each kind that delayed the order, the largest first; an order that
nothing delayed is late because its own work does not fit before its ship-by, or because
its ship-by had passed before its work could start, and says which.

Reasons are read by a line lead: durations of ten minutes or more are told in minutes and
hours (see ``duration``), never as tens of thousands of seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gateway.planner.problem import LateOrder, Plan, Problem, Task

# How a time in the plan (seconds from its start) is written in a reason: "+3600 s" here;
# the gateway writes the line's local clock time.
TimeText = Callable[[int], str]


def relative(t: int) -> str:
    # A signed offset: a ship-by that passed before the plan's start is "-600 s", not "+-600 s".
    return f"{t:+d} s"


def duration(seconds: int) -> str:
    """A duration as a line lead reads it: "110 s" below ten minutes, "25 min", "2 h",
    "40 h 40 min" from there (to the nearest minute, half a minute up)."""
    if seconds < 600:
        return f"{seconds} s"
    hours, minutes = divmod((seconds + 30) // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@dataclass(frozen=True, slots=True)
class Delay:
    """One cause of delay of an order, in seconds."""

    kind: str  # "material", "shift" or "bottleneck"
    seconds: int
    what: str  # the material, or the station
    at: int  # when the material arrives, the shift ends, or the order's task started there

    def text(self, at: TimeText = relative) -> str:
        if self.kind == "material":
            return (
                f"material: {self.what} arrives at {at(self.at)} (waited {duration(self.seconds)})"
            )
        if self.kind == "shift":
            return f"shift: {self.what} closes at {at(self.at)} (waited {duration(self.seconds)})"
        return f"bottleneck: {self.what} (queued {duration(self.seconds)})"


def delays(
    problem: Problem, plan: Plan, order_id: str, tasks: Sequence[Task] | None = None
) -> list[Delay]:
    """The causes of delay of one order, largest first (``tasks``: the order's tasks, when
    the caller has them grouped already)."""
    if tasks is None:
        tasks = [t for t in problem.tasks if t.order_id == order_id]
    stations = problem.station_map()
    a = plan.assignments
    material: dict[str, Delay] = {}
    shift: dict[str, Delay] = {}
    queue: dict[str, int] = {}
    for task in tasks:
        if task.id not in a or (task.frozen is not None and task.frozen.start is not None):
            continue
        got = a[task.id]
        preds_done = max([0, *(a[p].end for p in task.predecessors if p in a)])
        ready = max(preds_done, task.earliest)
        if task.material and task.earliest > preds_done:
            waited = task.earliest - preds_done
            old = material.get(task.material)
            if old is None or waited > old.seconds:
                material[task.material] = Delay("material", waited, task.material, task.earliest)
        station = stations[got.station]
        closed, closes_at = _closed_between(
            station.working_windows(got.end + 1), ready, got.start, got.end - got.start
        )
        if closed > 0:
            old_s = shift.get(got.station)
            seconds = closed + (old_s.seconds if old_s else 0)
            at = min(closes_at, old_s.at) if old_s else closes_at
            shift[got.station] = Delay("shift", seconds, got.station, at)
        queued = got.start - ready - closed
        if queued > 0:
            queue[got.station] = queue.get(got.station, 0) + queued
    out = [*material.values(), *shift.values()]
    out += [Delay("bottleneck", s, st, 0) for st, s in queue.items()]
    return sorted(out, key=lambda d: -d.seconds)


def explain_plan(
    problem: Problem, plan: Plan, max_reasons: int = 3, at: TimeText = relative
) -> Plan:
    """``plan`` with the reasons of every late order filled in."""
    late: list[LateOrder] = []
    late_ids = {o.order_id for o in plan.late}
    by_order: dict[str, list[Task]] = {}
    for task in problem.tasks:
        if task.order_id in late_ids:
            by_order.setdefault(task.order_id, []).append(task)
    for order in plan.late:
        own = by_order.get(order.order_id, [])
        found = delays(problem, plan, order.order_id, own)
        # The bottleneck is the one station where the order queued longest; a material or
        # a shift is named whenever it delayed the order at all.
        bottleneck = [d for d in found if d.kind == "bottleneck"][:1]
        others = [d for d in found if d.kind != "bottleneck"]
        chosen = sorted([*others, *bottleneck], key=lambda d: -d.seconds)[:max_reasons]
        reasons = [d.text(at) for d in chosen]
        if not reasons:
            reasons.append(_own_work(order, own, plan, at))
        late.append(replace(order, reasons=tuple(reasons)))
    return replace(plan, late=tuple(late))


def _own_work(order: LateOrder, own: Sequence[Task], plan: Plan, at: TimeText) -> str:
    """The reason of a late order that nothing held up: its own work does not fit before
    its ship-by, or the ship-by had passed before that work could start."""
    first = min(
        (plan.assignments[t.id].start for t in own if t.id in plan.assignments),
        default=0,
    )
    work = duration(order.completion - first)
    if order.ship_by <= first:
        # There was no time before the ship-by to compare the work with: its lateness is
        # mostly time gone before the work could start, not work that does not fit.
        return (
            f"work: ship-by {at(order.ship_by)} already passed; "
            f"its own work takes {work} from {at(first)}"
        )
    return (
        f"work: its own work takes {work} from {at(first)}, "
        f"{duration(order.lateness)} more than the time before its ship-by"
    )


def _closed_between(
    windows: tuple[tuple[int, int], ...], ready: int, start: int, length: int
) -> tuple[int, int]:
    """(seconds lost to closings in [ready, start), when the first closing began). An open
    stretch before a closing too short for the task counts as lost to the closing."""
    if start <= ready:
        return 0, 0
    open_s = 0
    first_close: int | None = None
    for w_start, w_end in windows:
        lo, hi = max(w_start, ready), min(w_end, start)
        if hi > lo and not (hi < start and hi - lo < length):
            open_s += hi - lo
        if ready <= w_end < start and first_close is None:
            first_close = w_end
        if ready < w_start <= start and first_close is None:
            first_close = ready  # the station was closed when the task became ready
    closed = (start - ready) - open_s
    return closed, first_close if first_close is not None else ready


def ready_time(task: Task, plan: Plan) -> int:
    """When ``task`` could start: its predecessors done and its material there."""
    ends = [plan.assignments[p].end for p in task.predecessors if p in plan.assignments]
    return max([task.earliest, 0, *ends])
